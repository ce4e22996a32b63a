"""The peers tables (one column per gateway) and their section of docs/benchmarks.md."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from bench.peers.targets import REQUEST_LANES, C, usable
from bench.report import DocsSection, conditions, machine_sentence, measured_with

SECTION = DocsSection.of("peers", "python -m bench peers", "Peers: latest results")
STREAM_ROWS = ("pt-burst", "tr-burst", "pt-paced", "tr-paced")
LANE_TITLES = {
    "pt-small": "passthrough, small", "pt-large": "passthrough, Claude Code",
    "tr-small": "translated, small", "tr-large": "translated, Claude Code",
    "pt-burst": "passthrough, static 500-chunk stream",
    "pt-paced": "passthrough, paced 500-chunk stream",
    "tr-burst": "translated, static 500-chunk stream",
    "tr-paced": "translated, paced 500-chunk stream",
    "pt-cc": "passthrough, captured Claude Code request",
    "tr-cc": "translated, captured Claude Code request",
}
Cell = Callable[[str, dict[str, Any]], str]  # (gateway name, its results) -> one cell


def _ran(x: dict[str, Any] | None) -> bool:
    return x is not None and "unsupported" not in x and "error" not in x


def _not_run(x: dict[str, Any] | None) -> str:
    """The cell of a lane that did not run."""
    if x is None:
        return "—"
    return f"n/a ({x['unsupported']})" if "unsupported" in x else "**fails**"


def _row(title: str, peers: dict[str, Any], cell: Cell) -> str:
    return f"| {title} | " + " | ".join(cell(n, p) for n, p in peers.items()) + " |"


def _head(peers: dict[str, Any]) -> list[str]:
    return ["| lane | " + " | ".join(f"{n} {p['version']}" for n, p in peers.items()) + " |",
            "|---|" + "--:|" * len(peers)]


def _added_p50(key: str, ref: dict[str, Any] | None, n: str, p: dict[str, Any]) -> str:
    """c=1 added p50, and its ratio to ccgate's (`ref`: ccgate's lane)."""
    x = p["lanes"].get(key)
    if x is None or not _ran(x):
        return _not_run(x)
    if "error" in x["1"]:
        return "**none completed**"
    v = x["1"]["added_p50_ms"]
    ratio = (f" (×{v / ref['1']['added_p50_ms']:.1f})"
             if ref and n != "ccgate" and "error" not in ref["1"]
             and ref["1"]["added_p50_ms"] > 0 else "")
    return f"{v:.3f} ms{ratio}"


def _throughput(key: str, ref: dict[str, Any] | None, n: str, p: dict[str, Any]) -> str:
    """c=32 req/s, as a ratio to direct's and to ccgate's (`ref`: ccgate's lane)."""
    x = p["lanes"].get(key)
    if x is None or not _ran(x):
        return _not_run(x)
    if "error" in x[C]:
        return "**none completed**"
    g, d = x[C]["gateway"], x[C]["direct"]
    rc = (f", ×{g['rps'] / ref[C]['gateway']['rps']:.3f}"
          if ref and n != "ccgate" and "gateway" in ref[C] else "")
    err = f", {g['errors']} errors" if g["errors"] else ""
    return f"{g['rps']:,.0f} (×{g['rps'] / d['rps']:.3f}{rc}{err})"


def _stream(key: str, n: str, p: dict[str, Any]) -> str:
    x = p["streams"].get(key)
    if x is None or not _ran(x):
        return _not_run(x)
    a = x["added"]["gateway"]
    if "chunk_latency_p50_us" in a:  # paced: the work per chunk hides in the gaps
        per = f"+{a['chunk_latency_p50_us']:.0f} µs latency/chunk"
    else:
        per = f"{a['per_chunk_us']:.1f} µs/chunk"
    return f"TTFB +{a['ttfb_us'] / 1000:.2f} ms, {per}"


def _memory(key: str, n: str, p: dict[str, Any]) -> str:
    m = p["memory"].get(key)
    if not m:
        return "—"
    if key == "idle":
        return (f"{(m['tree_vmrss_kb'] or 0) / 1024:.1f} MB"
                + (f" ({m['processes']} processes)" if m["processes"] > 1 else ""))
    return f"{(m['rss']['tree_vmrss_kb'] or 0) / 1024:.1f} MB " \
        f"({m['established']}/{m['requested']} open)"


def _correct(key: str, n: str, p: dict[str, Any]) -> str:
    x = p["correctness"].get(key)
    if not x:
        return "n/a"
    if not x["valid"]:
        return "**no**"
    bits = []
    if "byte_exact" in x:
        bits.append("body byte-exact" if x["byte_exact"] else "body rewritten")
    if "tools_forwarded" in x:
        bits.append(f"{x['tools_forwarded']} tools sent")
    return "yes" + (f" ({', '.join(bits)})" if bits else "")


def _network(n: str, p: dict[str, Any]) -> str:
    x = p.get("network")
    if x is None:
        return "not traced"
    if "error" in x:
        return "trace failed"
    bad = x["non_loopback_connects"]
    return "127.0.0.1 only" if not bad else f"**{len(bad)} other**"


def _errors(peers: dict[str, Any]) -> list[str]:
    """Every failure in full (first 200 characters), peer by peer."""
    errors = []
    for n, p in peers.items():
        for where in ("lanes", "streams", "correctness"):
            for key, x in p[where].items():
                if isinstance(x, dict) and x.get("error") and (where != "correctness"
                                                               or not x.get("valid")):
                    errors.append(f"- {n}, {LANE_TITLES.get(key, key)}: `{x['error']}`")
        for key, m in p["memory"].items():
            if key != "idle" and m.get("first_error"):
                errors.append(f"- {n}, {key} ({m['errors']} of {m['requested']} failed): "
                              f"`{m['first_error']}`")
        for b in (p.get("network") or {}).get("non_loopback_connects", []):
            errors.append(f"- {n} tried to connect: `{b}`")
    return ["", "Failures and errors (first 200 characters):", "", *errors] if errors else []


def _targets_table(targets: list[dict[str, Any]]) -> list[str]:
    if not targets:
        return []
    result = {True: "PASS", False: "FAIL", None: "n/a"}
    return ["", "| target (issue 7) | measured | result |", "|---|---|---|",
            *(f"| {t['target']} | {t['measured']} | {result[t['pass']]} |" for t in targets)]


def _table(intro: str, peers: dict[str, Any], rows: list[tuple[str, Cell]]) -> list[str]:
    """One table: a sentence, the gateways' columns, a row per (title, cell)."""
    return ["", intro, "", *_head(peers), *(_row(title, peers, cell) for title, cell in rows)]


def tables(results: dict[str, Any]) -> str:
    peers = results["peers"]
    cc = peers.get("ccgate")
    n_open = results.get("streams_open", 200)
    lines = [
        *_table("Added p50 latency at c=1 (gateway − direct, same run), and its ratio to ccgate's:",
                peers, [(LANE_TITLES[k], partial(_added_p50, k, usable(cc, k)))
                        for k in REQUEST_LANES]),
        *_table(f"Throughput at c={C} (req/s through the gateway; × direct; × ccgate):",
                peers, [(LANE_TITLES[k], partial(_throughput, k, usable(cc, k)))
                        for k in REQUEST_LANES]),
        *_table("Streams of 500 chunks, one connection: added TTFB, and per chunk: static stream "
                "(one body) the overhead (added total − added TTFB) / 500, paced stream (one "
                "write per chunk, ~1 ms apart) the added latency of each chunk (p50):",
                peers, [(LANE_TITLES[k], partial(_stream, k)) for k in STREAM_ROWS]),
        *_table(f"Memory (VmRSS of the process tree): idle after the first request, and with "
                f"{n_open} slow streams open (the scripted upstream sends a chunk every 0.5 s):",
                peers, [("idle", partial(_memory, "idle")),
                        (f"{n_open} open streams, translated", partial(_memory, "tr-slow")),
                        (f"{n_open} open streams, passthrough", partial(_memory, "pt-slow"))]),
        *_table("Correctness: the captured Claude Code request (model name set per gateway) once "
                "through each, against the scripted upstream answering validly:",
                peers, [("passthrough: valid Anthropic answer", partial(_correct, "pt-cc")),
                        ("translated: valid Anthropic answer", partial(_correct, "tr-cc")),
                        ("connect() targets (strace)", _network)]),
        *_errors(peers),
        *_targets_table(results.get("targets") or []),
    ]
    return "\n".join(lines[1:])  # no blank line before the first table's sentence


def docs_section(results: dict[str, Any], plot_rel: str | None) -> str:
    peers = results["peers"]
    inst = [f"{n} {p['version']} ({p['runtime']})" for n, p in peers.items()]
    large = results["large"]
    return SECTION.render([
        *measured_with(results),
        machine_sentence(results["machine"], node=results["node"])
        + f" wrk -t1; every direct/gateway pair alternates {results['rounds']} rounds of "
        f"{results['seconds_per_lane']} s (median kept); "
        + conditions(results, f"{results['elapsed_seconds']:.0f}"),
        f"Claude Code request: {large['bytes']:,} bytes, {large['tools']} tools, "
        f"{large['source']}.",
        "", "Gateways: " + "; ".join(inst) + ".", "", tables(results), "",
        *([f"![added p50 latency vs concurrency]({plot_rel})", ""] if plot_rel else []),
    ])
