"""One pooled HTTP client per provider, wired to its proxy and TLS settings.

Which key a request carries is the key pool's decision (``routing.KeyPool``); the
transport only moves bytes.

Bodies are sent and received as bytes, untouched: no decompression, no cookie jar (a
gateway shared by many clients must not mix their cookies), no headers invented by the
client library.
"""

from __future__ import annotations

import asyncio
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp_socks import (
    ProxyConnectionError,
    ProxyConnector,
    ProxyError,
    ProxyTimeoutError,
    ProxyType,
)

from ccgate.config.model import Provider
from ccgate.config.secrets import Secret
from ccgate.errors import UpstreamError, UpstreamOverloaded
from ccgate.proxy_env import ProxyDecision, resolve_proxy
from ccgate.upstream.failures import classify_failure
from ccgate.upstream.response import UpstreamResponse
from ccgate.upstream.tls import build_ssl_context

_TRANSPORT_ERRORS = (
    aiohttp.ClientError, OSError, TimeoutError, ProxyError, ProxyConnectionError, ProxyTimeoutError,
)

# Headers aiohttp would otherwise add on its own; we send only what the client sent. They are
# skipped per request, only when absent: a session-wide skip list costs aiohttp a header copy
# and a sorted multidict on every request, and Claude Code sends all three anyway.
_AUTO_HEADERS = ("user-agent", "accept", "accept-encoding")


class Watched(Protocol):
    """A read ``ReadWatch`` checks: when it started waiting (0: not waiting), how to fail it."""

    waiting_since: float

    def time_out(self) -> None: ...


class ReadWatch:
    """``timeouts.read`` between the chunks of a streamed body, as one coarse sweep per
    transport instead of a timer per chunk.

    aiohttp's own ``sock_read`` cancels and re-arms a timer on every ``data_received``:
    about 2-3 µs per chunk on uvloop, and one live timer per open stream. Streamed bodies
    (``read_chunk``) turn it off once their headers are in and are checked here instead: a
    read that has waited longer than the timeout is failed as aiohttp would have failed it
    (``SocketTimeoutError``, so the error reads the same). The deadline is met within a
    quarter of the timeout (at most a second) late, never early. The wait for the response
    head, and whole-body reads (``read``), keep aiohttp's timer: one per request. ccgate's own
    client (``upstream/h1.py``) has no timer of its own: each connection is watched here from
    its request on, the wait for the head included.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.interval = min(1.0, timeout / 4)
        self.loop = asyncio.get_running_loop()
        self.reads: set[Watched] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, response: Watched) -> None:
        self.reads.add(response)
        if self._handle is None:
            self._handle = self.loop.call_later(self.interval, self.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        for response in [r for r in self.reads if r.waiting_since and now - r.waiting_since > self.timeout]:
            response.time_out()
        self._handle = self.loop.call_later(self.interval, self.sweep) if self.reads else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class Transport(ABC):
    """One provider's way to send requests: ``UpstreamTransport`` over the network, or
    ``upstream.mock.ScriptedTransport`` in tests. What the server relies on is here."""

    def __init__(self, provider: Provider, keys: list[Secret]) -> None:
        self.provider = provider
        self.keys = keys
        self.last_success: float | None = None  # monotonic time of the last HTTP answer
        # Called with (provider, seconds waited, timed out) after a wait for a pool slot
        # (server.metrics.Metrics.pool_waited, set by server.runtime).
        self.on_pool_wait: Callable[[str, float, bool], None] | None = None

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def byok(self) -> bool:
        """Bring-your-own-key: no keys configured, the client's credential passes through."""
        return not self.keys and self.provider.auth_header != "none"

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def send(
        self, method: str, path_and_query: str, headers: list[tuple[str, str]], body: bytes,
        *, timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send one request; the caller must release or close the response. Raises
        UpstreamError, and so do the response's reads."""

    @abstractmethod
    async def probe(self, timeout: float = 5.0) -> str | None:
        """Reach the provider once; None when any HTTP answer came back, else why not."""


class NetworkTransport(Transport):
    """What both network clients share: the proxy decision (made once), the provider's
    host:port for messages, the ``pool.max_connections`` slots, failure naming and the probe."""

    def __init__(self, provider: Provider, keys: list[Secret], env: Mapping[str, str]) -> None:
        super().__init__(provider, keys)
        self.decision: ProxyDecision = resolve_proxy(provider.base_url, provider.proxy, env)
        parts = urlsplit(provider.base_url)
        self.base_url = provider.base_url
        self.target = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        self._reads: ReadWatch | None = None
        # pool.max_connections: requests in flight at once, each holding a slot from send()
        # until its response is released or closed. None (the default): no limit and no
        # semaphore on the path at all.
        limit = provider.pool.max_connections
        self._slots = asyncio.Semaphore(limit) if limit is not None else None

    async def _take_slot(self, slots: asyncio.Semaphore) -> None:
        """A slot of the pool; when all are busy, wait at most ``pool.wait_timeout`` (timed and
        counted), then fail naming the pool."""
        if not slots.locked():
            await slots.acquire()  # free: returns at once
            return
        pool = self.provider.pool
        started = time.monotonic()
        timed_out = False
        try:
            async with asyncio.timeout(pool.wait_timeout):
                await slots.acquire()
        except TimeoutError:
            timed_out = True
            raise UpstreamOverloaded(
                f"provider {self.name!r}: all {pool.max_connections} upstream connections "
                f"(pool.max_connections) stayed busy for {pool.wait_timeout:g} s "
                "(pool.wait_timeout); raise or remove pool.max_connections", hop="pool",
            ) from None
        finally:
            if self.on_pool_wait is not None:
                self.on_pool_wait(self.name, time.monotonic() - started, timed_out)

    def _failure(self, exc: BaseException, phase: str) -> UpstreamError:
        return classify_failure(
            exc, provider=self.name, target=self.target, proxy=self.decision.proxy, phase=phase
        )

    async def probe(self, timeout: float = 5.0) -> str | None:
        """Reach the provider once; None when any HTTP answer came back, else why not."""
        try:
            response = await self.send("HEAD", "/", [], b"", timeout=timeout)
        except UpstreamError as err:
            return err.message
        response.release()
        return None


class UpstreamTransport(NetworkTransport):
    """The pooled aiohttp client for one provider, through its proxy, with its TLS settings:
    every provider behind a proxy (HTTP, HTTPS, SOCKS), and any with ``http_client: aiohttp``."""

    def __init__(self, provider: Provider, keys: list[Secret], env: Mapping[str, str]) -> None:
        super().__init__(provider, keys, env)
        self._session: aiohttp.ClientSession | None = None
        self._request_proxy: dict[str, Any] = {}

    async def start(self) -> None:
        p = self.provider
        ssl_ctx = build_ssl_context(p.tls)
        common: dict[str, Any] = {
            "limit": 0,  # the pool's limit is ours (_slots): aiohttp's queues without a word
            "keepalive_timeout": p.pool.keepalive_seconds,
            "ssl": ssl_ctx,
            "family": socket.AF_INET if p.ipv4_only else 0,
        }
        proxy = self.decision.proxy
        connector: aiohttp.BaseConnector
        if proxy is not None and proxy.is_socks:
            connector = ProxyConnector(
                proxy_type=ProxyType.SOCKS5,
                host=proxy.host,
                port=proxy.port,
                username=proxy.username,
                password=proxy.password,
                rdns=proxy.scheme == "socks5h",
                **common,
            )
        else:
            connector = aiohttp.TCPConnector(**common)
            if proxy is not None:
                self._request_proxy = {"proxy": proxy.url_without_credentials}
                if proxy.username is not None:
                    self._request_proxy["proxy_auth"] = aiohttp.BasicAuth(
                        proxy.username, proxy.password or ""
                    )
        t = p.timeouts
        self._reads = ReadWatch(t.read)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.read),
            trust_env=False,  # the proxy decision above is ours, made once and documented
        )

    async def close(self) -> None:
        if self._reads is not None:
            self._reads.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, method: str, path_and_query: str, headers: list[tuple[str, str]], body: bytes,
        *, timeout: float | None = None,
    ) -> UpstreamResponse:
        # No aiohttp exception leaves this module: send and the response's reads map them.
        assert self._session is not None, "transport not started"
        present = {name.lower() for name, _ in headers}
        skip = [name for name in _AUTO_HEADERS if name not in present]
        slots = self._slots
        if slots is not None:
            await self._take_slot(slots)
        try:
            response = await self._session.request(
                method,
                self.base_url + path_and_query,
                headers=headers,
                skip_auto_headers=skip or None,
                data=body if body else None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout) if timeout else self._session.timeout,
                **self._request_proxy,
            )
        except BaseException as exc:
            if slots is not None:
                slots.release()
            if isinstance(exc, _TRANSPORT_ERRORS):
                phase = "read" if isinstance(exc, aiohttp.SocketTimeoutError) else "connect"
                raise self._failure(exc, phase) from exc
            raise
        self.last_success = time.monotonic()
        assert self._reads is not None
        return _AiohttpResponse(response, self._failure, slots, self._reads)

class _AiohttpResponse(UpstreamResponse):
    """An aiohttp response whose body reads raise UpstreamError only."""

    __slots__ = ("_content", "_failure", "_response", "_slots", "_watch", "_watched", "waiting_since")

    def __init__(
        self, response: aiohttp.ClientResponse, failure: Callable[[BaseException, str], UpstreamError],
        slots: asyncio.Semaphore | None, watch: ReadWatch,
    ) -> None:
        super().__init__(response.status, response.headers, response.raw_headers,
                         response.content_length)
        self._response = response
        self._content = response.content
        self._failure = failure
        self._slots = slots  # the pool slot this response holds, given back once
        # The read timeout of a streamed body: ReadWatch, from the first read_chunk on.
        self._watch = watch
        self._watched = False
        self.waiting_since = 0.0  # loop time a read_chunk started waiting; 0 when not waiting

    async def read_chunk(self) -> bytes:
        watch = self._watch
        if not self._watched:
            self._watch_reads(watch)
        self.waiting_since = watch.loop.time()
        try:
            return await self._content.readany()
        except _TRANSPORT_ERRORS as exc:
            raise self._failure(exc, "read") from exc
        finally:
            self.waiting_since = 0.0

    def _watch_reads(self, watch: ReadWatch) -> None:
        """From the first chunk on, the read timeout is the watch's, not a timer per chunk."""
        self._watched = True
        connection = self._response.connection
        if connection is None or connection.protocol is None:
            return  # the body is all here already: no read will wait
        connection.protocol.read_timeout = None  # the pending timer goes at the next data
        watch.add(self)

    def time_out(self) -> None:
        """Fail the waiting read as aiohttp's ``sock_read`` timer does (ReadWatch.sweep)."""
        self._content.set_exception(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))

    async def read(self, limit: int = -1) -> bytes:
        try:
            if limit < 0:
                return await self._response.read()
            # StreamReader.read(n) gives what is buffered, up to n: loop to the limit or the end.
            chunks: list[bytes] = []
            size = 0
            while size < limit:
                chunk = await self._content.read(limit - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)
        except _TRANSPORT_ERRORS as exc:
            raise self._failure(exc, "read") from exc

    def release(self) -> None:
        self._response.release()
        self._give_back()

    def close(self) -> None:
        self._response.close()
        self._give_back()

    def _give_back(self) -> None:
        self._watch.reads.discard(self)
        if self._slots is not None:
            self._slots.release()
            self._slots = None
