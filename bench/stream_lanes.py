"""Stream lanes: streamed answers timed chunk by chunk with the precise client.

A lane alternates rounds of a few streams on each target, the first being "direct". Per round
and target: medians of TTFB, time to the first text chunk, total, and the chunk latency
percentiles (paced streams). Added = target - direct in the same round; per-chunk overhead =
(added total - added TTFB) / chunks. The lane's values are the medians of its rounds.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import checks
from bench.answers import N_CHUNKS
from bench.common import BenchError, http
from bench.options import Options
from bench.procs import cpu_ticks, ticks_to_seconds
from bench.stream_client import Client, Timed

Check = Callable[[Timed], str | None]  # a problem with the answer, or None
TIMES = ("ttfb_us", "ttft_us", "total_us")


@dataclass
class StreamTarget:
    """One side of a stream lane: where to POST what, and how to judge the answer."""

    label: str
    url: str
    path: str
    headers: dict[str, str]
    body: bytes
    check: Check
    pid: int | None = None
    meta_url: str | None = None  # the scripted upstream behind it: ask when the request arrived


def direct_check(t: Timed) -> str | None:
    """The upstream's own stream: a 200 with every chunk, in order."""
    if t.status != 200:
        return f"answered {t.status}: {t.body[:200]!r}"
    return checks.markers_in_order(t.body)


def anthropic_check(text: str | None) -> Check:
    """Through a gateway: a 200, a valid Anthropic stream with `text`, every chunk in order."""
    def check(t: Timed) -> str | None:
        if t.status != 200:
            return f"answered {t.status}: {t.body[:200]!r}"
        return checks.check_anthropic_sse(t.body, text) or checks.markers_in_order(t.body)
    return check


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(q / 100 * (len(v) - 1)))]


def _forwarding_us(meta_url: str, t: Timed) -> float | None:
    """When the request was complete at the scripted upstream, from when it was sent."""
    status, raw = http("GET", meta_url + "/__meta")
    return (json.loads(raw)["received_ns"] - t.t_sent) / 1000 if status == 200 else None


def _streams(client: Client, target: StreamTarget, n: int) -> dict[str, Any]:
    """`n` streams on one target: medians of the times, percentiles of the chunk latencies."""
    runs: list[Timed] = []
    forwarded: list[float] = []
    for _ in range(n):
        t = client.post(target.path, target.headers, target.body)
        runs.append(t)
        fwd = _forwarding_us(target.meta_url, t) if target.meta_url else None
        if fwd is not None:
            forwarded.append(fwd)
    problems = [p for p in (target.check(t) for t in runs) if p]
    if problems:
        raise BenchError(f"stream lane: {len(problems)} bad answers, first: {problems[0]}")
    lat = [x for t in runs for x in t.chunk_latencies_us()]
    return {
        "requests": n,
        "ttfb_us": statistics.median(t.ttfb_us for t in runs),
        "ttft_us": statistics.median(t.ttft_us or 0.0 for t in runs),
        "total_us": statistics.median(t.total_us for t in runs),
        "reads": statistics.median(t.reads for t in runs),
        "request_at_upstream_us": statistics.median(forwarded) if forwarded else None,
        "chunk_latency_us": ({"p50": _pct(lat, 50), "p90": _pct(lat, 90), "p99": _pct(lat, 99),
                              "max": max(lat), "n": len(lat)} if lat else None),
    }


def _added(d: dict[str, Any], g: dict[str, Any]) -> dict[str, float]:
    """One target against direct in the same round."""
    a = {k: g[k] - d[k] for k in TIMES}
    a["per_chunk_us"] = (a["total_us"] - a["ttfb_us"]) / N_CHUNKS
    if d["request_at_upstream_us"] is not None and g["request_at_upstream_us"] is not None:
        a["request_forwarding_us"] = g["request_at_upstream_us"] - d["request_at_upstream_us"]
    if d["chunk_latency_us"] and g["chunk_latency_us"]:
        for q in ("p50", "p90", "p99"):
            a[f"chunk_latency_{q}_us"] = g["chunk_latency_us"][q] - d["chunk_latency_us"][q]
    return a


def _log_round(opts: Options, name: str, direct: dict[str, Any],
               added: dict[str, dict[str, float]]) -> None:
    opts.log(f"  stream {name:<14} direct total {direct['total_us'] / 1000:8.2f} ms | " +
             " | ".join(
                 f"{lb} +ttfb {a['ttfb_us']:7.1f} us +{a['per_chunk_us']:6.2f} us/chunk"
                 + (f" +{a['chunk_latency_p50_us']:.1f} us/chunk latency"
                    if "chunk_latency_p50_us" in a else "")
                 for lb, a in added.items()))


def _rounds(opts: Options, name: str, targets: list[StreamTarget], per_round: int,
            rounds: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every round: each target in turn; returns the rounds and each target's CPU ticks."""
    results: list[dict[str, Any]] = []
    ticks = {t.label: 0 for t in targets}
    clients = {t.label: Client(t.url) for t in targets}
    try:
        for t in targets:  # warm each connection and path once
            _streams(clients[t.label], t, 1)
        for _ in range(rounds):
            rd: dict[str, Any] = {}
            for t in targets:
                t0 = cpu_ticks(t.pid) if t.pid else 0
                rd[t.label] = _streams(clients[t.label], t, per_round)
                if t.pid:
                    ticks[t.label] += cpu_ticks(t.pid) - t0
            d = rd[targets[0].label]
            added = {t.label: _added(d, rd[t.label]) for t in targets[1:]}
            results.append({"targets": rd, "added": added})
            _log_round(opts, name, d, added)
    finally:
        for c in clients.values():
            c.close()
    return results, ticks


def _side(rs: list[dict[str, Any]], cpu_seconds: float | None, n_chunks: int
          ) -> dict[str, Any]:
    """One target's medians over the rounds (`rs`: its figures in each round)."""
    side: dict[str, Any] = {k: statistics.median(r[k] for r in rs)
                            for k in (*TIMES, "reads")}
    if all(r["request_at_upstream_us"] is not None for r in rs):
        side["request_at_upstream_us"] = statistics.median(
            r["request_at_upstream_us"] for r in rs)
    lat = [r["chunk_latency_us"] for r in rs if r["chunk_latency_us"]]
    if lat:
        side["chunk_latency_us"] = {q: statistics.median(x[q] for x in lat)
                                    for q in ("p50", "p90", "p99")}
    if cpu_seconds is not None:
        side["cpu_us_per_chunk"] = 1e6 * cpu_seconds / n_chunks
    return side


def stream_lane(opts: Options, name: str, targets: list[StreamTarget], per_round: int,
                rounds: int | None = None) -> dict[str, Any]:
    """Alternate rounds of `per_round` streams on each target (the first is "direct")."""
    rounds = rounds or opts.rounds
    per_round_results, ticks = _rounds(opts, name, targets, per_round, rounds)
    out: dict[str, Any] = {"lane": name, "chunks": N_CHUNKS, "streams_per_round": per_round,
                           "rounds": per_round_results, "targets": {}, "added": {}}
    n_chunks = rounds * per_round * N_CHUNKS
    for t in targets:
        rs = [r["targets"][t.label] for r in per_round_results]
        cpu = ticks_to_seconds(ticks[t.label]) if t.pid else None
        out["targets"][t.label] = _side(rs, cpu, n_chunks)
        if t is not targets[0]:
            out["added"][t.label] = {
                k: statistics.median(r["added"][t.label][k] for r in per_round_results)
                for k in per_round_results[0]["added"][t.label]}
    return out
