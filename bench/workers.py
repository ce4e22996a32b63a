"""`python -m bench workers`: `ccgate serve --workers 2` against one process (issue 18).

The small passthrough request at c=32 (wrk, keep-alive connections), through the same nginx
upstream as `bench run`, to three targets that run side by side and are measured in
alternating rounds (median round kept): ccgate with one process, ccgate with two workers, and
the bare uvicorn relay (bench/relay_floor.py, one process: the floor stays a bare relay). For
every round the CPU of each party is read from /proc: the target's process tree (supervisor
and workers), nginx (master and worker) and wrk itself (its rusage), so the report says how
much of the two cores the gateway could have had at all.
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import RESULTS, BenchError, http
from bench.floor import Floor
from bench.gateway import CLIENT_TOKEN, UPSTREAM_KEY, Ccgate, metric_counts
from bench.lanes import MESSAGES_PATH
from bench.nginx import Nginx
from bench.procs import cpu_ticks, descendants, ticks_to_seconds
from bench.workload import small_request

TARGET_RATIO = 1.7


def tree_ticks(pid: int) -> int:
    return sum(cpu_ticks(p) for p in (pid, *descendants(pid)))


def one_round(url: str, request: Path, conns: int, seconds: int, pids: dict[str, int]) -> dict[str, Any]:
    """One wrk run with the CPU each party used during it (in cores: 1.0 = one core busy)."""
    before = {name: tree_ticks(pid) for name, pid in pids.items()}
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    result = wrk.run(url, request, conns, seconds)
    wall = time.monotonic() - t0
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cores = {name: ticks_to_seconds(tree_ticks(pid) - before[name]) / wall for name, pid in pids.items()}
    cores["wrk"] = ((wrk_after.ru_utime - wrk_before.ru_utime) + (wrk_after.ru_stime - wrk_before.ru_stime)) / wall
    return {"rps": result["rps"], "p50_ms": result["latency_us"]["p50"] / 1000,
            "p99_ms": result["latency_us"]["p99"] / 1000, "errors": result["error_total"],
            "requests": result["requests"], "cores": {k: round(v, 2) for k, v in cores.items()}}


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rounds, key=lambda r: r["rps"])
    middle = dict(ordered[len(ordered) // 2])
    middle["rounds_rps"] = [round(r["rps"]) for r in rounds]
    middle["rps"] = statistics.median(r["rps"] for r in rounds)
    return middle


def run(seconds: int = 5, rounds: int = 5, conns: int = 32, out: Path | None = None,
        log: Any = print) -> dict[str, Any]:
    request = small_request()
    with tempfile.TemporaryDirectory(prefix="ccgate-bench-workers-") as tmp:
        workdir = Path(tmp)
        nginx = Nginx(workdir, UPSTREAM_KEY).start()
        servers: list[Any] = [nginx]
        try:
            one = Ccgate(workdir, nginx.url, "ccgate-1").start()
            servers.append(one)
            two = Ccgate(workdir, nginx.url, "ccgate-2", args=("--workers", "2")).start()
            servers.append(two)
            floor = Floor("uvicorn", nginx.url, workdir).start()
            servers.append(floor)
            _wait_both_workers(two)
            files = {who: wrk.write_request(workdir, f"small-{who}", request.body,
                                            {**request.headers, "x-api-key": key})
                     for who, key in (("ccgate", CLIENT_TOKEN), ("direct", UPSTREAM_KEY))}
            targets = {"ccgate-1": (one, files["ccgate"]), "ccgate-2-workers": (two, files["ccgate"]),
                       "floor-uvicorn": (floor, files["direct"])}
            for name, (server, file) in targets.items():  # warm-up
                wrk.run(server.url, file, conns, 1)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            before = metric_counts(two.metrics()).get("200", 0.0)
            for i in range(rounds):
                for name, (server, file) in targets.items():
                    r = one_round(server.url, file, conns, seconds, {"target": server.pid, "nginx": nginx.pid})
                    runs[name].append(r)
                    log(f"  round {i + 1} {name:<17} {r['rps']:>8,.0f} req/s  p50 {r['p50_ms']:.3f} ms  "
                        f"errors {r['errors']}  cores: {r['cores']}")
            counted = metric_counts(two.metrics()).get("200", 0.0) - before
            sent = sum(r["requests"] for r in runs["ccgate-2-workers"])
        finally:
            for server in reversed(servers):
                server.stop()
    lanes = {name: _median_round(r) for name, r in runs.items()}
    ratio = lanes["ccgate-2-workers"]["rps"] / lanes["ccgate-1"]["rps"]
    results = {
        "what": "small passthrough request, c=%d, wrk -t1, %d s x %d rounds" % (conns, seconds, rounds),
        "lanes": lanes, "ratio_2_workers": round(ratio, 3), "target_ratio": TARGET_RATIO,
        # One scrape of the 2-worker gateway counts what wrk sent to both workers (merged /metrics).
        "metrics_total_vs_wrk": [counted, sent],
    }
    log(f"2 workers / 1 process: {ratio:.2f}x (target >= {TARGET_RATIO}x); /metrics of the 2-worker "
        f"gateway counted {counted:.0f} of the {sent} requests wrk completed")
    path = out or RESULTS / "workers.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _wait_both_workers(gateway: Ccgate, timeout: float = 60.0) -> None:
    """Until /readyz has been answered by worker 0 and worker 1 (fresh connections)."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        status, body = http("GET", gateway.url + "/readyz")
        if status == 200:
            seen.add(json.loads(body).get("worker", -1))
            if {0, 1} <= seen:
                return
        time.sleep(0.05)
    raise BenchError(f"ccgate --workers 2: workers {sorted(seen)} answered, not both")


__all__ = ["MESSAGES_PATH", "run"]
