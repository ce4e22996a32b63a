"""ccgate's own HTTP/1.1 upstream client (upstream/h1.py) against real servers on 127.0.0.1: raw
asyncio servers that write exactly the bytes a test scripts (TLS with the lab CA, client
certificates), and nginx for a real server's keep-alive behaviour. Where aiohttp's transport
must behave the same (failures named, streaming, limits), both clients run the same test."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from ccgate.config.model import Pool, Provider, Timeouts, Tls
from ccgate.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from ccgate.upstream.h1 import H1Transport
from ccgate.upstream.response import UpstreamResponse
from ccgate.upstream.transport import NetworkTransport, UpstreamTransport
from tests.gateway.harness import free_port
from tests.lab.certs import LabPKI

pytestmark = pytest.mark.lab

CLIENTS = [pytest.param(H1Transport, id="h1"), pytest.param(UpstreamTransport, id="aiohttp")]
Client = type[NetworkTransport]
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request: its head (through the blank line) and its body (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length) if length else b""


class RawServer:
    """Hands each connection to ``handler(reader, writer, n)`` (n: the connection's number from
    0); records every request read with ``read_request``."""

    def __init__(self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]],
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.closed = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # each connection (Server.close_clients is 3.13+)
            writer.transport.abort()
        await asyncio.wait(self._tasks, timeout=5) if self._tasks else None

    async def read(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        request = await read_request(reader)
        self.requests.append(request)
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = self.connections
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self.handler(reader, writer, n)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()


def answer(body: bytes = b"ok", *headers: str, status: str = "200 OK") -> bytes:
    lines = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\n{lines}Content-Length: {len(body)}\r\n\r\n".encode() + body


def keep_answering(server_ref: list[RawServer], reply: bytes = b"") -> Callable[..., Awaitable[None]]:
    """A handler answering every request of a connection with ``reply`` (default: ``answer()``)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await server_ref[0].read(reader)
            writer.write(reply or answer())
            await writer.drain()

    return handle


async def started(client: Client, url: str, **provider: object) -> NetworkTransport:
    transport = client(Provider(name="p", base_url=url, **provider), [], {})  # type: ignore[arg-type]
    await transport.start()
    return transport


async def body_of(response: UpstreamResponse) -> bytes:
    chunks = []
    while chunk := await response.read_chunk():
        chunks.append(chunk)
    response.release()
    return b"".join(chunks)


@pytest.fixture
async def ok_server() -> AsyncIterator[RawServer]:
    ref: list[RawServer] = []
    async with RawServer(keep_answering(ref)) as server:
        ref.append(server)
        yield server


# --- bytes both ways -------------------------------------------------------------------------

async def test_request_and_answer_bytes_are_untouched() -> None:
    gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(256))  # not inflated
    ref: list[RawServer] = []
    async with RawServer(keep_answering(ref, answer(gz, "Content-Encoding: gzip", "X-Dup: 1", "x-dup: 2",
                                                    status="201 Created"))) as server:
        ref.append(server)
        transport = await started(H1Transport, server.url + "/prefix")
        try:
            body = b'{ "model" :"m",\n"x":"caf\xc3\xa9"}'
            headers = [("x-api-key", "sk-up"), ("anthropic-version", "2023-06-01"), ("X-Case", "Kept")]
            response = await transport.send("POST", "/v1/messages?beta=true", headers, body)
            assert response.status == 201
            assert response.raw_headers[:3] == [(b"Content-Encoding", b"gzip"), (b"X-Dup", b"1"), (b"x-dup", b"2")]
            assert response.headers["content-encoding"] == "gzip" and response.content_length == len(gz)
            assert await response.read() == gz
            response.release()
        finally:
            await transport.close()
    host = server.url.split("//")[1]
    assert server.requests == [(
        b"POST /prefix/v1/messages?beta=true HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"x-api-key: sk-up\r\nanthropic-version: 2023-06-01\r\nX-Case: Kept\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n", body)]


@pytest.mark.parametrize("client", CLIENTS)
async def test_chunked_stream_arrives_chunk_by_chunk(client: Client) -> None:
    """Each chunk is read before the server writes the next one: nothing waits for more."""
    got: list[asyncio.Event] = [asyncio.Event() for _ in range(3)]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i, event in enumerate(got):
            data = b"data: %d\n\n" % i
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()
            await asyncio.wait_for(event.wait(), 5)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with RawServer(handle) as server:
        transport = await started(client, server.url)
        try:
            response = await transport.send("POST", "/v1/messages", [], b"{}")
            assert response.is_event_stream and response.content_length is None
            for i, event in enumerate(got):
                assert await asyncio.wait_for(response.read_chunk(), 5) == b"data: %d\n\n" % i
                event.set()
            assert await response.read_chunk() == b""
            response.release()
        finally:
            await transport.close()


@pytest.mark.parametrize("client", CLIENTS)
async def test_read_with_a_limit_stops_there(client: Client) -> None:
    ref: list[RawServer] = []
    async with RawServer(keep_answering(ref, answer(b"x" * 300_000))) as server:
        ref.append(server)
        transport = await started(client, server.url)
        try:
            response = await transport.send("POST", "/v1/messages", [], b"{}")
            assert await response.read(1000) == b"x" * 1000
            response.close()
        finally:
            await transport.close()


async def test_interim_answers_and_a_body_until_close() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"the end")

    async with RawServer(handle) as server:
        transport = await started(H1Transport, server.url)
        try:
            response = await transport.send("POST", "/v1/messages", [], b"{}")
            assert response.status == 200 and [k for k, _ in response.raw_headers] == [b"Connection"]
            assert await body_of(response) == b"until the end"
            assert await body_of(await transport.send("POST", "/v1/messages", [], b"{}")) == b"until the end"
            assert server.connections == 2  # Connection: close is not reused
        finally:
            await transport.close()


@pytest.mark.parametrize("client", CLIENTS)
async def test_large_headers_pass_and_a_huge_head_is_refused(client: Client) -> None:
    big = [f"X-Big-{i}: {'v' * 4000}" for i in range(10)]  # 40 KB, each field under aiohttp's 8190

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        heads = big if n == 0 else [f"X-Big-{i}: {'v' * 8000}" for i in range(130)]  # ~1 MB
        writer.write(answer(b"ok", *heads, "Connection: close"))
        await writer.drain()

    async with RawServer(handle) as server:
        transport = await started(client, server.url)
        try:
            response = await transport.send("POST", "/v1/messages", [], b"{}")
            assert len(response.raw_headers) == 12 and await body_of(response) == b"ok"
            with pytest.raises(UpstreamUnreachable) as caught:
                await transport.send("POST", "/v1/messages", [], b"{}")
            assert caught.value.hop == "upstream" and "request to provider 'p'" in caught.value.message
        finally:
            await transport.close()


# --- the pool --------------------------------------------------------------------------------

async def test_keep_alive_one_connection_and_idle_ones_closed_after_keepalive(ok_server: RawServer) -> None:
    transport = await started(H1Transport, ok_server.url, pool=Pool(keepalive_seconds=0.3))
    try:
        for _ in range(5):
            assert await body_of(await transport.send("POST", "/v1/messages", [], b"{}")) == b"ok"
        assert ok_server.connections == 1 and ok_server.closed == 0
        await asyncio.sleep(0.8)
        assert ok_server.closed == 1  # closed by the pool after keepalive_seconds idle
        assert await body_of(await transport.send("POST", "/v1/messages", [], b"{}")) == b"ok"
        assert ok_server.connections == 2
    finally:
        await transport.close()


async def test_concurrent_requests_each_get_a_connection_and_come_back(ok_server: RawServer) -> None:
    transport = await started(H1Transport, ok_server.url)
    try:
        responses = await asyncio.gather(*(transport.send("POST", "/", [], b"{}") for _ in range(20)))
        assert ok_server.connections == 20  # no queue: a connection each
        for response in responses:
            assert await body_of(response) == b"ok"
        assert isinstance(transport, H1Transport) and len(transport.idle) == 20
    finally:
        await transport.close()


async def test_a_connection_closed_while_idle_is_replaced_once_and_silently() -> None:
    """The keep-alive race: the server closes a pooled connection as the next request goes out."""
    ref: list[RawServer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await ref[0].read(reader)
        writer.write(answer(b"first" if n == 0 else b"fresh"))
        await writer.drain()
        if n == 0:
            await ref[0].read(reader)  # the second request on the pooled connection: no answer
            writer.transport.abort()
            return
        await reader.read()

    async with RawServer(handle) as server:
        ref.append(server)
        transport = await started(H1Transport, server.url)
        try:
            assert await body_of(await transport.send("POST", "/v1/messages", [], b"{}")) == b"first"
            assert await body_of(await transport.send("POST", "/v1/messages", [], b"{}")) == b"fresh"
            assert server.connections == 2 and len(server.requests) == 3
        finally:
            await transport.close()


@pytest.mark.parametrize(("reused", "partial", "after"), [
    (False, b"", 0.0),  # a new connection: no race to blame
    (True, b"HTTP/1.1 200 OK\r\n", 0.0),  # the answer began
    (True, b"", 1.3),  # the provider had the request for longer than the race window
])
async def test_no_retry_on_a_new_connection_once_the_answer_began_or_after_a_while(
    reused: bool, partial: bytes, after: float
) -> None:
    ref: list[RawServer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await ref[0].read(reader)
        if n == 0 and reused:
            writer.write(answer(b"first"))
            await ref[0].read(reader)
        await asyncio.sleep(after)
        writer.write(partial)
        await writer.drain()
        writer.transport.abort()

    async with RawServer(handle) as server:
        ref.append(server)
        transport = await started(H1Transport, server.url)
        try:
            if reused:
                assert await body_of(await transport.send("POST", "/v1/messages", [], b"{}")) == b"first"
            with pytest.raises(UpstreamUnreachable) as caught:
                await transport.send("POST", "/v1/messages", [], b"{}")
            assert caught.value.hop == "upstream" and "closed the connection" in caught.value.message
            assert server.connections == 1
        finally:
            await transport.close()


async def test_close_mid_body_drops_the_connection_and_release_unread_too() -> None:
    ref: list[RawServer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await ref[0].read(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with RawServer(handle) as server:
        ref.append(server)
        transport = await started(H1Transport, server.url)
        try:
            response = await transport.send("POST", "/", [], b"{}")
            assert await response.read_chunk() == b"first"
            response.close()
            for _ in range(100):
                if server.closed:
                    break
                await asyncio.sleep(0.02)
            assert server.closed == 1  # the provider sees the request end
            response = await transport.send("POST", "/", [], b"{}")
            response.release()  # not read to the end: closed, not pooled
            assert isinstance(transport, H1Transport) and not transport.idle
            assert await body_of(await transport.send("POST", "/", [], b"{}")) == b"first"
            assert server.connections == 3 and len(transport.idle) == 1
        finally:
            await transport.close()


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_body_cut_short_fails_the_read_naming_the_provider(client: Client) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    async with RawServer(handle) as server:
        transport = await started(client, server.url)
        try:
            response = await transport.send("POST", "/", [], b"{}")
            with pytest.raises(UpstreamUnreachable) as caught:
                await response.read()
            response.close()
            assert caught.value.hop == "upstream" and "closed the connection" in caught.value.message
        finally:
            await transport.close()


# --- failures named as aiohttp's are ---------------------------------------------------------

async def _failure(client: Client, url: str, **provider: object) -> UpstreamError:
    transport = await started(client, url, **provider)
    try:
        with pytest.raises(UpstreamError) as caught:
            await transport.send("POST", "/v1/messages", [], b"{}")
        return caught.value
    finally:
        await transport.close()


async def test_refused_connection_reads_the_same_with_both_clients() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    ours, theirs = [await _failure(c, url) for c in (H1Transport, UpstreamTransport)]
    assert (ours.hop, ours.message) == (theirs.hop, theirs.message)
    assert ours.hop == "tcp" and ours.message.startswith(f"cannot connect to provider 'p' ({url[7:]})")


async def test_connect_timeout_covers_the_tls_handshake_with_both_clients() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.read()  # accepts TCP, never speaks TLS

    async with RawServer(silent) as server:
        url = server.url.replace("http://", "https://")
        started_at = time.monotonic()
        ours, theirs = [await _failure(c, url, timeouts=Timeouts(connect=0.3)) for c in (H1Transport, UpstreamTransport)]
        assert time.monotonic() - started_at < 3
    assert isinstance(ours, UpstreamTimeout) and (ours.hop, ours.message) == (theirs.hop, theirs.message)
    assert ours.message.startswith("timed out connecting to provider 'p'")


@pytest.mark.parametrize("client", CLIENTS)
async def test_no_answer_head_in_time_is_a_read_timeout(client: Client) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        await reader.read()

    async with RawServer(hang) as server:
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        err = await _failure(client, server.url, timeouts=Timeouts(read=0.4))
        waited = loop.time() - started_at
    assert isinstance(err, UpstreamTimeout) and err.hop == "read"
    assert err.message == f"timed out waiting for provider 'p' ({server.url[7:]}) to answer"
    assert 0.4 <= waited < 0.4 + 0.4, waited


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_stalled_stream_times_out_between_chunks(client: Client) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(3):
            writer.write(b"9\r\ndata: %d\n\n\r\n" % i)
            await writer.drain()
            await asyncio.sleep(0.15)  # closer than the timeout: the stream lives on
        await reader.read()

    async with RawServer(stall) as server:
        transport = await started(client, server.url, timeouts=Timeouts(read=0.4))
        try:
            response = await transport.send("POST", "/", [], b"{}")
            if isinstance(transport, H1Transport):  # no timer per request or chunk: the one sweep
                assert transport._reads is not None and transport._reads.reads == transport.conns
                assert all(c.deadline is None for c in transport.conns)
            loop = asyncio.get_running_loop()
            with pytest.raises(UpstreamTimeout) as caught:
                while await response.read_chunk():
                    last = loop.time()
            silent = loop.time() - last
            response.close()
            assert caught.value.hop == "read" and "timed out waiting" in caught.value.message
            assert 0.4 <= silent < 0.4 + 0.4, silent
        finally:
            await transport.close()


async def test_a_total_timeout_ends_a_slow_answer() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with RawServer(trickle) as server:
        transport = await started(H1Transport, server.url)
        try:
            response = await transport.send("POST", "/", [], b"{}", timeout=0.5)
            with pytest.raises(UpstreamTimeout):
                while await response.read_chunk():
                    pass
            response.close()
        finally:
            await transport.close()


# --- TLS -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki() -> LabPKI:
    return LabPKI()


async def test_tls_with_a_test_ca_and_verification_failures_named(pki: LabPKI, tmp_path: Path) -> None:
    ref: list[RawServer] = []
    async with RawServer(keep_answering(ref), pki.server_context()) as server:
        ref.append(server)
        ca = pki.write_ca(tmp_path)
        transport = await started(H1Transport, server.url, tls=Tls(ca_file=str(ca)))
        try:
            for _ in range(2):
                assert await body_of(await transport.send("POST", "/", [], b"{}")) == b"ok"
            assert server.connections == 1
        finally:
            await transport.close()
        other = pki.write_ca(tmp_path, "other.pem", ca=pki.interceptor_ca)
        ours, theirs = [await _failure(c, server.url, tls=Tls(ca_file=str(other)))
                        for c in (H1Transport, UpstreamTransport)]
    assert (ours.hop, ours.message) == (theirs.hop, theirs.message)
    assert ours.hop == "tls" and "TLS verification failed" in ours.message and "tls.ca_file" in ours.message


async def test_tls_client_certificate(pki: LabPKI, tmp_path: Path) -> None:
    server_ctx = pki.server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    pki.ca.configure_trust(server_ctx)
    client = pki.ca.issue_cert("ccgate-client@example.test")
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(b"".join(b.bytes() for b in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(key))
    ca = pki.write_ca(tmp_path)
    ref: list[RawServer] = []
    async with RawServer(keep_answering(ref), server_ctx) as server:
        ref.append(server)
        refused = await _failure(H1Transport, server.url, tls=Tls(ca_file=str(ca)))
        assert refused.hop in ("tls", "upstream"), refused
        transport = await started(H1Transport, server.url,
                                  tls=Tls(ca_file=str(ca), client_cert=str(cert), client_key=str(key)))
        try:
            assert await body_of(await transport.send("POST", "/", [], b"{}")) == b"ok"
        finally:
            await transport.close()


# --- the probe, closing ----------------------------------------------------------

async def test_probe_with_head_and_closing_the_transport_ends_a_stream() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        head, _ = await read_request(reader)
        if head.startswith(b"HEAD"):
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 1000\r\n\r\n")  # no body
            await writer.drain()
            await reader.read()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await reader.read()

    async with RawServer(handle) as server:
        transport = await started(H1Transport, server.url)
        assert await asyncio.wait_for(transport.probe(timeout=2), 5) is None
        response = await transport.send("POST", "/", [], b"{}")
        assert await response.read_chunk() == b"first"
        await transport.close()
        with pytest.raises(UpstreamUnreachable):
            await asyncio.wait_for(response.read_chunk(), 2)
        response.close()


# --- nginx: a real server's keep-alive limits ------------------------------------------------

_NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    keepalive_requests 3;
    keepalive_timeout 1s;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "from nginx"; }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("nginx not installed: run scripts/install-test-deps")
        pytest.skip("nginx not installed: run scripts/install-test-deps")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(d=tmp_path, port=port))
    proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"nginx did not start: {(tmp_path / 'error.log').read_text()}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("client", CLIENTS)
async def test_nginx_closing_keep_alive_connections_between_requests(nginx: str, client: Client) -> None:
    """keepalive_requests 3 (nginx says Connection: close on the third) and keepalive_timeout 1 s
    (nginx closes an idle connection): every request still gets its answer."""
    transport = await started(client, nginx, pool=Pool(keepalive_seconds=60))
    try:
        for _ in range(7):
            response = await transport.send("GET", "/v1/models", [], b"")
            assert response.status == 200 and await body_of(response) == b"from nginx"
        await asyncio.sleep(1.5)  # nginx closes the idle connection first
        response = await transport.send("GET", "/v1/models", [], b"")
        assert await body_of(response) == b"from nginx"
    finally:
        await transport.close()
