"""Reducing lanes to the figures the tables and targets use (shared by `bench run` lanes)."""

from __future__ import annotations

from typing import Any


def find_lane(lanes: list[dict[str, Any]], target: str, request: str, conns: int
              ) -> dict[str, Any]:
    for ln in lanes:
        if ln["target"] == target and ln["request"] == request and ln["connections"] == conns:
            return ln
    raise KeyError((target, request, conns))


def direct_figures(lanes: list[dict[str, Any]], request: str, c: int) -> dict[str, Any]:
    """Direct: c=1 latency and c=`c` throughput."""
    d1, dc = find_lane(lanes, "direct", request, 1), find_lane(lanes, "direct", request, c)
    return {"p50_ms": d1["latency_us"]["p50"] / 1000,
            "p99_ms": d1["latency_us"]["p99"] / 1000, "rps": dc["rps"]}


def gateway_figures(lanes: list[dict[str, Any]], target: str, request: str, c: int
                    ) -> dict[str, Any]:
    """A gateway (or relay): its latency and what it adds to direct's, throughput, CPU."""
    d1 = find_lane(lanes, "direct", request, 1)
    g1, gc = find_lane(lanes, target, request, 1), find_lane(lanes, target, request, c)
    return {
        "p50_ms": g1["latency_us"]["p50"] / 1000,
        "p99_ms": g1["latency_us"]["p99"] / 1000,
        "added_p50_ms": (g1["latency_us"]["p50"] - d1["latency_us"]["p50"]) / 1000,
        "added_p99_ms": (g1["latency_us"]["p99"] - d1["latency_us"]["p99"]) / 1000,
        "rps": gc["rps"],
        "cpu_pct_c32": gc.get("cpu_pct"),
    }


def messages_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What ccgate's /metrics counted on /v1/messages in between, by status."""
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def load_checks(lanes: list[dict[str, Any]], messages: dict[str, float]) -> dict[str, Any]:
    """wrk's counters for ccgate and direct, and what ccgate's /metrics counted meanwhile."""
    gateway = [ln for ln in lanes if ln["target"] == "ccgate"]
    return {
        "ccgate_requests": sum(ln["requests"] for ln in gateway),
        "ccgate_errors": sum(ln["error_total"] for ln in gateway),
        "direct_errors": sum(ln["error_total"] for ln in lanes if ln["target"] == "direct"),
        "metrics_messages_by_status": messages,
    }


def target(key: str, issue: int, desc: str, limit: float, unit: str, higher: bool,
           measured: float) -> dict[str, Any]:
    """One target of an issue, met or not."""
    ok = measured >= limit if higher else measured <= limit
    return {"key": key, "issue": issue, "target": desc, "limit": limit, "unit": unit,
            "op": ">=" if higher else "<=", "measured": measured, "pass": ok}
