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
    return {"rps": result["rps"],
            # CPU the target spent per answered request: unchanged by the workers, then
            # throughput grows with the cores the workers can get.
            "cpu_us_per_request": round(cores["target"] * 1e6 / result["rps"], 1) if result["rps"] else None,
            "p50_ms": result["latency_us"]["p50"] / 1000,
            "p99_ms": result["latency_us"]["p99"] / 1000, "errors": result["error_total"],
            "requests": result["requests"], "cores": {k: round(v, 2) for k, v in cores.items()}}


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rounds, key=lambda r: r["rps"])
    middle = dict(ordered[len(ordered) // 2])
    middle["rounds_rps"] = [round(r["rps"]) for r in rounds]
    middle["rps"] = statistics.median(r["rps"] for r in rounds)
    middle["cpu_us_per_request"] = statistics.median(r["cpu_us_per_request"] or 0 for r in rounds)
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
            for server, file in targets.values():  # warm-up
                wrk.run(server.url, file, conns, 1)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            before = metric_counts(two.metrics()).get("200", 0.0)
            for i in range(rounds):
                for name, (server, file) in targets.items():
                    r = one_round(server.url, file, conns, seconds, {"target": server.pid, "nginx": nginx.pid})
                    runs[name].append(r)
                    log(f"  round {i + 1} {name:<17} {r['rps']:>8,.0f} req/s  p50 {r['p50_ms']:.3f} ms  "
                        f"cpu/request {r['cpu_us_per_request']} us  "
                        f"errors {r['errors']}  cores: {r['cores']}")
            time.sleep(0.5)  # requests wrk left in flight at its end finish (and are counted)
            answered = sum(metric_counts(two.metrics()).values())
            counted = answered - before
            sent = sum(r["requests"] for r in runs["ccgate-2-workers"])
            two.stop()  # SIGTERM: both workers drain and commit their usage rows
            rows = _usage_rows(two.dir / "ccgate.db")
        finally:
            for server in reversed(servers):
                server.stop()
    lanes = {name: _median_round(r) for name, r in runs.items()}
    ratio = lanes["ccgate-2-workers"]["rps"] / lanes["ccgate-1"]["rps"]
    results = {
        "what": f"small passthrough request, c={conns}, wrk -t1, {seconds} s x {rounds} rounds",
        "lanes": lanes, "ratio_2_workers": round(ratio, 3), "target_ratio": TARGET_RATIO,
        # One scrape of the 2-worker gateway counts what wrk sent to both workers (merged /metrics).
        "metrics_total_vs_wrk": [counted, sent],
        # Usage rows both workers wrote to the one SQLite file vs the 200s /metrics counted.
        "usage_rows_vs_answered": [rows, answered],
        "hub": hub_round_trip(),
    }
    log(f"2 workers / 1 process: {ratio:.2f}x (target >= {TARGET_RATIO}x); /metrics of the 2-worker "
        f"gateway counted {counted:.0f} answers for the {sent} requests wrk completed; usage rows "
        f"{rows} for {answered:.0f} answers; hub: {results['hub']}")
    path = out or RESULTS / "workers.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _usage_rows(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM usage").fetchone()[0])


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


# The hub's cost per admission ------------------------------------------------------------


def _hub_process(conn: Any) -> None:
    """A hub in its own process (as in the supervisor), its address sent back over ``conn``."""
    import asyncio

    from ccgate.shared.hub import HubServer

    async def serve() -> None:
        hub = HubServer()
        await hub.start()
        conn.send((hub.address, hub.token))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        await hub.close()

    _run(serve())


def _run(main: Any) -> Any:
    """On uvloop, as the supervisor and the workers run."""
    import asyncio

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def hub_round_trip(calls: int = 5000) -> dict[str, float]:
    """Sequential ``admit`` calls from one worker-side client to a hub in another process: the
    time one rate-limited request waits for its admission (p50/p99, microseconds), and the
    admissions per second 32 concurrent callers get through one connection."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_hub_process, args=(child,))
    proc.start()
    try:
        address, token = parent.recv()
        result: dict[str, float] = _run(_measure_hub(address, token, calls))
        return result
    finally:
        parent.send("stop")
        proc.join(10)


async def _measure_hub(address: str, token: str, calls: int) -> dict[str, float]:
    import asyncio

    from ccgate.shared.hub import HubClient

    client = HubClient(address, token, "bench", 0)
    await client.start(lambda event: None)
    for _ in range(200):  # warm-up
        await client.admit("warm", 10**9, None)
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        await client.admit(f"key_{i % 50}", 10**9, None)
        times.append(time.perf_counter() - t0)
    times.sort()
    t0 = time.perf_counter()

    async def caller(n: int) -> None:
        for i in range(n):
            await client.admit(f"key_{i % 50}", 10**9, None)

    await asyncio.gather(*(caller(calls // 32) for _ in range(32)))
    rate = (calls // 32 * 32) / (time.perf_counter() - t0)
    await client.close()
    return {"admit_p50_us": round(times[len(times) // 2] * 1e6, 1),
            "admit_p99_us": round(times[int(len(times) * 0.99)] * 1e6, 1),
            "admits_per_s_c32": round(rate)}
