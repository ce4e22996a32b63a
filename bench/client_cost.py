"""CPU per request of each upstream client alone: ccgate's own HTTP/1.1 client (upstream/h1.py)
against aiohttp's (upstream/transport.py), both as the gateway drives them (send, read the JSON
answer whole, release), against the bench's nginx on loopback.

The figure is this process's `time.process_time()` over the requests (nginx is another
process), in alternating rounds, so it does not depend on what else the machine runs as much
as req/s does. It includes the request's loopback `send()`, whose receive side runs in the
sender's syscall, and the event loop (uvloop) around the client.

`--paced` measures streamed bodies instead: CPU per chunk read from bench/stream_upstream.py's
paced stream (500 chunks, each its own write ~1 ms apart, so one wake-up and read per chunk),
read with `read_chunk` as the relay does.

    .venv/bin/python -m bench.client_cost --requests 6000 --rounds 5
    .venv/bin/python -m bench.client_cost --paced --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import uvloop

from bench.gateway import UPSTREAM_KEY
from bench.nginx import Nginx
from bench.stream_upstream import StreamUpstream
from bench.workload import ANTHROPIC_HEADERS, SMALL_BODY, anthropic_body
from ccgate.config.model import Provider
from ccgate.upstream.h1 import H1Transport
from ccgate.upstream.transport import NetworkTransport, UpstreamTransport

CLIENTS: dict[str, type[NetworkTransport]] = {"h1": H1Transport, "aiohttp": UpstreamTransport}


async def _load(transport: NetworkTransport, headers: list[tuple[str, str]], requests: int,
                concurrency: int) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            response = await transport.send("POST", "/v1/messages", headers, SMALL_BODY)
            assert response.status == 200, response.status
            await response.read()
            response.release()

    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))


async def _streams(transport: NetworkTransport, headers: list[tuple[str, str]], count: int) -> int:
    """``count`` paced streams one after the other; the chunks read."""
    body = anthropic_body("claude-sonnet-4-5", stream=True)
    reads = 0
    for _ in range(count):
        response = await transport.send("POST", "/paced/v1/messages", headers, body)
        assert response.status == 200, response.status
        while await response.read_chunk():
            reads += 1
        response.release()
    return reads


async def _measure(url: str, requests: int, rounds: int, concurrency: int,
                   paced: bool) -> dict[str, list[float]]:
    headers = [*ANTHROPIC_HEADERS.items(), ("x-api-key", UPSTREAM_KEY)]
    transports = {name: cls(Provider(name="bench", base_url=url), [], {}) for name, cls in CLIENTS.items()}
    results: dict[str, list[float]] = {name: [] for name in transports}
    for transport in transports.values():
        await transport.start()
        if paced:
            await _streams(transport, headers, 1)
        else:
            await _load(transport, headers, 1000, concurrency)  # warm: connections open, code paths hot
    try:
        for n in range(rounds):
            order = list(transports.items())
            for name, transport in order if n % 2 == 0 else reversed(order):
                started = time.process_time()
                if paced:
                    count = await _streams(transport, headers, 3)
                else:
                    await _load(transport, headers, requests, concurrency)
                    count = requests
                results[name].append((time.process_time() - started) / count * 1e6)
    finally:
        for transport in transports.values():
            await transport.close()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=6000, help="per round and client")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--paced", action="store_true", help="CPU per chunk of paced streams instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccgate-client-cost-") as work:
        server = (StreamUpstream(Path(work), UPSTREAM_KEY) if args.paced else Nginx(Path(work), UPSTREAM_KEY)).start()
        try:
            results = uvloop.run(_measure(server.url, args.requests, args.rounds, args.concurrency, args.paced))
        finally:
            server.stop()
    if args.paced:
        print(f"client CPU per chunk read, paced streams, {args.rounds} alternating rounds of 3 streams "
              "(median, then each round):")
    else:
        print(f"client CPU per request, c={args.concurrency}, {args.rounds} alternating rounds of "
              f"{args.requests} requests (median, then each round):")
    for name, values in results.items():
        print(f"  {name:<8} {statistics.median(values):6.1f} us   " + " ".join(f"{v:.1f}" for v in values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
