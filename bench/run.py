"""The benchmark: wrk against nginx directly and through ccgate, same upstream, same run.

Lanes, for a small request and a Claude Code-sized request (captured from the real CLI):
  c=1  latency p50/p99, direct and through ccgate -> added latency = ccgate - direct
  c=32 requests/s, direct and through ccgate
plus the ccgate process's RSS idle and after load, and (full mode) the same lanes through a
bare relay (bench/relay_floor.py) on two server libraries, the floor any Python gateway pays.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import capture, translated, wrk
from bench.common import (
    REPO,
    BenchError,
    cpu_busy_pct,
    http,
    machine,
    rss_kb,
)
from bench.gateway import CLIENT_TOKEN, UPSTREAM_KEY, Ccgate, metric_counts
from bench.lanes import Floor, Options, Request, lane, median, warm
from bench.upstream import MESSAGE_BYTES, SSE_BYTES, SSE_HEADER, Nginx

DOCS = REPO / "docs" / "benchmarks.md"
QUIET_PCT = 15.0  # CPU busy % from other processes above which the run is flagged noisy
BEGIN = "<!-- bench:results:begin (written by `python -m bench run`; do not edit by hand) -->"
END = "<!-- bench:results:end -->"

# Targets from issue 2 (gateway-core): (key, description, limit, unit, higher_is_better)
TARGETS = [
    ("added_p50_small_ms", "added p50 latency, small request, c=1", 0.5, "ms", False),
    ("added_p50_large_ms", "added p50 latency, Claude Code request, c=1", 0.8, "ms", False),
    ("rps_small_c32", "req/s through ccgate, small request, c=32", 3000, "req/s", True),
    ("rps_large_c32", "req/s through ccgate, Claude Code request, c=32", 1500, "req/s", True),
    ("idle_rss_mb", "idle RSS of the ccgate process", 80, "MB", False),
]

SMALL_BODY = json.dumps({
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "hi"}],
}, separators=(",", ":")).encode()
BASE_HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
}


def synthetic_large() -> Request:
    """A deterministic stand-in shaped like Claude Code's body (~85 KB, 25 tools).

    Only for environments without the CLI (e.g. the smoke test); the real bench captures it.
    """
    tools = []
    for i in range(25):
        props = {f"param_{j}": {"type": "string", "description": f"Parameter {j} of tool {i}. "
                                * 6} for j in range(8)}
        tools.append({
            "name": f"Tool{i:02d}",
            "description": ("Synthetic tool description standing in for Claude Code's long "
                            "tool prompts. " * 16),
            "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                             "type": "object", "properties": props,
                             "required": ["param_0"], "additionalProperties": False},
        })
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=bench;"},
                   {"type": "text", "text": "You are a synthetic benchmark prompt. " * 200,
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": tools,
        "metadata": {"user_id": json.dumps({"device_id": "bench", "session_id": "bench"})},
        "thinking": {"type": "adaptive"},
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {**BASE_HEADERS, "anthropic-beta": "claude-code-20250219",
               "user-agent": "claude-cli/synthetic (external, cli)"}
    return Request("large", raw, headers, "synthetic (not captured)", len(tools))


def large_request(opts: Options, workdir: Path) -> Request:
    if opts.large_body == "synthetic":
        return synthetic_large()
    cached = None if opts.large_body == "capture" else capture.load_cached()
    if cached is None:
        opts.log(f"capturing a Claude Code request with the real CLI ({opts.capture_mode}) ...")
        capture.capture(workdir / "capture", mode=opts.capture_mode)
        cached = capture.load_cached()
        if cached is None:
            raise BenchError("capture wrote nothing")
    body, captured_headers, meta = cached
    # Replay the CLI's own headers (betas, user-agent, stainless), minus credentials and
    # connection-level ones; wrk sets the credential per target.
    drop = {"x-api-key", "authorization", "host", "content-length", "connection"}
    headers = {k: v for k, v in captured_headers.items() if k.lower() not in drop}
    source = (f"captured from Claude Code {meta.get('cli_version', '?').split()[0]} "
              f"(`{meta.get('command', '?')}`, {meta.get('captured_at', '?')})")
    return Request("large", body, headers, source, int(meta.get("tools", 0)), meta)


def _with(headers: dict[str, str], key: str, stream: bool) -> dict[str, str]:
    out = {**headers, "x-api-key": key}
    if stream:
        out[SSE_HEADER[0]] = SSE_HEADER[1]
    return out


def _is_stream(req: Request) -> bool:
    try:
        return bool(json.loads(req.body).get("stream"))
    except ValueError:
        return False


def _check_answer(what: str, url: str, req: Request, key: str, stream: bool) -> None:
    status, body = http("POST", url + "/v1/messages?beta=true", req.body,
                        _with(req.headers, key, stream))
    expected = SSE_BYTES if stream else MESSAGE_BYTES
    if status != 200 or body != expected:
        raise BenchError(f"{what}: {req.name} request answered {status} with "
                         f"{body[:300]!r} instead of the fixed {'stream' if stream else 'message'}")


def run(opts: Options) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {
        "schema": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": opts.command,
        "mode": "quick" if opts.quick else "full",
        "seconds_per_lane": opts.seconds,
        "rounds": opts.rounds,
        "warmup_seconds": opts.warmup,
        "wrk_threads": opts.threads,
        "machine": machine(),
        "loadavg_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="ccgate-bench-") as tmp:
        workdir = Path(tmp)
        small = Request("small", SMALL_BODY, dict(BASE_HEADERS), "literal", 0)
        large = large_request(opts, workdir)
        requests = [small, large]
        results["requests"] = {
            r.name: {"bytes": len(r.body), "tools": r.tools, "stream": _is_stream(r),
                     "source": r.source} for r in requests}
        # One request file per (request, credential): direct gets the upstream key,
        # ccgate the client token.
        files: dict[tuple[str, str], Path] = {}
        for r in requests:
            for who, key in (("direct", UPSTREAM_KEY), ("ccgate", CLIENT_TOKEN)):
                files[(r.name, who)] = wrk.write_request(
                    workdir, f"{r.name}-{who}", r.body, _with(r.headers, key, _is_stream(r)))
        lanes: list[dict[str, Any]] = []
        others_busy = cpu_busy_pct()
        deadline = time.monotonic() + opts.wait_quiet
        while others_busy > QUIET_PCT and time.monotonic() < deadline:
            opts.log(f"waiting for a quiet machine: others keep the CPUs {others_busy:.0f}% busy")
            time.sleep(2)
            others_busy = cpu_busy_pct()
        results["others_cpu_busy_pct_before"] = others_busy
        if others_busy > QUIET_PCT:
            opts.log(f"WARNING: other processes keep the CPUs {others_busy:.0f}% busy; "
                     "numbers will be noisy")
        nginx = Nginx(workdir, UPSTREAM_KEY).start()
        gateway: Ccgate | None = None
        floors: list[Floor] = []
        try:
            for r in requests:
                _check_answer("nginx", nginx.url, r, UPSTREAM_KEY, _is_stream(r))
            gateway = Ccgate(workdir, nginx.url).start()
            time.sleep(0.5)
            rss_start = rss_kb(gateway.pid)
            status, _ = http("POST", gateway.url + "/v1/messages", small.body, small.headers)
            if status != 401:
                raise BenchError(f"ccgate answered {status} without a client token: auth is off")
            for r in requests:
                _check_answer("ccgate", gateway.url, r, CLIENT_TOKEN, _is_stream(r))
            time.sleep(0.5)
            rss_idle = rss_kb(gateway.pid)
            opts.log(f"ccgate pid {gateway.pid}: RSS at start {rss_start['vmrss_kb']} KiB, "
                     f"idle after first requests {rss_idle['vmrss_kb']} KiB")
            floors = [Floor(server, nginx.url, workdir) for server in opts.floor]
            for f in floors:
                for r in requests:
                    _check_answer(f"floor-{f.server}", f.url, r, UPSTREAM_KEY, _is_stream(r))
            # (label, url, credential, pid) in the order each round runs them
            targets: list[tuple[str, str, str, int | None]] = [
                ("direct", nginx.url, "direct", None),
                ("ccgate", gateway.url, "ccgate", gateway.pid),
                *((f"floor-{f.server}", f.url, "direct", f.pid) for f in floors),
            ]
            access_before = gateway.access_lines()
            metrics_before = metric_counts(gateway.metrics())
            for r in requests:
                for _label, url, cred, _pid in targets[1:]:
                    warm(opts, url, files[(r.name, cred)])
                for conns in (1, opts.concurrency):
                    # All targets alternate, round after round: slow drifts on a shared
                    # machine hit every side alike; each lane reports its median round.
                    runs: dict[str, list[dict[str, Any]]] = {t[0]: [] for t in targets}
                    for _ in range(opts.rounds):
                        for label, url, cred, pid in targets:
                            runs[label].append(lane(opts, label, url, files[(r.name, cred)],
                                                     r.name, conns, pid=pid))
                    lanes += [median(v) for v in runs.values()]
            time.sleep(0.5)
            rss_load = rss_kb(gateway.pid)
            metrics_after = metric_counts(gateway.metrics())
            access_after = gateway.access_lines()
            if gateway.proc is not None and gateway.proc.poll() is not None:
                raise BenchError(f"ccgate died during the run: {gateway.stderr_tail()}")
            results["floor_rss"] = {f"floor-{f.server}": rss_kb(f.pid) for f in floors}
            for f in floors:
                f.stop()
            gateway.stop()
            if opts.translated:
                opts.log("translated lanes (Anthropic in, OpenAI out):")
                results["translated"] = translated.run(opts, workdir, large, nginx)
        finally:
            for f in floors:
                f.stop()
            if gateway is not None:
                gateway.stop()
            nginx.stop()
    ccgate_lanes = [ln for ln in lanes if ln["target"] == "ccgate"]
    floor_lanes = [ln for ln in lanes if ln["target"].startswith("floor-")]
    results["lanes"] = lanes
    results["rss"] = {"start": rss_start, "idle": rss_idle, "after_load": rss_load}
    results["checks"] = {
        "ccgate_requests": sum(ln["requests"] for ln in ccgate_lanes),
        "ccgate_errors": sum(ln["error_total"] for ln in ccgate_lanes),
        "direct_errors": sum(ln["error_total"] for ln in lanes if ln["target"] == "direct"),
        "floor_errors": sum(ln["error_total"] for ln in floor_lanes),
        "access_log_lines_during_load": access_after - access_before,
        # /v1/messages answers counted by ccgate's own /metrics during the load lanes
        "metrics_messages_by_status": {
            k: v - metrics_before.get(k, 0.0) for k, v in metrics_after.items()
            if v - metrics_before.get(k, 0.0) > 0},
    }
    results["summary"] = _summary(results, opts.concurrency)
    results["targets"] = _targets(results["summary"], rss_idle)
    if "translated" in results:
        results["targets"] += translated.targets(results["translated"])
    results["loadavg_after"] = os.getloadavg()
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    return results


def _find(lanes: list[dict[str, Any]], target: str, size: str, conns: int) -> dict[str, Any]:
    for ln in lanes:
        if ln["target"] == target and ln["request"] == size and ln["connections"] == conns:
            return ln
    raise KeyError((target, size, conns))


def _summary(results: dict[str, Any], c: int) -> dict[str, Any]:
    lanes = results["lanes"]
    out: dict[str, Any] = {}
    targets = sorted({ln["target"] for ln in lanes} - {"direct"},
                     key=lambda t: (t != "ccgate", t))
    for size in ("small", "large"):
        d1, dc = _find(lanes, "direct", size, 1), _find(lanes, "direct", size, c)
        row: dict[str, Any] = {
            "direct": {"p50_ms": d1["latency_us"]["p50"] / 1000,
                       "p99_ms": d1["latency_us"]["p99"] / 1000, "rps": dc["rps"]}}
        for t in targets:
            g1, gc = _find(lanes, t, size, 1), _find(lanes, t, size, c)
            row[t] = {
                "p50_ms": g1["latency_us"]["p50"] / 1000,
                "p99_ms": g1["latency_us"]["p99"] / 1000,
                "added_p50_ms": (g1["latency_us"]["p50"] - d1["latency_us"]["p50"]) / 1000,
                "added_p99_ms": (g1["latency_us"]["p99"] - d1["latency_us"]["p99"]) / 1000,
                "rps": gc["rps"],
                "cpu_pct_c32": gc.get("cpu_pct"),
            }
        out[size] = row
    return out


def _targets(summary: dict[str, Any], rss_idle: dict[str, Any]) -> list[dict[str, Any]]:
    measured = {
        "added_p50_small_ms": summary["small"]["ccgate"]["added_p50_ms"],
        "added_p50_large_ms": summary["large"]["ccgate"]["added_p50_ms"],
        "rps_small_c32": summary["small"]["ccgate"]["rps"],
        "rps_large_c32": summary["large"]["ccgate"]["rps"],
        "idle_rss_mb": (rss_idle["vmrss_kb"] or 0) / 1024,
    }
    out = []
    for key, desc, limit, unit, higher in TARGETS:
        value = measured[key]
        ok = value >= limit if higher else value <= limit
        out.append({"key": key, "issue": 2, "target": desc, "limit": limit, "unit": unit,
                    "op": ">=" if higher else "<=", "measured": value, "pass": ok})
    return out


# Rendering ----------------------------------------------------------------------------


def _ms(v: float) -> str:
    return f"{v:.3f}"


def tables(results: dict[str, Any]) -> str:
    s = results["summary"]
    reqs = results["requests"]
    c = max(ln["connections"] for ln in results["lanes"])
    lines = [
        f"| request | body | c=1 p50 direct | c=1 p50 ccgate | **added p50** | c=1 p99 direct "
        f"| c=1 p99 ccgate | added p99 | c={c} req/s direct | **c={c} req/s ccgate** |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for size, title in (("small", "small"), ("large", "Claude Code")):
        d, g = s[size]["direct"], s[size]["ccgate"]
        tools = f", {reqs[size]['tools']} tools" if reqs[size]["tools"] else ""
        lines.append(
            f"| {title} | {reqs[size]['bytes'] / 1024:.1f} KiB{tools} | {_ms(d['p50_ms'])} ms "
            f"| {_ms(g['p50_ms'])} ms | **{_ms(g['added_p50_ms'])} ms** | {_ms(d['p99_ms'])} ms "
            f"| {_ms(g['p99_ms'])} ms | {_ms(g['added_p99_ms'])} ms | {d['rps']:,.0f} "
            f"| **{g['rps']:,.0f}** |")
    rss = results["rss"]
    lines += [
        "",
        f"ccgate RSS (VmRSS of the one process): {rss['start']['vmrss_kb'] / 1024:.1f} MB at "
        f"start, **{rss['idle']['vmrss_kb'] / 1024:.1f} MB idle** after the first requests, "
        f"{rss['after_load']['vmrss_kb'] / 1024:.1f} MB after load "
        f"(peak VmHWM {rss['after_load']['vmhwm_kb'] / 1024:.1f} MB).",
    ]
    floors = [t for t in s["small"] if t.startswith("floor-")]
    if floors:
        lines += [
            "",
            "Same lanes through the bare relay floor (`bench/relay_floor.py`, aiohttp client, "
            "no auth/logging/metrics/validation):",
            "",
            f"| relay | request | c=1 p50 | added p50 | added p99 | c={c} req/s |",
            "|---|---|--:|--:|--:|--:|",
        ]
        for t in ["ccgate", *floors]:
            for size, title in (("small", "small"), ("large", "Claude Code")):
                g = s[size][t]
                name = "ccgate (full)" if t == "ccgate" else t.removeprefix("floor-") + " + aiohttp"
                lines.append(f"| {name} | {title} | {_ms(g['p50_ms'])} ms "
                             f"| {_ms(g['added_p50_ms'])} ms | {_ms(g['added_p99_ms'])} ms "
                             f"| {g['rps']:,.0f} |")
    if "translated" in results:
        lines += ["", translated.tables(results["translated"], c)]
    lines += ["", "| target | issue | limit | measured | result |", "|---|--:|--:|--:|---|"]
    for t in results["targets"]:
        fmt = (lambda v: f"{v:,.0f}") if t["unit"] == "req/s" else (
            (lambda v: f"{v:.3f}") if t["unit"] == "ms" else (lambda v: f"{v:.1f}"))
        unit = "µs" if t["unit"] == "us" else t["unit"]
        lines.append(f"| {t['target']} | #{t.get('issue', 2)} | {t['op']} {fmt(t['limit'])} "
                     f"{unit} | {fmt(t['measured'])} {unit} "
                     f"| {'PASS' if t['pass'] else 'FAIL'} |")
    return "\n".join(lines)


def docs_section(results: dict[str, Any]) -> str:
    m = results["machine"]
    ch = results["checks"]
    large = results["requests"]["large"]
    return "\n".join([
        BEGIN,
        "",
        f"Measured {results['generated_at']} with:",
        "",
        "```sh",
        results["command"],
        "```",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_mb']} MB RAM, "
        f"{m['os']}, kernel {m['kernel']}, Python {m['python']}, {m['nginx']}, "
        f"{m['wrk'].split(' Copyright')[0]}.",
        f"wrk -t{results['wrk_threads']}; each ccgate/direct lane is the median of "
        f"{results['rounds']} alternating rounds of {results['seconds_per_lane']} s "
        f"(floor relays in the same rounds); {results['warmup_seconds']} s warm-up per "
        f"target; others kept the CPUs {results['others_cpu_busy_pct_before']:.0f}% busy "
        f"just before; "
        f"whole run {results['elapsed_seconds']} s; load average before/after "
        f"{results['loadavg_before'][0]:.2f}/{results['loadavg_after'][0]:.2f}.",
        f"Claude Code request: {large['bytes']:,} bytes, {large['tools']} tools, "
        f"stream={str(large['stream']).lower()}, {large['source']}.",
        "",
        tables(results),
        "",
        f"Checks: {ch['ccgate_requests']:,} requests through ccgate, {ch['ccgate_errors']} wrk "
        f"errors (socket errors or non-2xx); ccgate's `/metrics` counted "
        f"{_fmt_counts(ch['metrics_messages_by_status'])} on `/v1/messages` (499: wrk "
        f"closed connections with requests in flight at the end of a lane); the access log "
        f"grew by {ch['access_log_lines_during_load']:,} lines during the load.",
        *_translated_checks(results),
        "",
        END,
    ])


def _translated_checks(results: dict[str, Any]) -> list[str]:
    t = results.get("translated")
    if not t:
        return []
    ch = t["checks"]
    return [
        "",
        f"Translated: {ch['ccgate_requests']:,} wrk requests through ccgate, "
        f"{ch['ccgate_errors']} errors; its `/metrics` counted "
        f"{_fmt_counts(ch['metrics_messages_by_status'])} on `/v1/messages`. Before the load "
        "every translated answer (JSON, 5-chunk and 500-chunk streams, static and paced) was "
        "checked to be a valid Anthropic message or stream with the exact text, and during the "
        "stream lanes every one of them was checked again.",
    ]


def _fmt_counts(counts: dict[str, float]) -> str:
    return ", ".join(f"{int(v):,} x {k}" for k, v in sorted(counts.items())) or "nothing"


def update_docs(results: dict[str, Any], path: Path = DOCS) -> None:
    section = docs_section(results)
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = (text.rstrip() + "\n\n## Latest results\n\n" if text else
                "# Benchmarks\n\n## Latest results\n\n") + section + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(opts: Options) -> int:
    try:
        results = run(opts)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    print()
    print(tables(results))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = opts.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(opts.out)
    print(f"\nwrote {opts.out}")
    if opts.docs:
        update_docs(results)
        print(f"updated {DOCS}")
    problems = []
    if results["checks"]["ccgate_errors"] or results["checks"]["direct_errors"]:
        problems.append("wrk saw errors (see lanes in the JSON)")
    tr = results.get("translated", {}).get("checks")
    if tr and (tr["ccgate_errors"] or tr["direct_errors"]):
        problems.append("wrk saw errors in the translated lanes (see translated.lanes)")
    if tr and any(k not in ("200", "499") for k in tr["metrics_messages_by_status"]):
        problems.append("translated ccgate answered something other than 200 on /v1/messages")
    # 499 = wrk closed a connection with a request in flight when a lane's time was up.
    if any(k not in ("200", "499") for k in results["checks"]["metrics_messages_by_status"]):
        problems.append("ccgate answered something other than 200 on /v1/messages")
    for p in problems:
        print(f"bench: {p}", file=sys.stderr)
    return 1 if problems else 0


def command_line(argv: list[str]) -> str:
    exe = sys.executable
    if Path(exe).is_relative_to(Path.cwd()):
        exe = os.path.relpath(exe, Path.cwd())
    return " ".join(shlex.quote(a) for a in [exe, "-m", "bench", *argv])
