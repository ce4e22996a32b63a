"""N concurrent long streams from one process: raw asyncio protocols on uvloop.

Each stream is its own connection with one `POST /v1/messages` (`stream: true`). The scripted
upstream's /slow/ streams write one text chunk per second, each carrying the CLOCK_MONOTONIC time
it was written (bench/answers.py), so every chunk's latency is its arrival here minus that stamp:
the same clock, the same machine. Per stream: time to the first response byte (from the request's
write) and to its end; overall: the wall time from the first request to the last stream's end.

Connections are opened in batches (`ramp`) so a burst of thousands of SYNs does not overflow
the listen backlog of whichever server is measured (that would add SYN retries of a second,
identical for both, but noise); the ramp is the same for direct and ccgate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench.answers import MARKER

_END = b"0\r\n\r\n"  # the last chunk of a chunked response: the stream is over


@dataclass
class StreamStats:
    ttfb_ns: list[int] = field(default_factory=list)
    chunk_latency_ns: list[int] = field(default_factory=list)
    done: int = 0
    chunks: int = 0
    errors: list[str] = field(default_factory=list)
    first_sent_ns: int = 0
    last_done_ns: int = 0


class _Stream(asyncio.Protocol):
    def __init__(self, request: bytes, stats: StreamStats, finished: asyncio.Future[None]) -> None:
        self.request = request
        self.stats = stats
        self.finished = finished
        self.sent_ns = 0
        self.first = True
        self.tail = b""  # the end of the previous read: a marker or the end may straddle reads
        self.ok = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.sent_ns = time.monotonic_ns()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.first:
            self.first = False
            self.stats.ttfb_ns.append(now - self.sent_ns)
            if not data.startswith(b"HTTP/1.1 200"):
                self._fail(data[:120].decode(errors="replace"))
                return
        held = len(self.tail)
        data = self.tail + data
        for m in MARKER.finditer(data):
            if m.end() > held:  # not counted with the previous read
                self.stats.chunk_latency_ns.append(now - int(m.group(2)))
                self.stats.chunks += 1
        self.tail = data[-64:]
        if self.tail.endswith(_END):
            self.ok = True
            self.stats.done += 1
            self.stats.last_done_ns = max(self.stats.last_done_ns, now)
            assert self.transport is not None
            self.transport.close()

    def _fail(self, why: str) -> None:
        self.stats.errors.append(why)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ok and not self.first and not self.stats.errors:
            self.stats.errors.append(f"closed early: {exc}")
        if not self.finished.done():
            self.finished.set_result(None)


async def run_streams(host: str, port: int, request: bytes, n: int, *, ramp: int = 250,
                      ramp_pause: float = 0.02, timeout: float = 120.0) -> dict[str, Any]:
    """Open `n` streams (`ramp` at a time) and wait for all to end; the measurements."""
    loop = asyncio.get_running_loop()
    stats = StreamStats(first_sent_ns=time.monotonic_ns())
    waits: list[asyncio.Future[None]] = []

    async def one() -> None:
        finished: asyncio.Future[None] = loop.create_future()
        waits.append(finished)
        try:
            await loop.create_connection(lambda: _Stream(request, stats, finished), host, port)
        except OSError as e:
            stats.errors.append(f"connect: {e}")
            finished.set_result(None)

    for start in range(0, n, ramp):
        await asyncio.gather(*(one() for _ in range(min(ramp, n - start))))
        await asyncio.sleep(ramp_pause)
    try:
        await asyncio.wait_for(asyncio.gather(*waits), timeout)
    except TimeoutError:
        stats.errors.append(f"{n - stats.done} streams unfinished after {timeout:g} s")
    return summarise(stats, n)


def _pct(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # ms


def summarise(stats: StreamStats, n: int) -> dict[str, Any]:
    return {
        "streams": n,
        "completed": stats.done,
        "errors": len(stats.errors),
        "first_error": stats.errors[0] if stats.errors else None,
        "chunks": stats.chunks,
        "wall_s": round((stats.last_done_ns - stats.first_sent_ns) / 1e9, 3) if stats.done else None,
        "ttfb_ms": {"p50": _pct(stats.ttfb_ns, 0.5), "p99": _pct(stats.ttfb_ns, 0.99),
                    "max": _pct(stats.ttfb_ns, 1.0)},
        "chunk_ms": {"p50": _pct(stats.chunk_latency_ns, 0.5),
                     "p99": _pct(stats.chunk_latency_ns, 0.99),
                     "max": _pct(stats.chunk_latency_ns, 1.0)},
    }
