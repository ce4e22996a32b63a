"""N concurrent long streams from one process: raw asyncio protocols on uvloop.

Each stream is its own connection with one `POST /v1/messages` (`stream: true`). The scripted
upstream's /slow/ streams write one text chunk per second, each carrying the CLOCK_MONOTONIC time
it was written (bench/answers.py), so every chunk's latency is its arrival here minus that stamp:
the same clock, the same machine. Per stream: time to the first response byte (from the request's
write) and to its end; overall: the wall time from the first request to the last stream's end.
Chunk latency is reported twice: over all chunks, and "steady": only chunks written after every
stream had its first byte, i.e. relaying N open streams without new ones being set up.

Streams are opened at `ramp` per second (in batches every 20 ms), the same for direct and
ccgate: thousands of developers do not all press enter in the same millisecond, and a burst of
thousands of SYNs overflows any listen backlog (SYN retries of a second: noise).
"""

from __future__ import annotations

import asyncio
import gc
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from bench.answers import MARKER

_END = b"0\r\n\r\n"  # the last chunk of a chunked response: the stream is over


@dataclass
class StreamStats:
    ttfb_ns: list[int] = field(default_factory=list)
    chunk_latency_ns: list[int] = field(default_factory=list)
    chunk_written_ns: array[int] = field(default_factory=lambda: array("q"))
    last_first_byte_ns: int = 0
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
            self.stats.last_first_byte_ns = max(self.stats.last_first_byte_ns, now)
            if not data.startswith(b"HTTP/1.1 200"):
                self._fail(data[:120].decode(errors="replace"))
                return
        held = len(self.tail)
        data = self.tail + data
        for m in MARKER.finditer(data):
            if m.end() > held:  # not counted with the previous read
                written = int(m.group(2))
                self.stats.chunk_latency_ns.append(now - written)
                self.stats.chunk_written_ns.append(written)
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


async def run_streams(host: str, port: int, request: bytes, n: int, *, ramp: int = 2000,
                      timeout: float = 120.0) -> dict[str, Any]:
    """Open `n` streams, `ramp` per second, and wait for all to end; the measurements."""
    # The measuring side must not pause: with thousands of streams open, the collector's passes
    # over their objects stopped this process for 3 s in all in a 9,000-stream run (gc.callbacks),
    # and every chunk that arrived meanwhile was timed late, whichever relay it came through.
    # Nothing here makes garbage cycles worth collecting during one run.
    gc.collect()
    gc.disable()
    try:
        return await _run_streams(host, port, request, n, ramp=ramp, timeout=timeout)
    finally:
        gc.enable()


async def _run_streams(host: str, port: int, request: bytes, n: int, *, ramp: int,
                       timeout: float) -> dict[str, Any]:
    ramp_pause = 0.02
    batch = max(1, int(ramp * ramp_pause))
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

    next_batch = time.monotonic()
    for start in range(0, n, batch):
        await asyncio.gather(*(one() for _ in range(min(batch, n - start))))
        next_batch += ramp_pause
        await asyncio.sleep(max(0.0, next_batch - time.monotonic()))
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
    steady = [lat for lat, written in zip(stats.chunk_latency_ns, stats.chunk_written_ns, strict=True)
              if written > stats.last_first_byte_ns]
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
        "steady_chunks": len(steady),
        "steady_chunk_ms": {"p50": _pct(steady, 0.5), "p99": _pct(steady, 0.99), "max": _pct(steady, 1.0)},
    }
