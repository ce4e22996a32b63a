"""One-off probes of a gateway: the captured Claude Code request, and where it connects."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from bench.answers import TEXT
from bench.checks import check_anthropic
from bench.common import BenchError
from bench.peers.gateways import Peer
from bench.peers.instance import Instance
from bench.peers.lanes import Lane, precheck, short
from bench.peers.routes import Route
from bench.stream_client import Client
from bench.stream_upstream import StreamUpstream
from bench.workload import Request, with_model


def _upstream_view(sent: bytes, body: bytes, route: Route) -> dict[str, Any]:
    """What the scripted upstream got: its size, how many tools, whether it is our body."""
    out: dict[str, Any] = {"upstream_body_bytes": len(sent)}
    with contextlib.suppress(ValueError):
        out["tools_forwarded"] = len(json.loads(sent).get("tools") or [])
    if route.protocol == "anthropic":
        out["byte_exact"] = sent == body
    return out


def correctness(inst: Instance, route: Route, large: Request, su: StreamUpstream
                ) -> dict[str, Any]:
    """The captured Claude Code request once, against the scripted upstream answering validly."""
    body = with_model(large.body, inst.peer.model(route))
    stream = bool(json.loads(body).get("stream"))
    try:
        with Client(inst.url, timeout=60) as c:
            t = c.post(inst.path_for(route), inst.headers(dict(large.headers)), body)
    except (OSError, BenchError) as e:
        return {"valid": False, "error": short(f"{type(e).__name__}: {e}")}
    out: dict[str, Any] = {"status": t.status}
    if t.status != 200:
        out.update(valid=False, error=short(f"HTTP {t.status}: "
                                            f"{t.body.decode(errors='replace')}"))
        return out
    problem = check_anthropic(t.body, stream, TEXT)
    out.update(valid=problem is None, error=problem and short(problem))
    sent = su.last(route.upstream_path)
    if sent:
        out.update(_upstream_view(sent, body, route))
    return out


def network_probe(peer: Peer, workdir: Path, needed: list[Route], lanes: list[Lane],
                  all_routes: dict[str, Route]) -> dict[str, Any]:
    """Start the peer once more under strace, send one request per lane, list connect()s."""
    group = needed if peer.multi_route else needed[:1]
    inst = Instance(peer, workdir, group, trace=True)
    try:
        inst.start()
        for lane in lanes:
            if lane.route in inst.routes_by and lane.measured_by_wrk:
                precheck(inst, lane, with_model(lane.body, peer.model(all_routes[lane.route])))
        time.sleep(1.0)
    except BenchError as e:
        return {"error": short(str(e))}
    finally:
        inst.stop()
    return {"traced": True, "non_loopback_connects": inst.non_loopback_connects()}
