"""The whole peers run: every gateway in turn against the same upstreams; results, plot, docs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report, translated
from bench.answers import MESSAGE_BYTES
from bench.common import REPO, RESULTS, BenchError, or_explain
from bench.gateway import UPSTREAM_KEY
from bench.machine import node_version, wait_for_quiet
from bench.nginx import Nginx
from bench.options import Options
from bench.peers import report as peers_report
from bench.peers.gateways import PEERS, Peer
from bench.peers.install import PEERS_DIR, PINS, tools_python
from bench.peers.instance import Instance
from bench.peers.lanes import Lane, make_lanes, peer_stream_lane, precheck, short, wrk_lane
from bench.peers.memory import memory_lane
from bench.peers.probes import correctness, network_probe
from bench.peers.routes import Route, routes
from bench.peers.targets import targets
from bench.stream_client import Client
from bench.stream_upstream import StreamUpstream
from bench.workload import (
    ANTHROPIC_HEADERS,
    Request,
    anthropic_body,
    large_request,
    translated_requests,
    with_model,
)

PLOT = REPO / "docs" / "bench-peers-latency.png"


@dataclass
class PeerOptions:
    base: Options
    only: tuple[str, ...] = tuple(PEERS)
    sweep: tuple[int, ...] = (1, 8, 32, 64)
    streams_open: int = 200
    install: bool = True
    trace: bool = True
    out: Path = RESULTS / "peers.json"
    plot: Path | None = PLOT


@dataclass
class Setup:
    """What every gateway is measured against: the same upstreams, routes, lanes, request."""

    workdir: Path
    routes: dict[str, Route]
    lanes: list[Lane]
    large: Request
    su: StreamUpstream


# One gateway --------------------------------------------------------------------------------


def _where(lane: Lane) -> str:
    return "lanes" if lane.measured_by_wrk else "streams"


def _per_round(opts: Options, lane: Lane) -> int:
    # Paced streams take ~0.6 s each; three per round (not one) because their per-chunk
    # latency moved by tens of µs between single runs.
    if lane.request == "paced":
        return 1 if opts.quick else 3
    return 3 if opts.quick else 10


def _run_lane(opts: Options, setup: Setup, inst: Instance, lane: Lane, res: dict[str, Any],
              first: bool) -> None:
    """One lane through `inst` into `res`: checked first, its error kept if it fails."""
    name = inst.peer.name
    body = with_model(lane.body, inst.peer.model(setup.routes[lane.route]))
    err = precheck(inst, lane, body)
    if err:
        opts.log(f"  {name:<18} {lane.key:<9} FAILS: {err}")
        res[_where(lane)][lane.key] = {"error": err}
        return
    if first and "idle" not in res["memory"]:  # idle: after its first answered request
        time.sleep(0.5)
        res["memory"]["idle"] = inst.rss()
    try:
        res[_where(lane)][lane.key] = (
            wrk_lane(opts, inst, lane, body, setup.workdir) if lane.measured_by_wrk
            else peer_stream_lane(opts, inst, lane, body, _per_round(opts, lane)))
    except BenchError as e:
        res[_where(lane)][lane.key] = {"error": short(str(e))}
        opts.log(f"  {name:<18} {lane.key:<9} FAILED during the load: {e}")


def _run_instance(po: PeerOptions, setup: Setup, inst: Instance, res: dict[str, Any]) -> None:
    """Every lane, memory lane and correctness probe of the routes `inst` serves."""
    opts, name = po.base, inst.peer.name
    first = len(res["instances"]) == 1
    for lane in setup.lanes:
        if lane.route in inst.routes_by:
            _run_lane(opts, setup, inst, lane, res, first)
    for slow in ("tr-slow", "pt-slow"):
        if slow in inst.routes_by and po.streams_open:
            m = res["memory"][slow] = memory_lane(inst, slow, po.streams_open, opts.quick)
            opts.log(f"  {name:<18} {slow:<9} {m['established']}/{m['requested']} "
                     f"streams open, tree RSS {(m['rss']['tree_vmrss_kb'] or 0) / 1024:.1f}"
                     f" MB ({m['errors']} errors)")
    if "idle" not in res["memory"] and first:
        res["memory"]["idle"] = inst.rss()
    for cc in ("pt-cc", "tr-cc"):
        if cc in inst.routes_by:
            c = res["correctness"][cc] = correctness(inst, setup.routes[cc], setup.large,
                                                     setup.su)
            opts.log(f"  {name:<18} {cc:<9} Claude Code request: "
                     f"{'valid' if c['valid'] else 'INVALID: ' + str(c.get('error'))}")


def run_peer(po: PeerOptions, peer: Peer, setup: Setup) -> dict[str, Any]:
    res: dict[str, Any] = {"name": peer.name, "version": peer.version(), "runtime": peer.runtime,
                           "lanes": {}, "streams": {}, "memory": {}, "correctness": {},
                           "instances": []}
    needed = [r for r in setup.routes.values() if peer.supports(r)]
    for lane in setup.lanes:
        if not peer.supports(setup.routes[lane.route]):
            res[_where(lane)][lane.key] = {
                "unsupported": "no translation" if lane.mode == "tr" else "no passthrough"}
    for group in [needed] if peer.multi_route else [[r] for r in needed]:
        try:
            inst = Instance(peer, setup.workdir, group).start()
        except BenchError as e:  # every lane of these routes fails with the reason
            for lane in setup.lanes:
                if lane.route in {r.name for r in group}:
                    res[_where(lane)][lane.key] = {"error": short(f"did not start: {e}")}
            continue
        res["instances"].append({"routes": sorted(inst.routes_by), "pid": inst.pid,
                                 "startup_s": round(inst.startup_s, 2)})
        try:
            _run_instance(po, setup, inst, res)
        finally:
            inst.stop()
    if po.trace and shutil.which("strace") and peer.name not in ("floor",):
        res["network"] = network_probe(peer, setup.workdir, needed, setup.lanes, setup.routes)
    return res


# The run ------------------------------------------------------------------------------------


def _install(peers: list[Peer], po: PeerOptions) -> None:
    for p in peers:
        if not p.installed():
            if not po.install:
                raise BenchError(f"{p.name} is not installed under {PEERS_DIR} (drop --no-install)")
            p.install(po.base.log)


def _setup(stack: ExitStack, po: PeerOptions, workdir: Path, large: Request) -> Setup:
    """nginx and the scripted upstream, checked; the OpenAI bodies ccgate sends, recorded."""
    nginx = Nginx(workdir, UPSTREAM_KEY).start()
    stack.callback(nginx.stop)
    su = StreamUpstream(workdir, UPSTREAM_KEY, slow_gap=0.5).start()
    stack.callback(su.stop)
    with Client(nginx.url) as c:
        t = c.post("/v1/messages", {**ANTHROPIC_HEADERS, "x-api-key": UPSTREAM_KEY},
                   anthropic_body("x"))
    if t.body != MESSAGE_BYTES:
        raise BenchError(f"nginx does not answer the fixed message: {t.body[:200]!r}")
    treqs = {r.name: r for r in translated_requests(large)}
    translated.record_upstream_bodies(workdir, su, list(treqs.values()))
    return Setup(workdir, routes(nginx.url, su.url),
                 make_lanes(large, treqs, nginx, su, po.sweep), large, su)


def run(po: PeerOptions) -> dict[str, Any]:
    opts = po.base
    started = time.monotonic()
    peers = [PEERS[n]() for n in po.only]
    _install(peers, po)
    results = report.results_header(opts, sweep=list(po.sweep))
    results.update(node=node_version(), pins=PINS, streams_open=po.streams_open)
    with tempfile.TemporaryDirectory(prefix="ccgate-peers-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        large = large_request(opts, workdir)
        results["large"] = {"bytes": len(large.body), "tools": large.tools,
                            "source": large.source}
        results["others_cpu_busy_pct_before"] = wait_for_quiet(opts.wait_quiet, opts.log)
        setup = _setup(stack, po, workdir, large)
        results["peers"] = {}
        for p in peers:
            opts.log(f"{p.name} {p.version()}:")
            results["peers"][p.name] = run_peer(po, p, setup)
    report.finish(results, started)
    results["targets"] = targets(results)
    return results


def make_plot(results_file: Path, png: Path, log: Any) -> bool:
    """Draw the PNG with matplotlib from bench/.peers/tools (never a project dependency)."""
    try:
        py = tools_python(log)
    except BenchError as e:
        log(f"no plot: {e}")
        return False
    out = subprocess.run([str(py), "-m", "bench.plot", str(results_file), str(png)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        log(f"no plot: {out.stderr[-500:]}")
        return False
    return True


def main(po: PeerOptions, docs: bool) -> int:
    results = or_explain(lambda: run(po), "bench peers")
    if results is None:
        return 1
    report.publish(results, peers_report.tables(results), po.out)
    plotted = po.plot is not None and make_plot(po.out, po.plot, po.base.log)
    if plotted:
        print(f"wrote {po.plot}")
    if docs:
        rel = os.path.relpath(po.plot, report.DOCS.parent) if plotted and po.plot else None
        peers_report.SECTION.update(peers_report.docs_section(results, rel))
    return 0
