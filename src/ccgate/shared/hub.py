"""The ``hub`` backend: ``ccgate serve --workers N`` without Redis.

The supervisor process runs ``HubServer``; each worker connects with a ``HubClient`` (the
``SharedState`` a worker's gateway uses). The hub is the one place where what must be exact
across workers is decided:

- **admission**: the hub holds the authoritative ``routing.RateLimiter``; an ``Admit`` is one
  synchronous ``admit_sync`` on the hub's event loop, so concurrent requests from every worker
  are checked and counted one after the other (``rpm 10`` admits exactly 10);
- **events**: each ``Publish`` is relayed as-is to every other worker (the hub never looks
  inside: new kinds need no change here);
- **short-lived records** (``kv_*``): a dict with expiry times; ``kv_take`` is a pop, so of
  two workers taking a one-time code, one gets it;
- **metrics**: a ``Gather`` from the worker Prometheus scraped asks every other worker for
  its snapshot, so one scrape shows the totals of all workers (``server.metrics_merge``).

Transport: a Unix socket in a private directory on POSIX, loopback TCP on Windows; either
way a worker must first send the random token the supervisor handed it (with its socket, in
the spawned process's arguments: not in its environment or command line), else the hub
closes the connection. Frames and messages are
``shared.frames`` (sans-IO). Every client call has a timeout and raises ``SharedUnavailable``
when the hub does not answer; a lost connection is re-dialled in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from ccgate.routing.ratelimit import Admission, RateLimiter
from ccgate.shared import EventKind, SharedEvent, SharedUnavailable
from ccgate.shared.frames import (
    Admit,
    Event,
    FrameError,
    FrameReader,
    Gather,
    Hello,
    Kv,
    Message,
    Publish,
    Reply,
    Snapshot,
    SnapshotRequest,
    Tokens,
    Welcome,
    encode,
)

log = logging.getLogger("ccgate.hub")

CALL_TIMEOUT = 2.0  # seconds a worker waits for any answer from the hub
GATHER_TIMEOUT = 1.5  # seconds the hub waits for the other workers' metrics
HELLO_TIMEOUT = 2.0
KV_MAX_RECORDS = 200_000  # a bound on what misbehaving clients can make the hub hold
KV_MAX_VALUE = 64 * 1024
SWEEP_SECONDS = 10.0


# The hub's state, without I/O ------------------------------------------------------------


class HubState:
    """The rate limiter and the short-lived records; every method is one synchronous step."""

    def __init__(self, limiter: RateLimiter | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limiter = limiter or RateLimiter()
        self._clock = clock
        self._kv: dict[str, tuple[bytes, float]] = {}  # key -> (value, expires at, monotonic)
        self._next_sweep = clock() + SWEEP_SECONDS

    def admit(self, key_id: str, rpm: int | None, tpm: int | None) -> list[Any]:
        """Check and count; the admission's fields in order (``Admission(*fields)`` rebuilds it)."""
        a = self.limiter.admit_sync(key_id, rpm, tpm)
        return [a.allowed, a.retry_after, a.limited_by, a.requests_limit, a.requests_remaining,
                a.requests_reset, a.tokens_limit, a.tokens_remaining, a.tokens_reset]

    def kv(self, msg: Kv) -> bytes | int | None:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        if msg.op == "get":
            return self._live(msg.key, now)
        if msg.op == "take":
            value = self._live(msg.key, now)
            self._kv.pop(msg.key, None)
            return value
        if msg.op == "delete":
            self._kv.pop(msg.key, None)
            return None
        if msg.op == "put":
            self._store(msg.key, msg.value, now + msg.ttl)
            return None
        if msg.op == "incr":
            current = self._live(msg.key, now)
            count = (int(current) if current is not None else 0) + msg.amount
            expires = self._kv[msg.key][1] if current is not None else now + msg.ttl
            self._store(msg.key, str(count).encode(), expires)
            return count
        raise ValueError(f"unknown kv operation {msg.op!r}")

    def _live(self, key: str, now: float) -> bytes | None:
        record = self._kv.get(key)
        if record is None:
            return None
        if record[1] <= now:
            del self._kv[key]
            return None
        return record[0]

    def _store(self, key: str, value: bytes, expires: float) -> None:
        if len(value) > KV_MAX_VALUE:
            raise ValueError(f"value of {len(value)} bytes is over {KV_MAX_VALUE}")
        if key not in self._kv and len(self._kv) >= KV_MAX_RECORDS:
            self._sweep(self._clock())
            if len(self._kv) >= KV_MAX_RECORDS:
                raise ValueError(f"the hub holds {KV_MAX_RECORDS} records already")
        self._kv[key] = (value, expires)

    def _sweep(self, now: float) -> None:
        self._kv = {k: r for k, r in self._kv.items() if r[1] > now}
        self._next_sweep = now + SWEEP_SECONDS

    def __len__(self) -> int:
        return len(self._kv)


# The hub (supervisor side) ---------------------------------------------------------------


class _HubConnection(asyncio.Protocol):
    def __init__(self, hub: HubServer) -> None:
        self.hub = hub
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.process_id: str | None = None  # set by a valid Hello
        self.worker = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        asyncio.get_running_loop().call_later(HELLO_TIMEOUT, self._hello_due)

    def _hello_due(self) -> None:
        if self.process_id is None and self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            for message in self.reader.feed(data):
                self.hub.handle(self, message)
        except (FrameError, ValueError, TypeError) as exc:
            log.warning("hub: dropping a worker connection: %s", exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.hub.lost(self)

    def send(self, message: Message) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(message))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _PendingGather:
    def __init__(self, asker: _HubConnection, request_id: int, waiting: set[_HubConnection]) -> None:
        self.asker, self.request_id, self.waiting = asker, request_id, waiting
        self.snapshots: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None


class HubServer:
    """Runs in the supervisor's event loop: ``await start()``, then ``address`` (``unix:/path``
    or ``tcp:127.0.0.1:port``) and ``token`` go to each worker."""

    def __init__(self, state: HubState | None = None, *, token: str | None = None) -> None:
        self.state = state or HubState()
        self.token = token or secrets.token_urlsafe(32)
        self.address = ""
        self.connections: set[_HubConnection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._gathers: dict[int, _PendingGather] = {}
        self._ids = itertools.count(1)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if sys.platform != "win32":
            # A directory only this user may enter: the socket's own mode is not honoured everywhere.
            self._dir = tempfile.TemporaryDirectory(prefix="ccgate-hub-")
            os.chmod(self._dir.name, 0o700)
            path = str(Path(self._dir.name) / "hub.sock")
            self._server = await loop.create_unix_server(lambda: _HubConnection(self), path)
            self.address = f"unix:{path}"
        else:
            self._server = await loop.create_server(lambda: _HubConnection(self), "127.0.0.1", 0)
            host, port = self._server.sockets[0].getsockname()[:2]
            self.address = f"tcp:{host}:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        if self._dir is not None:
            self._dir.cleanup()

    # Messages ----------------------------------------------------------------------------

    def handle(self, conn: _HubConnection, msg: Message) -> None:
        if conn.process_id is None:
            if not isinstance(msg, Hello) or not hmac.compare_digest(msg.token, self.token):
                raise ValueError("the first message is not a hello with the right token")
            conn.process_id, conn.worker = msg.process_id, msg.worker
            self.connections.add(conn)
            conn.send(Welcome(os.getpid()))
            return
        if isinstance(msg, Admit):
            try:
                conn.send(Reply(msg.id, self.state.admit(msg.key_id, msg.rpm, msg.tpm)))
            except ValueError as exc:
                conn.send(Reply(msg.id, None, str(exc)))
        elif isinstance(msg, Tokens):
            self.state.limiter.record_tokens_sync(msg.key_id, msg.tokens)
        elif isinstance(msg, Publish):
            event = encode(Event(msg.kind, msg.data, msg.origin))
            for other in self.connections:
                if other is not conn and other.transport is not None:
                    other.transport.write(event)
        elif isinstance(msg, Kv):
            try:
                conn.send(Reply(msg.id, self.state.kv(msg)))
            except ValueError as exc:
                conn.send(Reply(msg.id, None, str(exc)))
        elif isinstance(msg, Gather):
            self._gather(conn, msg.id)
        elif isinstance(msg, Snapshot):
            self._snapshot(conn, msg)
        else:
            raise ValueError(f"unexpected {type(msg).__name__} from a worker")

    def lost(self, conn: _HubConnection) -> None:
        self.connections.discard(conn)
        for gid, pending in list(self._gathers.items()):
            if pending.asker is conn:
                self._finish(gid, answer=False)
            elif conn in pending.waiting:
                pending.waiting.discard(conn)
                if not pending.waiting:
                    self._finish(gid)

    def _gather(self, asker: _HubConnection, request_id: int) -> None:
        others = {c for c in self.connections if c is not asker}
        if not others:
            asker.send(Reply(request_id, []))
            return
        gid = next(self._ids)
        pending = self._gathers[gid] = _PendingGather(asker, request_id, others)
        pending.timer = asyncio.get_running_loop().call_later(GATHER_TIMEOUT, self._finish, gid)
        for other in others:
            other.send(SnapshotRequest(gid))

    def _snapshot(self, conn: _HubConnection, msg: Snapshot) -> None:
        pending = self._gathers.get(msg.id)
        if pending is None or conn not in pending.waiting:
            return  # too late: the scrape was answered without it
        pending.waiting.discard(conn)
        pending.snapshots.append(msg.data)
        if not pending.waiting:
            self._finish(msg.id)

    def _finish(self, gid: int, *, answer: bool = True) -> None:
        pending = self._gathers.pop(gid, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        if answer:
            pending.asker.send(Reply(pending.request_id, pending.snapshots))


# A worker's side -------------------------------------------------------------------------


class _ClientConnection(asyncio.Protocol):
    def __init__(self, client: HubClient) -> None:
        self.client = client
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.reader.feed(data)
        except FrameError as exc:
            log.warning("hub: bad frame from the hub: %s", exc)
            if self.transport is not None:
                self.transport.close()
            return
        for message in messages:
            self.client.received(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        if self.client.connection is self:  # calls waiting on this connection fail now
            self.client.fail_pending("the connection to the hub was lost")


class HubClient:
    """The ``SharedState`` of a worker whose supervisor runs the hub."""

    kind = "hub"

    def __init__(self, address: str, token: str, process_id: str, worker: int = 0, *,
                 timeout: float = CALL_TIMEOUT) -> None:
        self.address, self._token, self.process_id, self.worker = address, token, process_id, worker
        self.timeout = timeout
        # Called when another worker's scrape asks for this worker's metrics (set by the worker).
        self.snapshot: Callable[[], bytes] | None = None
        self.dropped = 0  # fire-and-forget messages that found no connection
        self.connection: _ClientConnection | None = None
        self._ready = False
        self._on_event: Callable[[SharedEvent], None] = lambda event: None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._ok = False

    async def start(self, on_event: Callable[[SharedEvent], None]) -> None:
        self._on_event = on_event
        try:
            await self._connect()
        except (OSError, SharedUnavailable) as exc:
            log.warning("hub: cannot reach the supervisor's hub at start (%s); retrying", exc)
        self._task = asyncio.get_running_loop().create_task(self._stay_connected())

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.close()
        self.fail_pending("the gateway is shutting down")

    def healthy(self) -> bool:
        return self._ready and self._ok

    # Connection --------------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        scheme, _, where = self.address.partition(":")
        if scheme == "unix":
            _, conn = await asyncio.wait_for(
                loop.create_unix_connection(lambda: _ClientConnection(self), where), self.timeout)
        else:
            host, _, port = where.rpartition(":")
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _ClientConnection(self), host, int(port)), self.timeout)
        self.connection = conn
        welcome = self._expect(0)
        self._write(Hello(self._token, self.process_id, self.worker))
        await self._wait(welcome)
        self._ready = self._ok = True

    async def _stay_connected(self) -> None:
        delay = 0.05
        while not self._closing:
            conn = self.connection
            if conn is not None and self._ready:
                await conn.closed
                self._ready = self._ok = False
                self.fail_pending("the connection to the hub was lost")
                if self._closing:
                    return
                log.warning("hub: connection to the supervisor lost; reconnecting")
            try:
                await self._connect()
                delay = 0.05
                log.info("hub: connected to the supervisor")
            except (TimeoutError, OSError, SharedUnavailable):
                self._ready = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def received(self, msg: Message) -> None:
        if isinstance(msg, Reply):
            future = self._pending.pop(msg.id, None)
            if future is not None and not future.done():
                future.set_result(msg)
        elif isinstance(msg, Welcome):
            future = self._pending.pop(0, None)
            if future is not None and not future.done():
                future.set_result(msg)
        elif isinstance(msg, Event):
            self._on_event(SharedEvent(cast(EventKind, msg.kind), msg.data, msg.origin))
        elif isinstance(msg, SnapshotRequest):
            data = b""
            if self.snapshot is not None:
                try:
                    data = self.snapshot()
                except Exception:  # a broken snapshot must not cut the link
                    log.exception("hub: cannot take this worker's metrics snapshot")
            self._write(Snapshot(msg.id, data))

    # Calls -------------------------------------------------------------------------------

    def _write(self, msg: Message) -> bool:
        conn = self.connection
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return False
        conn.transport.write(encode(msg))
        return True

    def _expect(self, request_id: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        return future

    async def _wait(self, future: asyncio.Future[Any]) -> Any:
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            self._ok = False
            raise SharedUnavailable(f"the hub did not answer within {self.timeout:g} s") from None

    async def _call(self, make: Callable[[int], Message]) -> Any:
        if not self._ready:
            raise SharedUnavailable("not connected to the supervisor's hub")
        request_id = next(self._ids)
        future = self._expect(request_id)
        if not self._write(make(request_id)):
            self._pending.pop(request_id, None)
            raise SharedUnavailable("not connected to the supervisor's hub")
        try:
            reply = await self._wait(future)
        finally:
            self._pending.pop(request_id, None)
        self._ok = True
        if reply.error:
            raise SharedUnavailable(f"the hub refused: {reply.error}")
        return reply.value

    def fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(SharedUnavailable(why))

    # SharedState -------------------------------------------------------------------------

    async def admit(self, key_id: str, rpm: int | None, tpm: int | None) -> Admission:
        fields = await self._call(lambda i: Admit(i, key_id, rpm, tpm))
        return Admission(*fields)

    def record_tokens(self, key_id: str, tokens: int) -> None:
        if not self._write(Tokens(key_id, tokens)):
            self.dropped += 1

    def publish(self, event: SharedEvent) -> None:
        if not self._write(Publish(event.kind, event.data, event.origin or self.process_id)):
            self.dropped += 1

    async def kv_put(self, key: str, value: bytes, ttl: float) -> None:
        await self._call(lambda i: Kv(i, "put", key, value, ttl))

    async def kv_get(self, key: str) -> bytes | None:
        return cast(bytes | None, await self._call(lambda i: Kv(i, "get", key)))

    async def kv_take(self, key: str) -> bytes | None:
        return cast(bytes | None, await self._call(lambda i: Kv(i, "take", key)))

    async def kv_delete(self, key: str) -> None:
        await self._call(lambda i: Kv(i, "delete", key))

    async def kv_incr(self, key: str, amount: int, ttl: float) -> int:
        return int(await self._call(lambda i: Kv(i, "incr", key, ttl=ttl, amount=amount)))

    async def gather(self) -> list[bytes]:
        """Every other worker's metrics snapshot (those that answered in time)."""
        return cast(list[bytes], await self._call(lambda i: Gather(i)))


__all__ = ["CALL_TIMEOUT", "HubClient", "HubServer", "HubState"]
