"""Lanes: one wrk run against one target, medians over alternating rounds, shared options."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import LOOPBACK, RESULTS, BenchError, free_port, stop, wait_http

MESSAGES_PATH = "/v1/messages?beta=true"


@dataclass
class Options:
    seconds: int = 1
    rounds: int = 5
    warmup: int = 1
    threads: int = 1
    concurrency: int = 32
    floor: tuple[str, ...] = ("uvicorn", "aiohttp")
    large_body: str = "auto"  # auto | capture | synthetic
    capture_mode: str = "interactive"
    out: Path = RESULTS / "latest.json"
    docs: bool = True
    quick: bool = False
    wait_quiet: int = 0  # seconds to wait for other processes to leave the CPUs idle
    translated: bool = True  # the translation lanes (issue 4)
    command: str = ""
    log: Any = field(default=print)


@dataclass
class Request:
    name: str
    body: bytes
    headers: dict[str, str]
    source: str
    tools: int
    meta: dict[str, Any] = field(default_factory=dict)


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def lane(opts: Options, label: str, url: str, req_file: Path, size: str, conns: int,
         pid: int | None = None, path: str = MESSAGES_PATH) -> dict[str, Any]:
    ticks0 = cpu_ticks(pid) if pid else 0
    t0 = time.monotonic()
    result = wrk.run(url, req_file, conns, opts.seconds, opts.threads, path=path)
    wall = time.monotonic() - t0
    result.update(target=label, request=size)
    if pid:
        hz = os.sysconf("SC_CLK_TCK")
        result["cpu_pct"] = round(100.0 * (cpu_ticks(pid) - ticks0) / hz / wall, 1)
    lat = result["latency_us"]
    opts.log(f"  {label:<14} {size:<6} c={conns:<3} {result['rps']:>10,.0f} req/s  "
             f"p50 {lat['p50'] / 1000:.3f} ms  p99 {lat['p99'] / 1000:.3f} ms  "
             f"errors {result['error_total']}" +
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


def warm(opts: Options, url: str, req_file: Path, path: str = MESSAGES_PATH) -> None:
    if opts.warmup > 0:
        wrk.run(url, req_file, opts.concurrency, opts.warmup, opts.threads, path=path)


class Floor:
    """bench/relay_floor.py as a subprocess."""

    def __init__(self, server: str, upstream: str, workdir: Path, name: str = "") -> None:
        self.server = server
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        script = Path(__file__).resolve().parent / "relay_floor.py"
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, str(script), "--server", server, "--port", str(self.port),
             "--upstream", upstream],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(workdir / f"floor-{name or server}.log").open("wb"))
        try:
            wait_http(self.url + "/", self.proc, what=f"floor relay ({server})")
        except BenchError:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        stop(self.proc)
