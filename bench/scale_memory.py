"""`python -m bench.scale_memory`: the memory one open stream holds in a relay (issue 13).

The scale lane (bench/scale.py) reports a relay's peak RSS while thousands of streams come and
go, which mixes what an open stream holds with how many happened to be open at the peak. This
holds them open instead: the scripted upstream's /slow/ streams send their head and
`message_start` at once and then nothing for `--hold` seconds, so a stream, once its first
bytes have come back, sits in the relay doing nothing. For each relay (ccgate, the floor relay):

1. open `N1` streams (default 1,000) at `--ramp` per second, wait until every one has its first
   bytes, then read the relay's VmRSS (the median of five samples 0.2 s apart);
2. open more, up to `N2` (default 3,000), and read it again;
3. per open stream = (RSS at N2 - RSS at N1) / (N2 - N1): the process's own memory, its
   start-up and the first streams' one-off costs (caches, pools, arenas) cancel out.

`--trace` also runs each relay with tracemalloc on (a `sitecustomize.py` on its PYTHONPATH that
dumps a snapshot on SIGUSR1) and prints what the Python heap grew by per stream between the two
levels, by the line that allocated it: where the bytes are, not only how many. Memory that C
code allocates itself (uvloop's handles, llhttp's parser state, malloc's own overhead) is in the
RSS figure but not in the traced one.

  .venv/bin/python -m bench.scale_memory                          # ccgate and the floor, 1,000 -> 3,000
  .venv/bin/python -m bench.scale_memory --streams 1000,3000 --trace --no-floor
  .venv/bin/python -m bench.scale_memory --src OTHER/src          # another checkout's ccgate
  .venv/bin/python -m bench.scale_memory --headers-kb 4           # requests with Claude Code's header weight

Prints one JSON object (and the traced top lines on stderr with --trace).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import LOOPBACK
from bench.floor import Floor
from bench.gateway import CLIENT_TOKEN, UPSTREAM_KEY, Ccgate
from bench.procs import LoopbackServer, rss_kb
from bench.scale import SCALE_CONFIG, _request, raise_open_files
from bench.stream_upstream import StreamUpstream

# Loaded by every Python process started with this folder on PYTHONPATH (site imports it):
# tracemalloc from the first import on, and a snapshot on SIGUSR1, numbered.
PROBE = """\
import os
if os.environ.get("BENCH_TRACEMALLOC_OUT"):
    import gc, signal, tracemalloc
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "1")))
    _dumps = [0]
    def _dump(signum, frame):
        gc.collect()
        _dumps[0] += 1
        out = os.environ["BENCH_TRACEMALLOC_OUT"]
        tracemalloc.take_snapshot().dump(f"{out}.{_dumps[0]}.tmp")
        os.replace(f"{out}.{_dumps[0]}.tmp", f"{out}.{_dumps[0]}")
    signal.signal(signal.SIGUSR1, _dump)
"""


class _Held(asyncio.Protocol):
    """One stream: send the request, note the first bytes, then hold the connection open."""

    def __init__(self, request: bytes, first: asyncio.Future[bool]) -> None:
        self.request, self.first = request, first
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.first.done():
            self.first.set_result(data.startswith(b"HTTP/1.1 200"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.first.done():
            self.first.set_result(False)


class Holder:
    """Streams opened and held against one relay, from this process's own event loop."""

    def __init__(self, port: int, key: str, ramp: int, headers_kb: int = 0) -> None:
        self.request = _request(port, "/v1/messages", key)
        if headers_kb:  # more request headers, ~200 bytes each (Claude Code sends ~25, ~4 KB)
            head, body = self.request.split(b"\r\n\r\n", 1)
            pad = b"".join(b"\r\nx-bench-pad-%d: %s" % (i, b"p" * 180) for i in range(headers_kb * 5))
            self.request = head + pad + b"\r\n\r\n" + body
        self.port, self.ramp = port, ramp
        self.held: list[_Held] = []

    async def open(self, n: int, timeout: float) -> int:
        """Open `n` more streams and wait for their first bytes; how many got a 200."""
        loop = asyncio.get_running_loop()
        firsts: list[asyncio.Future[bool]] = []
        batch = max(1, self.ramp // 50)  # every 20 ms
        for start in range(0, n, batch):
            for _ in range(min(batch, n - start)):
                first: asyncio.Future[bool] = loop.create_future()
                firsts.append(first)
                _, proto = await loop.create_connection(lambda f=first: _Held(self.request, f),  # type: ignore[misc]
                                                        LOOPBACK, self.port)
                self.held.append(proto)
            await asyncio.sleep(0.02)
        done = await asyncio.wait_for(asyncio.gather(*firsts), timeout)
        return sum(done)

    def close(self) -> None:
        for stream in self.held:
            if stream.transport is not None:
                stream.transport.close()
        self.held.clear()


def _settled_rss_kb(pid: int) -> int:
    samples = []
    for _ in range(5):
        time.sleep(0.2)
        samples.append(rss_kb(pid)["vmrss_kb"] or 0)
    return int(statistics.median(samples))


def _snapshot(pid: int, out: Path, number: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    path = Path(f"{out}.{number}")
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no tracemalloc snapshot from pid {pid} (is the probe loaded?)")
        time.sleep(0.1)
    return tracemalloc.Snapshot.load(str(path))


def _top(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, streams: int,
         limit: int = 25) -> list[dict[str, Any]]:
    """The lines whose allocations grew most, per stream."""
    rows = []
    for stat in after.compare_to(before, "lineno")[:limit]:
        frame = stat.traceback[0]
        rows.append({"where": f"{frame.filename}:{frame.lineno}",
                     "bytes_per_stream": round(stat.size_diff / streams),
                     "blocks_per_stream": round(stat.count_diff / streams, 2)})
    return rows


def measure(relay: LoopbackServer, key: str, levels: tuple[int, int], ramp: int,
            trace_out: Path | None, top: int = 25, headers_kb: int = 0) -> dict[str, Any]:
    """RSS (and the traced heap) of `relay` at both levels of open streams."""
    low, high = levels
    holder = Holder(relay.port, key, ramp, headers_kb)
    result: dict[str, Any] = {"idle_rss_kb": rss_kb(relay.pid)["vmrss_kb"]}

    async def run() -> None:
        ok = await holder.open(low, timeout=120)
        result["rss_kb"] = {low: _settled_rss_kb(relay.pid)}
        snaps = [_snapshot(relay.pid, trace_out, 1)] if trace_out is not None else []
        ok += await holder.open(high - low, timeout=120)
        result["rss_kb"][high] = _settled_rss_kb(relay.pid)
        if trace_out is not None:
            snaps.append(_snapshot(relay.pid, trace_out, 2))
            grew = sum(s.size_diff for s in snaps[1].compare_to(snaps[0], "filename"))
            result["traced_bytes_per_stream"] = round(grew / (high - low))
            result["traced_top"] = _top(snaps[0], snaps[1], high - low, top)
        result["streams_ok"] = ok
        holder.close()
        await asyncio.sleep(0.5)

    import uvloop

    uvloop.run(run())
    rss = result["rss_kb"]
    result["kb_per_stream"] = round((rss[high] - rss[low]) / (high - low), 2)
    return result


def _probe_env(workdir: Path, name: str, frames: int) -> tuple[dict[str, str], Path]:
    probe = workdir / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "sitecustomize.py").write_text(PROBE)
    out = workdir / f"{name}.snapshot"
    return {"PYTHONPATH": str(probe), "BENCH_TRACEMALLOC_OUT": str(out),
            "BENCH_TRACEMALLOC_FRAMES": str(frames)}, out


class _TracedFloor(Floor):
    """The floor relay, with extra environment variables (the tracemalloc probe)."""

    def __init__(self, *args: Any, env: dict[str, str], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.env = env

    def launch(self, argv: list[str], **popen: Any) -> None:
        popen["env"] = {**os.environ, **self.env}
        super().launch(argv, **popen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scale_memory", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1000,3000", help="the two levels of open streams (N1,N2)")
    ap.add_argument("--ramp", type=int, default=1000, help="new streams per second")
    ap.add_argument("--hold", type=float, default=300.0, help="seconds the upstream stays silent")
    ap.add_argument("--src", type=Path, help="another checkout's src/ for the ccgate side")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor relay")
    ap.add_argument("--no-ccgate", action="store_true", help="skip ccgate")
    ap.add_argument("--trace", action="store_true", help="tracemalloc: what the Python heap holds, by line")
    ap.add_argument("--frames", type=int, default=1, help="traceback depth with --trace")
    ap.add_argument("--top", type=int, default=25, help="lines of the traced growth to print")
    ap.add_argument("--headers-kb", type=int, default=0,
                    help="add about this many KiB of request headers (Claude Code sends ~4)")
    args = ap.parse_args(argv)
    low, high = (int(x) for x in args.streams.split(","))
    soft, _ = raise_open_files()
    if 2 * high + 200 > soft:
        raise SystemExit(f"{high} streams need about {2 * high + 200} descriptors; the limit is {soft}")
    results: dict[str, Any] = {"streams": [low, high], "ramp": args.ramp, "headers_kb": args.headers_kb}
    with tempfile.TemporaryDirectory(prefix="ccgate-scale-memory-") as tmp:
        work = Path(tmp)
        upstream = StreamUpstream(work, UPSTREAM_KEY, chunks=1, slow_gap=args.hold).start()
        try:
            if not args.no_floor:
                env, out = _probe_env(work, "floor", args.frames) if args.trace else ({}, None)
                floor = _TracedFloor("uvicorn", upstream.url + "/slow", work, name="floor",
                                     pool_limit=0, env=env).start()
                try:
                    results["floor"] = measure(floor, "bare", (low, high), args.ramp, out, args.top,
                                               args.headers_kb)
                finally:
                    floor.stop()
            if not args.no_ccgate:
                env, out = _probe_env(work, "ccgate", args.frames) if args.trace else ({}, None)
                gw = Ccgate(work, upstream.url + "/slow", name="ccgate", config=SCALE_CONFIG, src=args.src,
                            env=env, max_connections=str(high + 100)).start()
                try:
                    results["ccgate"] = measure(gw, CLIENT_TOKEN, (low, high), args.ramp, out, args.top,
                                                args.headers_kb)
                finally:
                    gw.stop()
        finally:
            upstream.stop()
    for side in ("floor", "ccgate"):
        for row in results.get(side, {}).pop("traced_top", []):
            print(f"{side:7} {row['bytes_per_stream']:7} B {row['blocks_per_stream']:6} blocks  {row['where']}",
                  file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
