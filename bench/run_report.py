"""`bench run` figures (summary, issue-2 targets), its tables and its section of the docs."""

from __future__ import annotations

from typing import Any

from bench import translated_report
from bench.report import (
    DocsSection,
    conditions,
    fmt_counts,
    fmt_ms,
    latency_table,
    machine_sentence,
    measured_with,
)
from bench.summary import direct_figures, gateway_figures, target

SECTION = DocsSection.of("results", "python -m bench run", "Latest results")
SIZES = (("small", "small"), ("large", "Claude Code"))  # (request, title in the tables)

# Targets from issue 2 (gateway-core): (key, description, limit, unit, higher_is_better)
TARGETS = [
    ("added_p50_small_ms", "added p50 latency, small request, c=1", 0.5, "ms", False),
    ("added_p50_large_ms", "added p50 latency, Claude Code request, c=1", 0.8, "ms", False),
    ("rps_small_c32", "req/s through ccgate, small request, c=32", 3000, "req/s", True),
    ("rps_large_c32", "req/s through ccgate, Claude Code request, c=32", 1500, "req/s", True),
    ("idle_rss_mb", "idle RSS of the ccgate process", 80, "MB", False),
]


def summary(results: dict[str, Any], c: int) -> dict[str, Any]:
    """Per request: direct's figures, and each relay's (ccgate first) against direct."""
    lanes = results["lanes"]
    relays = sorted({ln["target"] for ln in lanes} - {"direct"},
                    key=lambda t: (t != "ccgate", t))
    return {size: {"direct": direct_figures(lanes, size, c),
                   **{t: gateway_figures(lanes, t, size, c) for t in relays}}
            for size, _ in SIZES}


def targets(summary: dict[str, Any], rss_idle: dict[str, Any]) -> list[dict[str, Any]]:
    measured = {
        "added_p50_small_ms": summary["small"]["ccgate"]["added_p50_ms"],
        "added_p50_large_ms": summary["large"]["ccgate"]["added_p50_ms"],
        "rps_small_c32": summary["small"]["ccgate"]["rps"],
        "rps_large_c32": summary["large"]["ccgate"]["rps"],
        "idle_rss_mb": (rss_idle["vmrss_kb"] or 0) / 1024,
    }
    return [target(key, 2, desc, limit, unit, higher, measured[key])
            for key, desc, limit, unit, higher in TARGETS]


# Rendering ----------------------------------------------------------------------------------


def _rss_sentence(rss: dict[str, Any]) -> str:
    return (f"ccgate RSS (VmRSS of the one process): {rss['start']['vmrss_kb'] / 1024:.1f} MB at "
            f"start, **{rss['idle']['vmrss_kb'] / 1024:.1f} MB idle** after the first requests, "
            f"{rss['after_load']['vmrss_kb'] / 1024:.1f} MB after load "
            f"(peak VmHWM {rss['after_load']['vmhwm_kb'] / 1024:.1f} MB).")


def _floor_table(s: dict[str, Any], floors: list[str], c: int) -> list[str]:
    lines = [
        "Same lanes through the bare relay floor (`bench/relay_floor.py`, aiohttp client, "
        "no auth/logging/metrics/validation):",
        "",
        f"| relay | request | c=1 p50 | added p50 | added p99 | c={c} req/s |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for t in ["ccgate", *floors]:
        name = "ccgate (full)" if t == "ccgate" else t.removeprefix("floor-") + " + aiohttp"
        for size, title in SIZES:
            g = s[size][t]
            lines.append(f"| {name} | {title} | {fmt_ms(g['p50_ms'])} ms "
                         f"| {fmt_ms(g['added_p50_ms'])} ms | {fmt_ms(g['added_p99_ms'])} ms "
                         f"| {g['rps']:,.0f} |")
    return lines


def _fmt_target_value(unit: str, v: float) -> str:
    if unit == "×":
        return f"{v:.2f}"
    return f"{v:,.0f}" if unit == "req/s" else f"{v:.3f}" if unit == "ms" else f"{v:.1f}"


def _targets_table(targets: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | issue | limit | measured | result |", "|---|--:|--:|--:|---|"]
    for t in targets:
        unit = "µs" if t["unit"] == "us" else t["unit"]
        limit, measured = (_fmt_target_value(t["unit"], t[k]) for k in ("limit", "measured"))
        lines.append(f"| {t['target']} | #{t.get('issue', 2)} | {t['op']} {limit} {unit} "
                     f"| {measured} {unit} | {'PASS' if t['pass'] else 'FAIL'} |")
    return lines


def tables(results: dict[str, Any]) -> str:
    s, reqs = results["summary"], results["requests"]
    c = max(ln["connections"] for ln in results["lanes"])
    rows = [(title, f"{reqs[size]['bytes'] / 1024:.1f} KiB"
                    + (f", {reqs[size]['tools']} tools" if reqs[size]["tools"] else ""),
             s[size]["direct"], s[size]["ccgate"])
            for size, title in SIZES]
    lines = [*latency_table("body", rows, c), "", _rss_sentence(results["rss"])]
    floors = [t for t in s["small"] if t.startswith("floor-")]
    if floors:
        lines += ["", *_floor_table(s, floors, c)]
    if "translated" in results:
        lines += ["", translated_report.tables(results["translated"], c)]
    lines += ["", *_targets_table(results["targets"])]
    return "\n".join(lines)


def _checks_sentence(ch: dict[str, Any]) -> str:
    return (f"Checks: {ch['ccgate_requests']:,} requests through ccgate, {ch['ccgate_errors']} "
            f"wrk errors (socket errors or non-2xx); ccgate's `/metrics` counted "
            f"{fmt_counts(ch['metrics_messages_by_status'])} on `/v1/messages` (499: wrk "
            f"closed connections with requests in flight at the end of a lane); the access log "
            f"grew by {ch['access_log_lines_during_load']:,} lines during the load.")


def docs_section(results: dict[str, Any]) -> str:
    large = results["requests"]["large"]
    return SECTION.render([
        *measured_with(results),
        machine_sentence(results["machine"]),
        f"wrk -t{results['wrk_threads']}; each ccgate/direct lane is the median of "
        f"{results['rounds']} alternating rounds of {results['seconds_per_lane']} s "
        f"(floor relays in the same rounds); {results['warmup_seconds']} s warm-up per "
        f"target; " + conditions(results, str(results["elapsed_seconds"])),
        f"Claude Code request: {large['bytes']:,} bytes, {large['tools']} tools, "
        f"stream={str(large['stream']).lower()}, {large['source']}.",
        "",
        tables(results),
        "",
        _checks_sentence(results["checks"]),
        *(translated_report.checks_lines(results["translated"])
          if results.get("translated") else []),
        "",
    ])
