"""Memory with many slow streams open at once through a gateway.

The scripted upstream's /slow/ streams send a chunk every 0.5 s, so every stream stays open
while the gateway's process tree is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bench.answers import MARKER
from bench.peers.instance import Instance
from bench.peers.lanes import short
from bench.workload import ANTHROPIC_HEADERS, anthropic_body, with_model


class SlowStreams:
    """`n` streams opened at once; ready once each has its first chunk or has failed."""

    def __init__(self, url: str, path: str, headers: dict[str, str], body: bytes, n: int) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port
        head = [f"POST {path} HTTP/1.1", f"host: {u.hostname}:{u.port}",
                f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        self.request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.n = n
        self.established = 0
        self.errors: list[str] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.ready = asyncio.Event()

    async def one(self) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
            self.writers.append(writer)
            writer.write(self.request)
            buf = b""
            while not MARKER.search(buf):  # the first chunk: the stream is open end to end
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError(f"closed: {buf[:150]!r}")
                buf += data
                if len(buf) > 200_000:
                    buf = buf[-1000:]
            if not buf.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(buf[:150].decode(errors="replace"))
            self.established += 1
            if self.established == self.n:
                self.ready.set()
            while await reader.read(65536):  # keep draining until we close it
                pass
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
            self.errors.append(short(str(e) or type(e).__name__))
            if self.established + len(self.errors) >= self.n:
                self.ready.set()

    def close(self) -> None:
        for w in self.writers:
            w.close()


async def _hold(streams: SlowStreams, settle: float, timeout: float,
                measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Open them all, wait until ready (or `timeout`) and `settle` more, then `measure`."""
    tasks = [asyncio.create_task(streams.one()) for _ in range(streams.n)]
    t0 = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(streams.ready.wait(), timeout)
    await asyncio.sleep(settle)
    result = {"requested": streams.n, "established": streams.established,
              "errors": len(streams.errors),
              "first_error": streams.errors[0] if streams.errors else None,
              "seconds_to_establish": round(time.monotonic() - t0 - settle, 2),
              "rss": measure()}
    streams.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


def memory_lane(inst: Instance, lane_route: str, n: int, quick: bool) -> dict[str, Any]:
    """The gateway's tree RSS with `n` streams open on `lane_route`, and after they close."""
    route = inst.routes_by[lane_route]
    body = with_model(anthropic_body("x", True), inst.peer.model(route))
    streams = SlowStreams(inst.url, inst.path_for(route), inst.headers(dict(ANTHROPIC_HEADERS)),
                          body, n)
    res = asyncio.run(_hold(streams, settle=1.0 if quick else 3.0,
                            timeout=30.0 if quick else 60.0, measure=inst.rss))
    time.sleep(2.0)
    res["rss_after_close"] = inst.rss()
    return res
