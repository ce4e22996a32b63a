"""The benchmark: wrk against nginx directly and through ccgate, same upstream, same run.

Lanes, for a small request and a Claude Code-sized request (captured from the real CLI):
  c=1  latency p50/p99, direct and through ccgate -> added latency = ccgate - direct
  c=32 requests/s, direct and through ccgate
plus the ccgate process's RSS idle and after load, and (full mode) the same lanes through a
bare relay (bench/relay_floor.py) on two server libraries, the floor any Python gateway pays.
The translation lanes (bench/translated.py) follow, on the same nginx.
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import perf_targets, report, run_report, translated, translated_report, wrk
from bench.answers import ANTH_SHORT_SSE, MESSAGE_BYTES
from bench.common import BenchError, http, or_explain
from bench.floor import Floor
from bench.gateway import CLIENT_TOKEN, UPSTREAM_KEY, Ccgate
from bench.lanes import WrkTarget, alternate, warm
from bench.machine import wait_for_quiet
from bench.nginx import SSE_HEADER, Nginx
from bench.options import Options
from bench.procs import rss_kb
from bench.summary import load_checks, messages_delta
from bench.workload import Request, describe, large_request, small_request

# Which credential a target is sent with: direct and the floors get the upstream key,
# ccgate its client token.
CREDENTIALS = {"direct": UPSTREAM_KEY, "ccgate": CLIENT_TOKEN}


def _with(headers: dict[str, str], key: str, stream: bool) -> dict[str, str]:
    out = {**headers, "x-api-key": key}
    if stream:
        out[SSE_HEADER[0]] = SSE_HEADER[1]
    return out


def _check_answer(what: str, url: str, req: Request, key: str) -> None:
    """One request: the fixed answer (message or stream), exactly as nginx sends it."""
    status, body = http("POST", url + "/v1/messages?beta=true", req.body,
                        _with(req.headers, key, req.stream))
    expected = ANTH_SHORT_SSE if req.stream else MESSAGE_BYTES
    if status != 200 or body != expected:
        raise BenchError(f"{what}: {req.name} request answered {status} with {body[:300]!r} "
                         f"instead of the fixed {'stream' if req.stream else 'message'}")


def _request_files(workdir: Path, requests: list[Request]) -> dict[tuple[str, str], Path]:
    """One wrk request file per (request, credential)."""
    return {(r.name, who): wrk.write_request(workdir, f"{r.name}-{who}", r.body,
                                             _with(r.headers, key, r.stream))
            for r in requests for who, key in CREDENTIALS.items()}


@dataclass
class Passthrough:
    """The servers of the passthrough lanes, and what was measured of ccgate on the way."""

    nginx: Nginx
    gateway: Ccgate
    floors: list[Floor]
    rss_start: dict[str, Any]
    rss_idle: dict[str, Any]


def _start(stack: ExitStack, opts: Options, workdir: Path, requests: list[Request]
           ) -> Passthrough:
    """nginx, ccgate and the floor relays, each checked to answer exactly the fixed answers."""
    nginx = Nginx(workdir, UPSTREAM_KEY).start()
    stack.callback(nginx.stop)
    for r in requests:
        _check_answer("nginx", nginx.url, r, UPSTREAM_KEY)
    gateway = Ccgate(workdir, nginx.url).start()
    stack.callback(gateway.stop)
    time.sleep(0.5)
    rss_start = rss_kb(gateway.pid)
    status, _ = http("POST", gateway.url + "/v1/messages", requests[0].body, requests[0].headers)
    if status != 401:
        raise BenchError(f"ccgate answered {status} without a client token: auth is off")
    for r in requests:
        _check_answer("ccgate", gateway.url, r, CLIENT_TOKEN)
    time.sleep(0.5)
    rss_idle = rss_kb(gateway.pid)
    opts.log(f"ccgate pid {gateway.pid}: RSS at start {rss_start['vmrss_kb']} KiB, "
             f"idle after first requests {rss_idle['vmrss_kb']} KiB")
    floors: list[Floor] = []
    for server in opts.floor:
        floors.append(Floor(server, nginx.url, workdir).start())
        stack.callback(floors[-1].stop)
        for r in requests:
            _check_answer(f"floor-{server}", floors[-1].url, r, UPSTREAM_KEY)
    return Passthrough(nginx, gateway, floors, rss_start, rss_idle)


def _lanes(opts: Options, p: Passthrough, requests: list[Request],
           files: dict[tuple[str, str], Path]) -> list[dict[str, Any]]:
    """Every request at c=1 and c=concurrency, direct, ccgate and the floors in turn."""
    lanes: list[dict[str, Any]] = []
    for r in requests:
        targets = [
            WrkTarget("direct", p.nginx.url, files[(r.name, "direct")]),
            WrkTarget("ccgate", p.gateway.url, files[(r.name, "ccgate")], p.gateway.pid),
            *(WrkTarget(f"floor-{f.server}", f.url, files[(r.name, "direct")], f.pid)
              for f in p.floors),
        ]
        for t in targets[1:]:
            warm(opts, t)
        for conns in (1, opts.concurrency):
            lanes += alternate(opts, targets, r.name, conns).values()
    return lanes


def _passthrough(opts: Options, p: Passthrough, requests: list[Request],
                 files: dict[tuple[str, str], Path], results: dict[str, Any]) -> None:
    """The passthrough lanes and the checks around them, into `results`."""
    access_before = p.gateway.access_lines()
    metrics_before = p.gateway.messages_by_status()
    lanes = _lanes(opts, p, requests, files)
    time.sleep(0.5)
    rss_load = rss_kb(p.gateway.pid)
    messages = messages_delta(metrics_before, p.gateway.messages_by_status())
    access_after = p.gateway.access_lines()
    if p.gateway.died():
        raise BenchError(f"ccgate died during the run: {p.gateway.stderr_tail()}")
    results["floor_rss"] = {f"floor-{f.server}": rss_kb(f.pid) for f in p.floors}
    results["lanes"] = lanes
    results["rss"] = {"start": p.rss_start, "idle": p.rss_idle, "after_load": rss_load}
    results["checks"] = {
        **load_checks(lanes, messages),
        "floor_errors": sum(ln["error_total"] for ln in lanes
                            if ln["target"].startswith("floor-")),
        "access_log_lines_during_load": access_after - access_before,
    }


def run(opts: Options) -> dict[str, Any]:
    started = time.monotonic()
    results = report.results_header(opts, warmup_seconds=opts.warmup, wrk_threads=opts.threads)
    with tempfile.TemporaryDirectory(prefix="ccgate-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        requests = [small_request(), large_request(opts, workdir)]
        results["requests"] = {r.name: describe(r) for r in requests}
        files = _request_files(workdir, requests)
        results["others_cpu_busy_pct_before"] = wait_for_quiet(opts.wait_quiet, opts.log)
        p = _start(stack, opts, workdir, requests)
        _passthrough(opts, p, requests, files, results)
        for f in p.floors:  # the translation lanes get the CPUs to themselves
            f.stop()
        p.gateway.stop()
        if opts.translated:
            opts.log("translated lanes (Anthropic in, OpenAI out):")
            results["translated"] = translated.run(opts, workdir, requests[1], p.nginx)
    results["summary"] = run_report.summary(results, opts.concurrency)
    results["targets"] = run_report.targets(results["summary"], p.rss_idle)
    if "translated" in results:
        results["targets"] += translated_report.targets(results["translated"])
    results["targets"] += perf_targets.targets(results, list(opts.floor), opts.concurrency)
    report.finish(results, started)
    return results


def problems(results: dict[str, Any]) -> list[str]:
    """What makes the run fail even though it finished."""
    out = []
    ch = results["checks"]
    if ch["ccgate_errors"] or ch["direct_errors"]:
        out.append("wrk saw errors (see lanes in the JSON)")
    tr = results.get("translated", {}).get("checks")
    if tr and (tr["ccgate_errors"] or tr["direct_errors"]):
        out.append("wrk saw errors in the translated lanes (see translated.lanes)")
    # 499 = wrk closed a connection with a request in flight when a lane's time was up.
    if tr and any(k not in ("200", "499") for k in tr["metrics_messages_by_status"]):
        out.append("translated ccgate answered something other than 200 on /v1/messages")
    if any(k not in ("200", "499") for k in ch["metrics_messages_by_status"]):
        out.append("ccgate answered something other than 200 on /v1/messages")
    return out


def main(opts: Options) -> int:
    results = or_explain(lambda: run(opts), "bench")
    if results is None:
        return 1
    report.publish(results, run_report.tables(results), opts.out)
    if opts.docs:
        run_report.SECTION.update(run_report.docs_section(results))
    found = problems(results)
    for p in found:
        print(f"bench: {p}", file=sys.stderr)
    return 1 if found else 0
