"""The upstream pool (issue 13): no silent queue at the 257th stream by default (aiohttp's
connector has no limit, nor per host); an explicit ``pool.max_connections`` waits at most
``pool.wait_timeout``, is measured, and fails naming the pool; a streamed body's read timeout
without a timer per chunk. A real ``UpstreamTransport`` against a local aiohttp server that holds every answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ccgate.config.model import Pool, Provider, Timeouts
from ccgate.errors import UpstreamError, UpstreamOverloaded
from ccgate.upstream.h1 import H1Transport
from ccgate.upstream.response import UpstreamResponse
from ccgate.upstream.transport import NetworkTransport, UpstreamTransport

pytestmark = pytest.mark.lab

# The pool's rules hold for both clients: ccgate's own (direct providers) and aiohttp (proxies).
CLIENTS = [pytest.param(H1Transport, id="h1"), pytest.param(UpstreamTransport, id="aiohttp")]


class HoldingServer:
    """Answers each request only once ``go`` is set; counts the requests that arrived."""

    def __init__(self) -> None:
        self.arrived = 0
        self.go = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived += 1
        await self.go.wait()
        return web.Response(text="ok")


@pytest.fixture
async def holding() -> AsyncIterator[HoldingServer]:
    server = HoldingServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    server.go.set()
    await runner.cleanup()


async def _send(transport: NetworkTransport) -> UpstreamResponse:
    return await transport.send("POST", "/v1/messages", [], b"{}")


@pytest.mark.parametrize("client", CLIENTS)
async def test_by_default_300_requests_are_all_in_flight_at_once(
    holding: HoldingServer, client: type[NetworkTransport]
) -> None:
    transport = client(Provider(name="p", base_url=holding.url), [], {})
    await transport.start()
    try:
        tasks = [asyncio.create_task(_send(transport)) for _ in range(300)]
        for _ in range(500):  # all 300 reach the upstream while none has been answered
            if holding.arrived == 300:
                break
            await asyncio.sleep(0.01)
        assert holding.arrived == 300
        holding.go.set()
        for response in await asyncio.gather(*tasks):
            assert response.status == 200
            await response.read()
            response.release()
    finally:
        await transport.close()


@pytest.mark.parametrize("client", CLIENTS)
async def test_an_explicit_limit_waits_measured_then_fails_naming_the_pool(
    holding: HoldingServer, client: type[NetworkTransport]
) -> None:
    provider = Provider(name="p", base_url=holding.url, pool=Pool(max_connections=2, wait_timeout=0.2))
    transport = client(provider, [], {})
    waits: list[tuple[str, float, bool]] = []
    transport.on_pool_wait = lambda name, seconds, timed_out: waits.append((name, seconds, timed_out))
    await transport.start()
    try:
        first, second = (asyncio.create_task(_send(transport)) for _ in range(2))
        while holding.arrived < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(UpstreamOverloaded) as caught:
            await _send(transport)  # both slots busy: waits wait_timeout, then fails
        assert caught.value.hop == "pool"
        assert "pool.max_connections" in caught.value.message and "pool.wait_timeout" in caught.value.message
        assert waits == [("p", pytest.approx(waits[0][1]), True)]
        third = asyncio.create_task(_send(transport))  # waits for a slot ...
        await asyncio.sleep(0.05)
        assert holding.arrived == 2
        holding.go.set()
        done = await first
        await done.read()
        done.release()  # ... which this gives back
        response = await third
        assert response.status == 200 and holding.arrived == 3
        await response.read()
        response.release()
        (await second).close()
        assert len(waits) == 2 and waits[1][0] == "p" and waits[1][2] is False
    finally:
        await transport.close()


async def _streaming_server(pauses: list[float]) -> tuple[web.AppRunner, str]:
    """An SSE answer: a chunk, then one more after each pause."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: 0\n\n")
        for n, pause in enumerate(pauses, 1):
            await asyncio.sleep(pause)
            await response.write(b"data: %d\n\n" % n)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def _read_all(response: UpstreamResponse) -> bytes:
    chunks = []
    while chunk := await response.read_chunk():
        chunks.append(chunk)
    return b"".join(chunks)


async def test_a_streamed_body_has_no_timer_per_chunk_and_still_times_out() -> None:
    # timeouts.read between chunks is the transport's sweep (ReadWatch), not aiohttp's timer
    # re-armed on every chunk: after the first read the connection's own read timeout is off.
    runner, url = await _streaming_server([0.05, 0.05, 0.05, 1.5])
    transport = UpstreamTransport(Provider(name="p", base_url=url, timeouts=Timeouts(read=0.4)), [], {})
    await transport.start()
    try:
        response = await _send(transport)
        assert await response.read_chunk() == b"data: 0\n\n"
        protocol = response._response.connection.protocol  # type: ignore[attr-defined]
        assert protocol.read_timeout is None
        assert transport._reads is not None and response in transport._reads.reads
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamError) as caught:
            await _read_all(response)  # three chunks 50 ms apart, then 1.5 s of silence
        waited = loop.time() - started
        assert caught.value.hop == "read" and "timed out" in caught.value.message, caught.value.message
        assert 0.15 + 0.4 <= waited < 0.15 + 0.4 + 0.4, waited  # late by at most a sweep, never early
        response.close()
        assert response not in transport._reads.reads
    finally:
        await transport.close()
        await runner.cleanup()


async def test_a_stream_read_to_the_end_leaves_the_watch() -> None:
    runner, url = await _streaming_server([0.05, 0.05])
    transport = UpstreamTransport(Provider(name="p", base_url=url), [], {})
    await transport.start()
    try:
        response = await _send(transport)
        assert await _read_all(response) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        response.release()
        assert transport._reads is not None and not transport._reads.reads
        again = await _send(transport)  # the pooled connection, its read timeout restored by aiohttp
        assert again._response.connection.protocol.read_timeout == 300.0  # type: ignore[attr-defined]
        await _read_all(again)
        again.release()
    finally:
        await transport.close()
        await runner.cleanup()
