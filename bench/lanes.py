"""wrk lanes: one load against one target, and alternating rounds reduced to their medians.

Targets alternate round after round so that slow drifts on a shared machine hit every side
alike; each lane then reports its median round.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import wrk
from bench.options import Options
from bench.procs import cpu_ticks, ticks_to_seconds

MESSAGES_PATH = "/v1/messages?beta=true"


@dataclass(frozen=True)
class WrkTarget:
    """Where one side of a lane sends its request, and whose CPU to measure."""

    label: str  # the lane's "target" in the results: direct, ccgate, floor-uvicorn, gateway
    url: str
    request_file: Path  # from wrk.write_request
    pid: int | None = None
    path: str = MESSAGES_PATH


def lane(opts: Options, target: WrkTarget, request: str, conns: int, note: str = "",
         log: bool = True) -> dict[str, Any]:
    """One wrk run: wrk's summary plus target, request and (with a pid) the process's CPU %."""
    ticks0 = cpu_ticks(target.pid) if target.pid else 0
    t0 = time.monotonic()
    result = wrk.run(target.url, target.request_file, conns, opts.seconds, opts.threads,
                     path=target.path)
    wall = time.monotonic() - t0
    result.update(target=target.label, request=request)
    if target.pid:
        spent = ticks_to_seconds(cpu_ticks(target.pid) - ticks0)
        result["cpu_pct"] = round(100.0 * spent / wall, 1)
    if log:
        lat = result["latency_us"]
        opts.log(f"  {target.label + note:<14} {request:<6} c={conns:<3} "
                 f"{result['rps']:>10,.0f} req/s  p50 {lat['p50'] / 1000:.3f} ms  "
                 f"p99 {lat['p99'] / 1000:.3f} ms  errors {result['error_total']}" +
                 (f"  cpu {result['cpu_pct']}%" if "cpu_pct" in result else ""))
    return result


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One lane from several rounds: medians of req/s and of each latency statistic."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[0])
    out["rounds"] = [{"rps": r["rps"], "p50_us": r["latency_us"]["p50"],
                      "p99_us": r["latency_us"]["p99"], "errors": r["error_total"]}
                     for r in runs]
    out["rps"] = statistics.median(r["rps"] for r in runs)
    out["latency_us"] = {k: statistics.median(r["latency_us"][k] for r in runs)
                         for k in runs[0]["latency_us"]}
    for k in ("requests", "bytes", "duration_us", "error_total"):
        out[k] = sum(r[k] for r in runs)
    out["errors"] = {k: sum(r["errors"][k] for r in runs) for k in runs[0]["errors"]}
    if all("cpu_pct" in r for r in runs):
        out["cpu_pct"] = statistics.median(r["cpu_pct"] for r in runs)
    return out


def alternate(opts: Options, targets: list[WrkTarget], request: str, conns: int,
              note: str = "", log: bool = True) -> dict[str, dict[str, Any]]:
    """`opts.rounds` rounds of every target in turn; each target's median round by label."""
    runs: dict[str, list[dict[str, Any]]] = {t.label: [] for t in targets}
    for _ in range(opts.rounds):
        for t in targets:
            runs[t.label].append(lane(opts, t, request, conns, note, log))
    return {label: median(v) for label, v in runs.items()}


def warm(opts: Options, target: WrkTarget, conns: int | None = None) -> None:
    """Load the target for the warm-up time (nothing kept): pools and caches filled."""
    if opts.warmup > 0:
        wrk.run(target.url, target.request_file, conns or opts.concurrency, opts.warmup,
                opts.threads, path=target.path)
