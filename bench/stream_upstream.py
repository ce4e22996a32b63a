"""The scripted streaming upstream: a tiny asyncio HTTP/1.1 server (uvloop + httptools).

nginx serves every fixed answer as one static body, so a long stream reaches a gateway in a
few TCP reads and the gateway translates it in batches. A real model writes one chunk at a
time. This server does that: each chunk is its own write (TCP_NODELAY: its own segment),
with a pause between chunks, so a gateway pays one read + translate + send per chunk. Every
chunk's text is a marker carrying the moment it was written (bench/answers.py), so the client
measures each chunk's latency through the gateway.

It speaks both protocols, chosen by the path's tail, with the mode as the first segment:

  /<mode>/v1/chat/completions   OpenAI (Bearer key)      /<mode>/v1/messages   Anthropic
  mode  paced  N chunks, one write each, --gap-us apart (default 500 x ~1 ms)
        slow   N chunks, one write each, --slow-gap seconds apart (for many open streams)
        burst  the same N chunks in one write
        (none) a short answer: "Hello! How can I help you today?" as JSON or a short stream
  JSON or SSE follows the request body's "stream"; count_tokens and models answer too.

It answers 401 unless the request carries the upstream key (x-api-key or Bearer), so a 200
through a gateway proves the gateway swapped the credential. `GET /__last?p=<path>` returns
the last body POSTed to <path> (the bench reads what a gateway actually sent upstream).

  python -m bench.stream_upstream --port P --key K [--gap-us 1000] [--chunks 500]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httptools
import uvloop

from bench import answers
from bench.common import REPO, http
from bench.procs import LoopbackServer

_MODES = {"paced": "paced", "slow": "slow", "burst": "burst", "sse500": "burst"}
_HDR = "HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\n{extra}\r\n"


class StreamUpstream(LoopbackServer):
    """This server as a subprocess of the bench, on 127.0.0.1:<free port>."""

    what = "stream upstream"

    def __init__(self, workdir: Path, key: str, gap_us: int = 1000,
                 chunks: int = answers.N_CHUNKS, slow_gap: float = 1.0) -> None:
        super().__init__()
        self.key = key
        self.args = ["--chunks", str(chunks), "--gap-us", str(gap_us),
                     "--slow-gap", str(slow_gap)]
        self.log = workdir / f"stream-upstream-{self.port}.log"

    def start(self) -> StreamUpstream:
        self.launch([sys.executable, "-m", "bench.stream_upstream", "--port", str(self.port),
                     "--key", self.key, *self.args],
                    cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))
        return self

    def last(self, path: str) -> bytes | None:
        """The last body POSTed to `path` (what a gateway sent upstream)."""
        status, body = http("GET", self.url + "/__last?" + urlencode({"p": path}))
        return body if status == 200 else None


class Server:
    def __init__(self, key: str, chunks: int, gap_us: int, slow_gap: float) -> None:
        self.key = key
        self.chunks = chunks
        self.gap = gap_us / 1e6
        self.slow_gap = slow_gap
        self.last: dict[str, bytes] = {}
        # the last POST: when it was complete here, and its number on its connection
        self.meta: dict[str, int] = {}
        self.open_streams = 0


class Conn(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.s = server
        self.parser = httptools.HttpRequestParser(self)
        self.queue: asyncio.Queue[tuple[str, str, dict[str, str], bytes] | None] = \
            asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.task: asyncio.Task[None] | None = None
        self.served = 0  # requests on this connection
        self.received_ns = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.task = asyncio.get_running_loop().create_task(self.serve())

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"
                       b"connection: close\r\n\r\n")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.queue.put_nowait(None)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.received_ns = time.monotonic_ns()
        method = self.parser.get_method().decode()
        self.queue.put_nowait((method, self.url.decode("latin-1"), self.headers,
                               b"".join(self.body)))

    # responses
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}.get(status, "X")
        head = _HDR.format(status=status, reason=reason, ctype=ctype,
                           extra=f"content-length: {len(body)}\r\n")
        self.write(head.encode() + body)

    def chunk(self, data: bytes) -> None:
        self.write(b"%x\r\n%s\r\n" % (len(data), data))

    async def serve(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None or self.closed:
                return
            try:
                await self.handle(*item)
            except (ConnectionError, RuntimeError):
                self.close()
                return

    async def handle(self, method: str, url: str, headers: dict[str, str],
                     body: bytes) -> None:
        parts = urlsplit(url)
        if self.control(method, parts.path, parts.query):
            return
        if method == "POST":
            self.record(parts.path, body)
        auth = headers.get("x-api-key") or headers.get("authorization", "").removeprefix(
            "Bearer ").strip()
        if auth != self.s.key:
            self.send(401, b'{"type":"error","error":{"type":"authentication_error",'
                           b'"message":"bench upstream: wrong key"}}')
            return
        await self.answer(parts.path, body)

    def control(self, method: str, path: str, query: str) -> bool:
        """The bench's own requests (health, what arrived): answered here, True if so."""
        if method == "GET" and path == "/__last":
            p = parse_qs(query).get("p", [""])[0]
            self.send(200 if p in self.s.last else 404, self.s.last.get(p, b"{}"))
        elif method in ("GET", "HEAD") and path in ("/", "/health"):
            self.send(200, b"{}")
        elif method == "GET" and path == "/__meta":
            self.send(200, json.dumps(self.s.meta).encode())
        else:
            return False
        return True

    def record(self, path: str, body: bytes) -> None:
        """Keep what a POST brought and when it was complete (GET /__last, /__meta)."""
        self.s.last[path] = body
        self.served += 1
        self.s.meta = {"received_ns": self.received_ns, "conn_requests": self.served}

    async def answer(self, path: str, body: bytes) -> None:
        if path.endswith("/models"):
            self.send(200, json.dumps({"object": "list", "data": [
                {"id": answers.OAI_MODEL, "object": "model", "type": "model",
                 "created": 1763700000, "owned_by": "bench"}]}).encode())
            return
        if path.endswith("/count_tokens"):
            self.send(200, b'{"input_tokens":12}')
            return
        openai = path.endswith("/chat/completions")
        if not openai and not path.endswith("/messages"):
            self.send(404, b'{"error":{"message":"bench: unknown path"}}')
            return
        try:
            stream = bool(json.loads(body or b"{}").get("stream"))
        except (ValueError, AttributeError):
            stream = False
        # sse500 = burst and sse = short, so this server can stand in for nginx's paths.
        mode = _MODES.get(path.strip("/").split("/")[0], "")
        if not stream:
            self.send(200, answers.CHAT_COMPLETION_BYTES if openai else answers.MESSAGE_BYTES)
        elif not mode:
            self.send(200, answers.OAI_SHORT_SSE if openai else answers.ANTH_SHORT_SSE,
                      "text/event-stream")
        elif mode == "burst":
            self.send(200, answers.OAI_LONG_SSE if openai else answers.ANTH_LONG_SSE,
                      "text/event-stream")
        else:
            await self.paced(openai, self.s.gap if mode == "paced" else self.s.slow_gap)

    async def paced(self, openai: bool, gap: float) -> None:
        head = _HDR.format(status=200, reason="OK", ctype="text/event-stream",
                           extra="cache-control: no-cache\r\ntransfer-encoding: chunked\r\n")
        text = answers.oai_text if openai else answers.anth_text
        self.s.open_streams += 1
        try:
            self.write(head.encode())
            self.chunk(answers.OAI_HEAD if openai else answers.anth_head())
            for i in range(self.s.chunks):
                await asyncio.sleep(gap)
                if self.closed:
                    return
                self.chunk(text(answers.marker(i, time.monotonic_ns())))
            await asyncio.sleep(gap)
            self.chunk(answers.oai_tail() if openai else answers.anth_tail(self.s.chunks))
            self.write(b"0\r\n\r\n")
        finally:
            self.s.open_streams -= 1


async def amain(args: argparse.Namespace) -> None:
    server = Server(args.key, args.chunks, args.gap_us, args.slow_gap)
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: Conn(server), "127.0.0.1", args.port, backlog=4096)
    async with srv:
        await srv.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--chunks", type=int, default=answers.N_CHUNKS)
    ap.add_argument("--gap-us", type=int, default=1000, help="pause between paced chunks")
    ap.add_argument("--slow-gap", type=float, default=1.0,
                    help="seconds between chunks in /slow/ streams")
    # A scripted upstream must not pause its streams: with thousands open, the collector's passes
    # over their objects held it for 2.7 s in all in a 9,000-stream run, delaying the chunks of
    # every relay alike. It runs for one bench run and makes no garbage cycles worth collecting.
    gc.disable()
    uvloop.run(amain(ap.parse_args(argv)))


if __name__ == "__main__":
    main()

