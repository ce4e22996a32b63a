"""Issue 7's targets, from the peers results: ccgate ahead of each peer, and by how much."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

C = "32"  # the throughput lanes' concurrency, as keyed in the results
REQUEST_LANES = ("pt-small", "pt-large", "tr-small", "tr-large")
STREAM_LANES = ("pt-burst", "tr-burst", "pt-paced", "tr-paced")


def usable(res: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """A gateway's lane `key`, if it ran (not failed, not unsupported)."""
    if res is None:
        return None
    x = res["lanes"].get(key) or res["streams"].get(key)
    return x if x and "error" not in x and "unsupported" not in x else None


def _target(desc: str, ok: bool | None, measured: str) -> dict[str, Any]:
    """ok None: could not be judged (nothing to compare)."""
    return {"target": desc, "pass": ok, "measured": measured}


@dataclass
class Score:
    """ccgate against one peer, lane by lane."""

    wins: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def count(self, what: str, ccgate_better: bool) -> None:
        (self.wins if ccgate_better else self.losses).append(what)

    def pairs(self, cc: dict[str, Any], p: dict[str, Any], keys: tuple[str, ...]
              ) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(key, ccgate's lane, the peer's lane) where both ran; the others are missing."""
        for key in keys:
            a, b = usable(cc, key), usable(p, key)
            if a is None or b is None:
                self.missing.append(key)
            else:
                yield key, a, b


def _score_requests(cc: dict[str, Any], p: dict[str, Any], score: Score) -> None:
    """c=1: lower added p50 wins; c=32: more req/s wins; a peer completing nothing loses."""
    for key, a, b in score.pairs(cc, p, REQUEST_LANES):
        for conns in ("1", C):
            if "error" in a.get(conns, {"error": 1}):
                score.missing.append(f"ccgate {key} c={conns}")
            elif "error" in b.get(conns, {"error": 1}):  # nothing completed: ccgate ahead
                score.wins.append(f"{key} c={conns}")
            elif conns == "1":
                score.count(f"{key} c={conns}", a[conns]["added_p50_ms"] < b[conns]["added_p50_ms"])
            else:
                score.count(f"{key} c={conns}",
                            a[conns]["gateway"]["rps"] > b[conns]["gateway"]["rps"])


def _score_streams(cc: dict[str, Any], p: dict[str, Any], score: Score) -> None:
    """Lower added TTFB wins, and lower cost per chunk (paced: added latency per chunk)."""
    for key, a, b in score.pairs(cc, p, STREAM_LANES):
        fa, fb = a["added"]["gateway"], b["added"]["gateway"]
        metric = "chunk_latency_p50_us" if key.endswith("paced") else "per_chunk_us"
        score.count(f"{key} TTFB", fa["ttfb_us"] < fb["ttfb_us"])
        if metric in fa and metric in fb:
            score.count(f"{key} per chunk", fa[metric] < fb[metric])


def _ahead_of(name: str, cc: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    score = Score()
    _score_requests(cc, p, score)
    _score_streams(cc, p, score)
    m_a, m_b = cc["memory"].get("idle"), p["memory"].get("idle")
    if m_a and m_b:
        score.count("idle RSS", m_a["tree_vmrss_kb"] < m_b["tree_vmrss_kb"])
    return _target(
        f"ccgate ahead of {name} on every lane", not score.losses if score.wins else None,
        f"ahead on {len(score.wins)}, behind on {len(score.losses)}"
        + (f" ({', '.join(score.losses)})" if score.losses else "")
        + (f"; {name} failed/missing: {', '.join(score.missing)}" if score.missing else ""))


def _against_litellm(cc: dict[str, Any], ll: dict[str, Any] | None) -> list[dict[str, Any]]:
    """>= 10x LiteLLM's req/s and <= 1/10 of its added p50, Claude Code request, both modes."""
    out: list[dict[str, Any]] = []
    for key, title in (("tr-large", "translated"), ("pt-large", "passthrough")):
        a, b = usable(cc, key), usable(ll, key)
        if a is None or b is None:
            out += [_target(f">= 10x LiteLLM req/s, Claude Code request, {title}", None,
                            "not measured"),
                    _target(f"<= 1/10 of LiteLLM added p50, Claude Code request, {title}", None,
                            "not measured")]
            continue
        ga = a[C].get("gateway", {}).get("rps", 0.0)
        gb = b[C].get("gateway", {}).get("rps", 0.0)
        desc = f">= 10x LiteLLM req/s, Claude Code request, {title}, c={C}"
        if ga and gb:
            out.append(_target(desc, ga / gb >= 10, f"{ga / gb:.1f}x ({ga:,.0f} vs {gb:,.0f})"))
        else:
            out.append(_target(desc, bool(ga) if ga or gb else None,
                               f"{ga:,.0f} vs {gb:,.0f} (0 = none completed)"))
        if "error" in a["1"] or "error" in b["1"]:
            continue
        fa, fb = a["1"]["added_p50_ms"], b["1"]["added_p50_ms"]
        out.append(_target(f"<= 1/10 of LiteLLM added p50, Claude Code request, {title}, c=1",
                           fa <= fb / 10, f"{fa:.3f} ms vs {fb:.3f} ms (1/{fb / fa:.1f})"
                           if fa > 0 else f"{fa:.3f} ms vs {fb:.3f} ms"))
    return out


def _against_floor(cc: dict[str, Any], fl: dict[str, Any] | None) -> list[dict[str, Any]]:
    """ccgate's added p50 within 1.5x of the bare relay's."""
    out: list[dict[str, Any]] = []
    for key in ("pt-small", "pt-large"):
        a, b = usable(cc, key), usable(fl, key)
        if a is None or b is None or "error" in a["1"] or "error" in b["1"]:
            continue
        fa, fb = a["1"]["added_p50_ms"], b["1"]["added_p50_ms"]
        out.append(_target(f"ccgate added p50 within 1.5x of the bare relay floor, {key}, c=1",
                           fa <= 1.5 * fb, f"{fa:.3f} ms vs {fb:.3f} ms ({fa / fb:.2f}x)"
                           if fb > 0 else f"{fa:.3f} ms vs {fb:.3f} ms"))
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    peers = results.get("peers", {})
    cc = peers.get("ccgate")
    if not cc:
        return []
    out = [_ahead_of(name, cc, p) for name, p in peers.items() if name not in ("ccgate", "floor")]
    return out + _against_litellm(cc, peers.get("litellm")) + _against_floor(cc, peers.get("floor"))
