"""The rate-limit admission channel of the Redis backend: one connection, pipelined EVALSHAs.

A limited key's request waits for one admission (shared/redis.py's ``admit``). Through
redis-py's asyncio client that measured 110-200 µs of CPU per sequential admission (pool
checkout, its lock, command packing, reply parsing, several awaits), for a loopback round trip
that costs Redis tens of µs. This channel does only that one command, lean:

- **One long-lived connection** per process, an ``asyncio.Protocol`` on the running loop:
  TCP, ``unix://`` or ``rediss://`` (the TLS options of the redis-py client, through its own
  ``RedisSSLContext``); AUTH and SELECT from the URL (or ``redis.password``), as redis-py does.
- **Commands packed once**: ``hiredis.pack_command``; the caller caches a key's bytes (with
  Redis' clock the command never changes between requests). The script's sha is computed
  here (SHA-1 of its source, as Redis does), so nothing waits for SCRIPT LOAD.
- **Pipelined**: every admission of one event-loop turn goes out in one write, and any number
  are in flight at once. Redis answers a connection's commands in order, so replies are
  matched to a FIFO of futures; ``hiredis.Reader`` (Redis' own RESP parser, sans-IO) parses.
- **Timeouts**: one timer for the whole connection (a sweep re-armed to the oldest unanswered
  command), not one per admission. A command unanswered after ``timeout`` fails every command
  in flight, drops the connection and reconnects lazily (on the next admission) with backoff;
  meanwhile admissions fail at once.
- **Exactness**: an admission whose reply is lost (connection killed, Redis restarted or
  stalled) is failed, never sent again: the EVALSHA may have run, and sending it twice would
  count the request twice. Only NOSCRIPT, which means the script did not run, is answered by
  SCRIPT LOAD and the same command again (once), transparently.

Every failure is ``SharedUnavailable`` with a message that names no host or password;
``server/shared_link.py`` applies the failure policy.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis.asyncio.connection import RedisSSLContext, parse_url

from ccgate.shared import SharedUnavailable

BACKOFF_FIRST = 0.05  # seconds before the first reconnection after a failure
BACKOFF_MAX = 1.0  # and at most, doubling; a working connection resets it
CLIENT_NAME = "ccgate"  # as the redis-py connections (CLIENT LIST)
_SSL_CONTEXT_ARGS = {"keyfile", "certfile", "cert_reqs", "ca_certs", "ca_data", "ca_path", "check_hostname",
                     "min_version", "ciphers", "password"}
_MORE = object()  # hiredis.Reader.gets(): no whole reply yet (None is Redis' nil)


def _pack(*parts: str | int | bytes) -> bytes:
    """A command as RESP bytes, by hiredis (its stub types the tuple as one element)."""
    packed: bytes = hiredis.pack_command(parts)  # type: ignore[arg-type]
    return packed


def script_sha(source: str) -> str:
    """The sha EVALSHA names a script by: SHA-1 of its source, as Redis computes it."""
    return hashlib.sha1(source.encode()).hexdigest()


@dataclass(frozen=True)
class Endpoint:
    """Where the channel connects and how it introduces itself, from ``redis.url``."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # unix://
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: dict[str, Any] | None = None  # redis-py's ssl_* options (rediss://); None: plain

    @classmethod
    def from_url(cls, url: str, password: str | None = None, ssl_options: dict[str, Any] | None = None
                 ) -> Endpoint:
        """Read by redis-py's own parser (``?db=`` wins over the path); ``password``
        (``redis.password``) wins over the URL's, as docs/configuration.md says."""
        parts: dict[str, Any] = dict(parse_url(url))
        tls = None
        if url.lower().startswith("rediss://"):  # the URL's ?ssl_...= win, as in redis-py
            tls = {**(ssl_options or {}), **{k: v for k, v in parts.items() if k.startswith("ssl_")}}
        return cls(host=parts.get("host") or "localhost", port=int(parts.get("port") or 6379),
                   path=parts.get("path"), db=int(parts.get("db") or 0), username=parts.get("username"),
                   password=password if password is not None else parts.get("password"), tls=tls)

    def handshake(self) -> list[bytes]:
        """The commands a new connection sends before any admission (each answered +OK)."""
        commands: list[bytes] = []
        if self.password is not None:
            auth = (self.username, self.password) if self.username else (self.password,)
            commands.append(_pack("AUTH", *auth))
        if self.db:
            commands.append(_pack("SELECT", self.db))
        commands.append(_pack("CLIENT", "SETNAME", CLIENT_NAME))
        return commands

    def ssl_context(self) -> ssl.SSLContext | None:
        """redis-py's own context from the same ``ssl_*`` options (verification, CA file,
        client certificate), so both connections verify alike."""
        if self.tls is None:
            return None
        options = {name.removeprefix("ssl_"): value for name, value in self.tls.items()}
        return RedisSSLContext(**{k: v for k, v in options.items() if k in _SSL_CONTEXT_ARGS}).get()


class _Call:
    """One command written (or to be written) and the future its caller awaits (None: the
    reply is not wanted, e.g. a SCRIPT LOAD)."""

    __slots__ = ("command", "future", "retried", "stamp")

    def __init__(self, command: bytes, future: asyncio.Future[Any] | None) -> None:
        self.command = command
        self.future = future
        self.stamp = 0.0  # loop time it was written (or queued for a connection)
        self.retried = False  # sent again after NOSCRIPT (once at most)


class _Protocol(asyncio.Protocol):
    def __init__(self, channel: AdmitChannel) -> None:
        self.channel = channel
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(notEnoughData=_MORE)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.channel._received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.channel._lost(self)


class AdmitChannel:
    """EVALSHA of one script over one connection; ``call`` is synchronous and returns the
    future of the reply, which fails with ``SharedUnavailable`` within ``timeout``."""

    def __init__(self, endpoint: Endpoint, script: str, timeout: float, *,
                 on_health: Callable[[bool], None] = lambda ok: None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.sha = script_sha(script)
        self._load = _pack("SCRIPT", "LOAD", script)
        self._on_health = on_health
        self.ok = True  # the last command was answered (health, for /readyz and metrics)
        self._loop = asyncio.get_running_loop()
        self._proto: _Protocol | None = None
        self._ready = False  # connected and introduced: calls are written as they come
        self._connecting: asyncio.Task[None] | None = None
        self._queued: list[_Call] = []  # asked for in this turn of the loop
        self._waiting: list[_Call] = []  # for the connection being made
        self._inflight: collections.deque[_Call] = collections.deque()  # written, in order
        self._timer: asyncio.TimerHandle | None = None
        self._retry_at = 0.0  # no connection attempt before (loop time)
        self._backoff = BACKOFF_FIRST
        self._closed = False

    def command(self, keys: tuple[str, ...], args: tuple[str | int, ...]) -> bytes:
        """The RESP bytes of ``EVALSHA sha len(keys) *keys *args`` (for ``call``)."""
        return _pack("EVALSHA", self.sha, len(keys), *keys, *args)

    def call(self, command: bytes) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        self._queued.append(_Call(command, future))
        if len(self._queued) == 1:  # the first of this turn: all of them go out at its end
            self._loop.call_soon(self._flush)
        return future

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        self._drop("the gateway is shutting down", backoff=False, failed=False)
        queued, self._queued = self._queued, []
        _fail(queued, "the gateway is shutting down")

    # Sending -----------------------------------------------------------------------------

    def _flush(self) -> None:
        batch, self._queued = self._queued, []
        batch = [call for call in batch if _wanted(call)]
        if not batch:
            return
        now = self._loop.time()
        for call in batch:
            call.stamp = now
        if self._ready and self._proto is not None and self._proto.transport is not None:
            transport = self._proto.transport
            transport.write(batch[0].command if len(batch) == 1 else b"".join(c.command for c in batch))
            self._inflight.extend(batch)
            self._arm()
        elif self._closed:
            _fail(batch, "the gateway is shutting down")
        elif now < self._retry_at:  # fail fast while the last attempt's backoff runs
            _fail(batch, "redis did not answer; reconnecting")
        else:
            self._waiting.extend(batch)
            if self._connecting is None:
                self._connecting = self._loop.create_task(self._connect(), name="ccgate-redis-admit")

    def _arm(self) -> None:
        if self._timer is None and self._inflight:
            self._timer = self._loop.call_at(self._inflight[0].stamp + self.timeout, self._sweep)

    def _sweep(self) -> None:
        """The one timer: the oldest command unanswered for ``timeout`` drops the connection."""
        self._timer = None
        if not self._inflight:
            return
        due = self._inflight[0].stamp + self.timeout
        if due <= self._loop.time() + 0.001:
            self._drop(f"redis did not answer within {self.timeout:g} s")
        else:
            self._timer = self._loop.call_at(due, self._sweep)

    # Receiving ---------------------------------------------------------------------------

    def _received(self, proto: _Protocol, data: bytes) -> None:
        if proto is not self._proto:
            return
        reader = proto.reader
        reader.feed(data)
        again: list[_Call] = []
        try:
            while (reply := reader.gets()) is not _MORE:
                self._answer(self._inflight.popleft(), reply, again)
        except (hiredis.ProtocolError, IndexError):  # garbage, or a reply nobody asked for
            self._drop("redis sent a reply that cannot be read")
            return
        if not self.ok:
            self.ok = True
            self._on_health(True)
        if again and proto.transport is not None:  # NOSCRIPT: load it, then the same commands
            load = _Call(self._load, None)
            now = self._loop.time()
            load.stamp = now
            for call in again:
                call.stamp = now
            proto.transport.write(self._load + b"".join(call.command for call in again))
            self._inflight.append(load)
            self._inflight.extend(again)
            self._arm()

    def _answer(self, call: _Call, reply: Any, again: list[_Call]) -> None:
        future = call.future
        if future is None or future.done():  # not wanted, or its request has gone
            return
        if isinstance(reply, hiredis.ReplyError):
            code = _code(reply)
            if code == "NOSCRIPT" and not call.retried:  # the script did not run: safe to resend
                call.retried = True
                again.append(call)
                return
            future.set_exception(SharedUnavailable(f"redis refused the rate-limit script ({code})"))
        else:
            future.set_result(reply)

    def _lost(self, proto: _Protocol) -> None:
        """Redis closed the connection (CLIENT KILL, a restart): the replies of what was in
        flight are lost; those admissions fail (they may have been counted). The next admission
        connects again at once."""
        if proto is self._proto:  # closed while idle (Redis' own idle `timeout`): not a failure
            self._drop("the connection to redis was lost", backoff=False,
                       failed=bool(self._inflight or self._waiting))

    # Connecting --------------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                proto = await self._open()
                self._proto = proto
                assert proto.transport is not None
                replies = [_Call(command, self._loop.create_future()) for command in self.endpoint.handshake()]
                load = _Call(self._load, None)  # loaded up front: no NOSCRIPT on a fresh Redis
                # The connection is made for the waiting admissions: it has their deadline.
                stamp = min((call.stamp for call in self._waiting), default=self._loop.time())
                for call in (*replies, load):
                    call.stamp = stamp
                proto.transport.write(b"".join(call.command for call in (*replies, load)))
                self._inflight.extend((*replies, load))
                self._arm()
                for call in replies:
                    reply = await cast(asyncio.Future[Any], call.future)
                    if isinstance(reply, hiredis.ReplyError):
                        raise SharedUnavailable(f"redis refused the connection ({_code(reply)})")
        except (OSError, TimeoutError, SharedUnavailable, ValueError, TypeError, NotImplementedError) as exc:
            self._connecting = None
            self._drop(str(exc) if isinstance(exc, SharedUnavailable)
                       else f"cannot connect to redis ({type(exc).__name__})")
            return
        finally:
            self._connecting = None
        if self._proto is not proto or proto.transport is None:  # lost meanwhile: _drop failed them
            return
        self._ready = True
        self._backoff = BACKOFF_FIRST
        waiting, self._waiting = self._waiting, []
        waiting = [call for call in waiting if _wanted(call)]
        if waiting:  # written now, with the stamps (deadlines) they had
            proto.transport.write(b"".join(call.command for call in waiting))
            self._inflight.extend(waiting)
            self._arm()

    async def _open(self) -> _Protocol:
        endpoint, loop = self.endpoint, self._loop
        if endpoint.path is not None:
            if sys.platform == "win32":
                raise SharedUnavailable("unix:// redis URLs need a Unix socket (not on Windows)")
            _, proto = await loop.create_unix_connection(lambda: _Protocol(self), endpoint.path)
        else:
            _, proto = await loop.create_connection(lambda: _Protocol(self), endpoint.host, endpoint.port,
                                                    ssl=endpoint.ssl_context())
        return proto

    def _drop(self, why: str, *, backoff: bool = True, failed: bool = True) -> None:
        """Fail every call in flight or waiting, close the connection; with ``backoff`` the
        next attempt waits (doubling), else the next admission reconnects at once. ``failed``:
        Redis failed us (health goes down until a reply arrives)."""
        proto, self._proto, self._ready = self._proto, None, False
        if proto is not None and proto.transport is not None:
            proto.transport.abort()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        inflight, self._inflight = self._inflight, collections.deque()
        waiting, self._waiting = self._waiting, []
        _fail(inflight, why)
        _fail(waiting, why)
        if backoff:
            now = self._loop.time()
            if now >= self._retry_at:
                self._retry_at = now + self._backoff
                self._backoff = min(BACKOFF_MAX, self._backoff * 2)
        if failed and self.ok:
            self.ok = False
            self._on_health(False)


def _code(error: Exception) -> str:
    """The error code of a Redis error reply (NOSCRIPT, WRONGPASS, ...): its first word, which
    never holds a secret, unlike the rest of some messages."""
    return str(error).split(" ", 1)[0][:32]


def _wanted(call: _Call) -> bool:
    """Still awaited: a request that has gone (its future cancelled) is not sent."""
    return call.future is not None and not call.future.done()


def _fail(calls: collections.abc.Iterable[_Call], why: str) -> None:
    for call in calls:
        if call.future is not None and not call.future.done():
            call.future.set_exception(SharedUnavailable(why))


__all__ = ["AdmitChannel", "Endpoint", "script_sha"]
