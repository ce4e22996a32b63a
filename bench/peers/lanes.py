"""The lanes every gateway runs, each next to its own direct baseline in alternating rounds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import answers, wrk
from bench.checks import check_stream_answer
from bench.common import BenchError
from bench.gateway import UPSTREAM_KEY
from bench.lanes import WrkTarget, alternate, warm
from bench.nginx import Nginx
from bench.options import Options
from bench.peers.instance import Instance
from bench.stream_client import Client
from bench.stream_lanes import StreamTarget, anthropic_check, direct_check, stream_lane
from bench.stream_upstream import StreamUpstream
from bench.workload import (
    ANTHROPIC_HEADERS,
    OAI_HEADERS,
    Request,
    TranslatedRequest,
    anthropic_body,
)

ANTH_DIRECT = {**ANTHROPIC_HEADERS, "x-api-key": UPSTREAM_KEY}


@dataclass
class Lane:
    key: str  # e.g. "pt-small"
    mode: str  # "pt" | "tr"
    request: str  # small | large | burst | paced
    route: str
    body: bytes  # Anthropic body (model replaced per peer)
    headers: dict[str, str]
    stream: bool
    text: str | None
    direct_url: str
    direct_path: str
    direct_headers: dict[str, str]
    direct_body: bytes
    conns: tuple[int, ...] = (1, 32)

    @property
    def measured_by_wrk(self) -> bool:
        """Request lanes (wrk) go under "lanes" in the results, stream lanes under "streams"."""
        return self.request in ("small", "large")


def make_lanes(large: Request, treqs: dict[str, TranslatedRequest], nginx: Nginx,
               su: StreamUpstream, sweep: tuple[int, ...]) -> list[Lane]:
    """Passthrough lanes go direct to the same upstream path; translated ones send the OpenAI
    body ccgate sent upstream (recorded by bench/translated.py)."""
    ls = large.stream
    small, stream_small = anthropic_body("x"), anthropic_body("x", True)
    anth, text, long_text = ANTHROPIC_HEADERS, answers.TEXT, answers.LONG_TEXT
    return [
        Lane("pt-small", "pt", "small", "pt-json", small, dict(anth), False, text,
             nginx.url, "/v1/messages", ANTH_DIRECT, small),
        Lane("pt-large", "pt", "large", "pt-sse" if ls else "pt-json", large.body,
             dict(large.headers), ls, text, nginx.url,
             "/sse/v1/messages" if ls else "/v1/messages",
             {**large.headers, "x-api-key": UPSTREAM_KEY}, large.body, sweep),
        Lane("tr-small", "tr", "small", "tr-json", small, dict(anth), False, text,
             nginx.url, treqs["small"].path, OAI_HEADERS, treqs["small"].direct),
        Lane("tr-large", "tr", "large", "tr-sse" if ls else "tr-json", large.body,
             dict(large.headers), ls, text, nginx.url, treqs["large"].path,
             OAI_HEADERS, treqs["large"].direct, sweep),
        Lane("pt-burst", "pt", "burst", "pt-burst", stream_small, dict(anth), True, long_text,
             nginx.url, "/sse500/v1/messages", ANTH_DIRECT, stream_small),
        Lane("pt-paced", "pt", "paced", "pt-paced", stream_small, dict(anth), True, None,
             su.url, "/paced/v1/messages", ANTH_DIRECT, stream_small),
        Lane("tr-burst", "tr", "burst", "tr-burst", stream_small, dict(anth), True, long_text,
             nginx.url, treqs["burst"].path, OAI_HEADERS, treqs["burst"].direct),
        Lane("tr-paced", "tr", "paced", "tr-paced", stream_small, dict(anth), True, None,
             su.url, treqs["paced"].path, OAI_HEADERS, treqs["paced"].direct),
    ]


def short(text: str, n: int = 200) -> str:
    """An error as the results keep it: one line, the first `n` characters."""
    return " ".join(str(text).split())[:n]


def precheck(inst: Instance, lane: Lane, body: bytes) -> str | None:
    """One request: a 200 and a valid Anthropic answer with the expected text, or the error."""
    try:
        with Client(inst.url, timeout=30) as c:
            t = c.post(inst.path_for(inst.routes_by[lane.route]), inst.headers(lane.headers),
                       body)
    except (OSError, BenchError) as e:
        return short(f"{type(e).__name__}: {e}")
    if t.status != 200:
        return short(f"HTTP {t.status}: {t.body.decode(errors='replace')}")
    problem = check_stream_answer(t.body, lane.stream, lane.text,
                                  long=lane.request in ("burst", "paced"))
    return short(f"invalid Anthropic answer: {problem}") if problem else None


def _slim(r: dict[str, Any]) -> dict[str, Any]:
    return {"rps": r["rps"], "p50_ms": r["latency_us"]["p50"] / 1000,
            "p99_ms": r["latency_us"]["p99"] / 1000, "requests": r["requests"],
            "errors": r["error_total"], "cpu_pct": r.get("cpu_pct"),
            "rounds": r.get("rounds", [])}  # median() kept each round's rps / p50 / p99


def _at(opts: Options, inst: Instance, lane: Lane, targets: list[WrkTarget], conns: int
        ) -> dict[str, Any]:
    """Direct and the gateway at `conns` connections: both medians, what the gateway adds."""
    m = alternate(opts, targets, lane.key, conns, log=False)
    d, g = m["direct"], m["gateway"]
    name = inst.peer.name
    if g["requests"] == 0:
        opts.log(f"  {name:<18} {lane.key:<9} c={conns:<3} nothing completed")
        return {"direct": _slim(d), "error": short(
            f"no request completed in {opts.rounds} x {opts.seconds} s at c={conns} "
            f"(wrk errors: {g['errors']})")}
    opts.log(f"  {name:<18} {lane.key:<9} c={conns:<3} direct "
             f"{d['rps']:>9,.0f} req/s p50 {d['latency_us']['p50'] / 1000:7.3f} ms | gateway "
             f"{g['rps']:>8,.0f} req/s p50 {g['latency_us']['p50'] / 1000:8.3f} ms "
             f"errors {g['error_total']}")
    return {"direct": _slim(d), "gateway": _slim(g),
            "added_p50_ms": (g["latency_us"]["p50"] - d["latency_us"]["p50"]) / 1000,
            "added_p99_ms": (g["latency_us"]["p99"] - d["latency_us"]["p99"]) / 1000}


def wrk_lane(opts: Options, inst: Instance, lane: Lane, body: bytes, workdir: Path
             ) -> dict[str, Any]:
    """A request lane at each of its concurrencies (keyed "1", "32", ...)."""
    tag = f"{inst.peer.name}-{lane.key}"
    targets = [
        WrkTarget("direct", lane.direct_url, wrk.write_request(
            workdir, f"{tag}-direct", lane.direct_body, lane.direct_headers),
            path=lane.direct_path),
        WrkTarget("gateway", inst.url, wrk.write_request(
            workdir, f"{tag}-gw", body, inst.headers(lane.headers)),
            inst.pid, inst.path_for(inst.routes_by[lane.route])),
    ]
    warm(opts, targets[1], conns=min(32, max(lane.conns)))
    return {str(conns): _at(opts, inst, lane, targets, conns) for conns in lane.conns}


def peer_stream_lane(opts: Options, inst: Instance, lane: Lane, body: bytes, per_round: int
                     ) -> dict[str, Any]:
    """A 500-chunk stream lane: direct, then through the gateway."""
    route = inst.routes_by[lane.route]
    su_meta = lane.direct_url if lane.request == "paced" else None
    targets = [
        StreamTarget("direct", lane.direct_url, lane.direct_path, lane.direct_headers,
                     lane.direct_body, direct_check, meta_url=su_meta),
        StreamTarget("gateway", inst.url, inst.path_for(route), inst.headers(lane.headers),
                     body, anthropic_check(lane.text), inst.pid, su_meta),
    ]
    return stream_lane(opts, f"{inst.peer.name} {lane.key}", targets, per_round)
