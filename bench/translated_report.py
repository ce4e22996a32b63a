"""The translation lanes' figures (summary, issue-4 targets) and their tables."""

from __future__ import annotations

from typing import Any

from bench.answers import N_CHUNKS
from bench.report import fmt_counts, latency_table
from bench.summary import direct_figures, find_lane, gateway_figures, target

# (key, description, limit, unit); every one is an upper limit
TARGETS = [
    ("added_p50_small_oai_ms", "translated: added p50 latency, small request, c=1", 1.0, "ms"),
    ("per_chunk_burst_us", "translated: per-chunk overhead, 500-chunk stream, median", 50.0,
     "us"),
    ("chunk_latency_paced_us", "translated: added latency of each chunk, paced 500-chunk "
     "stream (one read per chunk), median (same limit, applied to the honest variant)", 50.0,
     "us"),
]


def summary(t: dict[str, Any], c: int) -> dict[str, Any]:
    lanes = t["lanes"]
    out: dict[str, Any] = {
        req: {"direct": direct_figures(lanes, req, c),
              "ccgate": gateway_figures(lanes, "ccgate", req, c)}
        for req in ("small", "large")}
    db, gb = find_lane(lanes, "direct", "burst", c), find_lane(lanes, "ccgate", "burst", c)
    out["burst_c32"] = {"direct_streams_per_s": db["rps"], "ccgate_streams_per_s": gb["rps"],
                        "ccgate_chunks_per_s": gb["rps"] * N_CHUNKS,
                        "ccgate_cpu_pct": gb.get("cpu_pct")}
    return out


def targets(t: dict[str, Any]) -> list[dict[str, Any]]:
    st = t["streams"]
    measured = {
        "added_p50_small_oai_ms": t["summary"]["small"]["ccgate"]["added_p50_ms"],
        "per_chunk_burst_us": st["burst"]["added"]["ccgate"]["per_chunk_us"],
        "chunk_latency_paced_us": st["paced"]["added"]["ccgate"].get(
            "chunk_latency_p50_us", float("nan")),
    }
    return [target(k, 4, desc, limit, unit, False, measured[k])
            for k, desc, limit, unit in TARGETS]


# Rendering ----------------------------------------------------------------------------------


def _request_table(t: dict[str, Any], c: int) -> list[str]:
    s, reqs = t["summary"], t["requests"]
    large = ("Claude Code, 5-chunk stream answer" if reqs["large"]["stream"]
             else "Claude Code, JSON answer")
    rows = [(title, f"{reqs[req]['anthropic_bytes'] / 1024:.1f} → "
                    f"{reqs[req]['openai_bytes'] / 1024:.1f} KiB",
             s[req]["direct"], s[req]["ccgate"])
            for req, title in (("small", "small, JSON answer"), ("large", large))]
    return ["Translated (Anthropic in, OpenAI Chat Completions to nginx, Anthropic back); "
            "direct = the same OpenAI body straight to nginx:", "",
            *latency_table("Anthropic body → OpenAI body", rows, c)]


def _direct_row(label: str, name: str, side: dict[str, Any]) -> str:
    cl = side.get("chunk_latency_us")
    lat = f"p50 {cl['p50']:.1f} / p99 {cl['p99']:.1f} µs (loopback + client)" if cl else "—"
    return (f"| {label} | {name} | {side['ttfb_us']:.0f} µs | | "
            f"| {side['total_us'] / 1000:.2f} ms | | {lat} | |")


def _relay_row(label: str, name: str, side: dict[str, Any], a: dict[str, Any]) -> str:
    lat = (f"{a['chunk_latency_p50_us']:.1f} / {a['chunk_latency_p99_us']:.1f} µs"
           if "chunk_latency_p50_us" in a else "—")
    cpu = f"{side['cpu_us_per_chunk']:.1f} µs" if "cpu_us_per_chunk" in side else ""
    # Paced: the total is set by the upstream's pauses and a gateway's work per chunk hides in
    # them, so (added total - added TTFB) / 500 is noise; the latency is the measure there.
    per = (f"**{a['per_chunk_us']:.2f} µs**" if "chunk_latency_p50_us" not in a
           else f"({a['per_chunk_us']:.1f} µs)")
    return (f"| {label} | {name} | {side['ttfb_us']:.0f} µs | **{a['ttfb_us']:.0f} µs** "
            f"| {a['ttft_us']:.0f} µs | {side['total_us'] / 1000:.2f} ms "
            f"| {per} | {lat} | {cpu} |")


def _stream_table(t: dict[str, Any]) -> list[str]:
    b, p = t["streams"]["burst"], t["streams"]["paced"]
    lines = [
        f"Streams of {b['chunks']} text chunks (+ finish, usage, `[DONE]`), one connection, "
        f"medians of {len(b['rounds'])} alternating rounds ({b['streams_per_round']} streams "
        f"per round static, {p['streams_per_round']} paced); floor = the bare relay passing "
        "the OpenAI chunks on untranslated:",
        "",
        "| upstream stream | via | TTFB | **added TTFB** | added time to first chunk | total "
        "| **per-chunk overhead** | added latency per chunk p50 / p99 | CPU per chunk |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for x, label in ((b, "static: nginx, 1 body"),
                     (p, "paced: 1 write per chunk, ~1 ms apart")):
        for who, side in x["targets"].items():
            name = {"direct": "direct", "ccgate": "**ccgate**"}.get(
                who, f"floor ({x.get('floor_server', '?')} + aiohttp)")
            if who in x["added"]:
                lines.append(_relay_row(label, name, side, x["added"][who]))
            else:  # the first target, the one the others are compared with
                lines.append(_direct_row(label, name, side))
    return lines


def tables(t: dict[str, Any], c: int) -> str:
    bc = t["summary"]["burst_c32"]
    return "\n".join([
        *_request_table(t, c),
        "",
        *_stream_table(t),
        "",
        f"Static 500-chunk stream at c={c}: {bc['direct_streams_per_s']:,.0f} streams/s direct, "
        f"**{bc['ccgate_streams_per_s']:,.0f} streams/s** through ccgate "
        f"({bc['ccgate_chunks_per_s']:,.0f} chunks/s translated"
        + (f", ccgate CPU {bc['ccgate_cpu_pct']:.0f}%" if bc.get("ccgate_cpu_pct") else "")
        + ").",
        f"Translated ccgate RSS: {t['rss']['idle']['vmrss_kb'] / 1024:.1f} MB idle, "
        f"{t['rss']['after_load']['vmrss_kb'] / 1024:.1f} MB after the load.",
    ])


def checks_lines(t: dict[str, Any]) -> list[str]:
    """The translated part of the docs section's closing checks."""
    ch = t["checks"]
    return [
        "",
        f"Translated: {ch['ccgate_requests']:,} wrk requests through ccgate, "
        f"{ch['ccgate_errors']} errors; its `/metrics` counted "
        f"{fmt_counts(ch['metrics_messages_by_status'])} on `/v1/messages`. Before the load "
        "every translated answer (JSON, 5-chunk and 500-chunk streams, static and paced) was "
        "checked to be a valid Anthropic message or stream with the exact text, and during the "
        "stream lanes every one of them was checked again.",
    ]
