"""ccgate's own HTTP/1.1 keep-alive client, for providers reached directly (no proxy).

aiohttp's client costs ~110 µs of CPU per request on the gateway's path (request building,
a timer per request, response parsing, the connector); this one writes the request as one
prepared head, parses the answer with httptools (llhttp, the parser uvicorn already uses for
the client side) and keeps its connections in a plain list. The wire format is
``upstream/h1wire.py`` (no I/O); this module is the asyncio part.

What it keeps from the aiohttp transport, exactly: bytes both ways untouched (no
decompression, no headers added but ``Host`` and ``Content-Length``), a keep-alive pool per
provider with no limit and no silent queue (``pool.max_connections`` is the base class's
slots), idle connections closed after ``pool.keepalive_seconds``, ``timeouts.connect`` for
DNS + TCP + TLS, ``timeouts.read`` for the answer's head and between a body's reads through
the transport's one ``ReadWatch`` sweep (no timer per request or chunk), ``timeouts.total``
(or ``send(timeout=)``) as one timer when set, and every failure named by
``failures.classify_failure``. A pooled connection the provider closed while it sat idle is
retried once on a new one, only if no byte of the answer came back and the close came within
``_RACE_WINDOW`` of the request (aiohttp retries only idempotent methods; a POST that met the
race would fail, which the dispatcher then retries with a backoff and a breaker mark). A connection goes back to
the pool only once its answer was read to the end; ``close()`` mid-body closes it.

TLS is asyncio's, with the context of ``upstream/tls.py`` (Mozilla roots, the OS store,
``tls.ca_file``, client certificates) and SNI = the provider's host. Proxies (HTTP/HTTPS
CONNECT, SOCKS) stay on aiohttp: ``upstream.choose.transport_for`` decides once per provider.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from ccgate.config.model import Provider
from ccgate.config.secrets import Secret
from ccgate.upstream.h1wire import (
    HIGH_WATER,
    ConnectError,
    ProtocolError,
    ResponseParser,
    ServerClosed,
    host_header,
    request_head,
)
from ccgate.upstream.response import UpstreamResponse
from ccgate.upstream.tls import build_ssl_context
from ccgate.upstream.transport import NetworkTransport, ReadWatch

# What a failed exchange raises before ``_failure`` names it.
_ERRORS = (OSError, ProtocolError, ServerClosed, ConnectError)
# A pooled connection that ends this soon after the request went out, with no byte of an
# answer, was closed by the provider while idle (the keep-alive race: its FIN or RST crossed our
# request); later than that, the provider may have been working on the request (a load balancer
# dropping a long think), and sending it again could run it twice.
_RACE_WINDOW = 1.0


class H1Transport(NetworkTransport):
    """One provider's pool of plain HTTP/1.1 keep-alive connections (http:// or https://)."""

    def __init__(self, provider: Provider, keys: list[Secret], env: Mapping[str, str]) -> None:
        super().__init__(provider, keys, env)
        parts = urlsplit(provider.base_url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.host_header = host_header(self.host, parts.port, self.tls)
        self.base_path = parts.path.rstrip("/")
        self.idle: list[_Connection] = []  # most recently used last
        self.conns: set[_Connection] = set()  # every open connection, closed with the transport
        self._ssl: ssl.SSLContext | None = None
        self._idle_sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ssl = build_ssl_context(self.provider.tls) if self.tls else None
        self._reads = ReadWatch(self.provider.timeouts.read)

    async def close(self) -> None:
        if self._reads is not None:
            self._reads.close()
        if self._idle_sweep is not None:
            self._idle_sweep.cancel()
            self._idle_sweep = None
        for conn in list(self.conns):  # an answer still being read ends with an error
            if conn.busy:
                conn.fail(ServerClosed("Connection closed"))
            else:
                conn.close()
        self.idle.clear()
        self._loop = None

    async def send(
        self, method: str, path_and_query: str, headers: list[tuple[str, str]], body: bytes,
        *, timeout: float | None = None,
    ) -> UpstreamResponse:
        assert self._loop is not None and self._reads is not None, "transport not started"
        head = request_head(method, self.base_path + path_and_query, self.host_header, headers, len(body))
        total = timeout or self.provider.timeouts.total
        slots = self._slots
        if slots is not None:
            await self._take_slot(slots)
        try:
            response = await self._exchange(method, head, body, total)
        except BaseException as exc:
            if slots is not None:
                slots.release()
            if isinstance(exc, _ERRORS):
                phase = "connect" if isinstance(exc, ConnectError) else "read"
                raise self._failure(exc, phase) from exc
            raise
        response.slots = slots
        self.last_success = time.monotonic()
        return response

    async def _exchange(self, method: str, head: bytes, body: bytes, total: float | None) -> _H1Response:
        """Write the request and wait for the answer's head, on a pooled connection or a new
        one; a pooled one found closed (nothing came back) is replaced once."""
        loop = self._loop
        assert loop is not None
        deadline = loop.time() + total if total else None
        retried = False
        while True:
            conn = self._pooled()
            reused = conn is not None
            if conn is None:
                conn = await self._connect(deadline)
            conn.begin(method == "HEAD", deadline)
            if len(body) < 65536:
                conn.transport.write(head + body)  # one send; copying a small body is cheaper
            else:
                conn.transport.writelines((head, body))  # one writev on uvloop, no 90 KB copy
            sent = loop.time()
            parser = conn.parser
            try:
                while not parser.head_done:  # wait_head(), inlined: one coroutine less per request
                    await conn.wait()
            except ServerClosed:
                conn.close()
                if reused and not retried and not conn.received and loop.time() - sent < _RACE_WINDOW:
                    retried = True
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            return _H1Response(conn, self)

    def _pooled(self) -> _Connection | None:
        idle = self.idle
        if not idle:
            return None
        now = self._loop.time()  # type: ignore[union-attr]
        keepalive = self.provider.pool.keepalive_seconds
        while idle:
            conn = idle.pop()
            if now - conn.idle_since <= keepalive and not conn.lost:
                return conn
            conn.close()
        return None

    async def _connect(self, deadline: float | None) -> _Connection:
        loop = self._loop
        assert loop is not None
        wait = self.provider.timeouts.connect
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - loop.time()))
        try:
            async with asyncio.timeout(wait):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                    family=socket.AF_INET if self.provider.ipv4_only else 0,
                )
        except OSError as exc:  # DNS, TCP, TLS, and the timeout (TimeoutError is an OSError)
            raise ConnectError(exc) from exc
        return conn

    def give_back(self, conn: _Connection) -> None:
        """A connection whose answer was read to the end, ready for the next request."""
        loop = self._loop
        if loop is None or conn.lost:  # the transport was closed meanwhile
            conn.close()
            return
        conn.idle_since = loop.time()
        self.idle.append(conn)
        if self._idle_sweep is None:
            self._idle_sweep = loop.call_later(self.provider.pool.keepalive_seconds, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Close the connections idle for longer than ``pool.keepalive_seconds``."""
        self._idle_sweep = None
        loop = self._loop
        if loop is None:
            return
        keepalive = self.provider.pool.keepalive_seconds
        now = loop.time()
        stale = [c for c in self.idle if now - c.idle_since > keepalive]
        for conn in stale:
            conn.close()
        if self.idle:
            oldest = min(c.idle_since for c in self.idle)
            self._idle_sweep = loop.call_later(max(0.05, oldest + keepalive - now), self._sweep_idle)

    def forget(self, conn: _Connection) -> None:
        """``conn`` is closed: out of the pool."""
        self.conns.discard(conn)
        if conn.idle_since and conn in self.idle:
            self.idle.remove(conn)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: feeds the parser, wakes whoever waits on it, and is the
    unit ``ReadWatch`` checks (``waiting_since``, ``time_out``)."""

    def __init__(self, owner: H1Transport) -> None:
        self.owner = owner
        self.loop: asyncio.AbstractEventLoop = owner._loop  # type: ignore[assignment]
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = ResponseParser()
        self.waiter: asyncio.Future[None] | None = None
        self.waiting_since = 0.0  # loop time a read started waiting; 0 when not waiting
        self.error: BaseException | None = None
        self.received = 0  # bytes of the current answer so far
        self.busy = False
        self.paused = False
        self.whole = False  # read(): the body is wanted whole, so the socket is not paused
        self.lost = False
        self.idle_since = 0.0
        self.deadline: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.owner.conns.add(self)

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for: the connection is not trusted again
            self.transport.close()
            return
        self.received += len(data)
        parser = self.parser
        try:
            parser.feed(data)
        except ProtocolError as exc:
            self.fail(exc)
            return
        if parser.body_size > HIGH_WATER and not self.paused and not self.whole:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost finishes the answer or fails it

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.owner.forget(self)
        if not self.busy or self.error is not None:
            return
        try:
            self.parser.feed_eof()
        except ServerClosed as closed:
            self.fail(ServerClosed(_reason(exc)) if exc is not None else closed)
            return
        self._wake()

    # the exchange

    def begin(self, head_only: bool, deadline: float | None) -> None:
        self.busy = True
        self.whole = False
        self.received = 0
        self.idle_since = 0.0
        self.parser.start(head_only=head_only)
        watch = self.owner._reads
        assert watch is not None
        self.waiting_since = self.loop.time()
        watch.add(self)
        if deadline is not None:
            self.deadline = self.loop.call_at(deadline, self.time_out)

    async def wait(self) -> None:
        """Until more of the answer (or its end, or an error) is here; raises the error."""
        if self.error is not None:
            raise self.error
        if self.lost and not self.parser.complete:
            raise ServerClosed("Server disconnected")
        loop = self.loop
        self.waiter = waiter = loop.create_future()
        self.waiting_since = loop.time()
        try:
            await waiter
        finally:
            self.waiter = None
            self.waiting_since = 0.0
        if self.error is not None:
            raise self.error

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def resume(self) -> None:
        if self.paused and not self.lost:
            self.paused = False
            self.transport.resume_reading()

    def fail(self, exc: BaseException) -> None:
        """The answer cannot go on: remember why, wake the reader, close the connection."""
        if self.error is None:
            self.error = exc
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.error)
        self.transport.close()

    def time_out(self) -> None:
        """``timeouts.read`` (ReadWatch.sweep) or the total deadline passed."""
        self.fail(TimeoutError())

    def finish(self, reuse: bool) -> None:
        """The response is done with this connection: back to the pool, or closed."""
        self.busy = False
        watch = self.owner._reads
        if watch is not None:
            watch.reads.discard(self)
        self.waiting_since = 0.0
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        parser = self.parser
        if reuse and parser.complete and parser.keep_alive and self.error is None and not parser.body:
            self.resume()
            self.owner.give_back(self)
        else:
            self.close()

    def close(self) -> None:
        self.busy = False
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        watch = self.owner._reads
        if watch is not None:
            watch.reads.discard(self)
        if self.transport is not None:
            self.transport.close()
        self.owner.forget(self)


class _H1Response(UpstreamResponse):
    """The answer on one ``_Connection``; reads raise UpstreamError only."""

    __slots__ = ("_conn", "_done", "_owner", "_parser", "slots")

    def __init__(self, conn: _Connection, owner: H1Transport) -> None:
        parser = conn.parser
        super().__init__(parser.status, parser.headers, parser.raw_headers, parser.content_length)
        self._conn = conn
        self._parser = parser
        self._owner = owner
        self._done = False
        self.slots: asyncio.Semaphore | None = None  # the pool slot held, given back once

    async def read_chunk(self) -> bytes:
        parser = self._parser
        conn = self._conn
        try:
            while not parser.body:
                if parser.complete:
                    return b""
                await conn.wait()
        except _ERRORS as exc:
            raise self._owner._failure(exc, "read") from exc
        data = parser.take()
        if conn.paused:
            conn.resume()
        return data

    async def read(self, limit: int = -1) -> bytes:
        parser = self._parser
        conn = self._conn
        conn.whole = True
        conn.resume()
        try:
            while not parser.complete and (limit < 0 or parser.body_size < limit):
                await conn.wait()
        except _ERRORS as exc:
            raise self._owner._failure(exc, "read") from exc
        data = parser.take()
        if 0 <= limit < len(data):
            parser.body = [data[limit:]]  # unread: the caller closes (or reads on)
            parser.body_size = len(data) - limit
            data = data[:limit]
        return data

    def release(self) -> None:
        self._end(reuse=True)

    def close(self) -> None:
        self._end(reuse=False)

    def _end(self, *, reuse: bool) -> None:
        if self._done:
            return
        self._done = True
        self._conn.finish(reuse)
        if self.slots is not None:
            self.slots.release()
            self.slots = None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


__all__ = ["H1Transport"]
