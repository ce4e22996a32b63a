"""Translation lanes (issue 4): Anthropic in, OpenAI Chat Completions out, Anthropic back.

ccgate runs a second time with four `kind: openai-compatible` providers (no preset, default
quirks), chosen by the request's model:

  request  model         provider     upstream answer
  small    bench-json    oai-json     nginx /v1/chat/completions: fixed chat.completion JSON
  large    (Claude Code) oai-sse      nginx /sse/v1/...: the same answer as a 5-chunk stream
                                      (the captured body asks stream:true, as the CLI does)
  burst    bench-sse500  oai-sse500   nginx /sse500/v1/...: 500 text chunks, finish, usage,
                                      [DONE] as one static body (arrives in ~1 TCP read)
  paced    bench-paced   oai-paced    bench/stream_upstream.py: the same 500 chunks, each its
                                      own write ~1 ms apart (one read per chunk)

"Direct" sends the upstream the very OpenAI body ccgate sends it: before the load the bench
runs the same config once against the scripted upstream, which records each body.

Lanes: wrk c=1 (latency) and c=32 (req/s) for small and large, direct vs ccgate; wrk c=32
streams/s for burst; and a precise streaming client (bench/stream_client.py) at c=1 for burst
and paced: TTFB, time to the first text chunk, total, and for paced each chunk's latency.
Per-chunk overhead (burst) = (ccgate total - direct total - ccgate TTFB overhead) / 500.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import streams, wrk
from bench.common import BenchError, http, rss_kb
from bench.gateway import CLIENT_TOKEN, TRANSLATED_CONFIG, UPSTREAM_KEY, Ccgate, metric_counts
from bench.lanes import MESSAGES_PATH, Floor, Options, Request, cpu_ticks, lane, median, warm
from bench.stream_client import Client, Timed
from bench.stream_upstream import StreamUpstream
from bench.upstream import Nginx

ANTHROPIC_HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
OAI_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {UPSTREAM_KEY}"}


def _body(model: str, stream: bool) -> bytes:
    b: dict[str, Any] = {"model": model, "max_tokens": 1024,
                         "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        b["stream"] = True
    return json.dumps(b, separators=(",", ":")).encode()


@dataclass
class TReq:
    name: str
    body: bytes  # the Anthropic request sent to ccgate
    headers: dict[str, str]
    path: str  # where ccgate sends it upstream (same path on nginx and the scripted upstream)
    on_stream_upstream: bool  # served by bench/stream_upstream.py, not nginx
    stream: bool
    text: str | None  # the answer's text (None: paced markers carry timestamps)
    direct: bytes = b""  # the OpenAI body ccgate sent upstream (recorded)
    expected: bytes | None = None  # the upstream's fixed answer


def requests(large: Request) -> list[TReq]:
    large_stream = bool(json.loads(large.body).get("stream"))
    return [
        TReq("small", _body("bench-json", False), dict(ANTHROPIC_HEADERS),
             "/v1/chat/completions", False, False, streams.TEXT,
             expected=streams.CHAT_COMPLETION_BYTES),
        TReq("large", large.body, dict(large.headers),
             "/sse/v1/chat/completions" if large_stream else "/v1/chat/completions", False,
             large_stream, streams.TEXT,
             expected=streams.OAI_SHORT_SSE if large_stream else streams.CHAT_COMPLETION_BYTES),
        TReq("burst", _body("bench-sse500", True), dict(ANTHROPIC_HEADERS),
             "/sse500/v1/chat/completions", False, True, streams.LONG_TEXT,
             expected=streams.OAI_LONG_SSE),
        TReq("paced", _body("bench-paced", True), dict(ANTHROPIC_HEADERS),
             "/paced/v1/chat/completions", True, True, None),
    ]


def _gw_headers(r: TReq) -> dict[str, str]:
    return {**r.headers, "x-api-key": CLIENT_TOKEN}


def check_through(what: str, url: str, r: TReq) -> Timed:
    """One request through a gateway: 200 and a valid Anthropic answer with the right text."""
    with Client(url) as c:
        t = c.post(MESSAGES_PATH, _gw_headers(r), r.body)
    if t.status != 200:
        raise BenchError(f"{what}: {r.name} request answered {t.status}: {t.body[:300]!r}")
    problem = streams.check_anthropic(t.body, r.stream, r.text)
    if problem is None and r.name in ("burst", "paced"):
        problem = streams.markers_in_order(t.body)
    if problem:
        raise BenchError(f"{what}: {r.name} answer is not the valid Anthropic "
                         f"{'stream' if r.stream else 'message'} expected: {problem}")
    return t


def record_upstream_bodies(workdir: Path, su: StreamUpstream, reqs: list[TReq]) -> None:
    """Run the translated config once against the scripted upstream and keep what it got."""
    rec = Ccgate(workdir, su.url, name="ccgate-oai-record", config=TRANSLATED_CONFIG,
                 nginx=su.url, stream=su.url).start()
    try:
        for r in reqs:
            check_through("ccgate (translated, scripted upstream)", rec.url, r)
            body = su.last(r.path)
            if not body:
                raise BenchError(f"the scripted upstream got no body on {r.path}")
            r.direct = body
    finally:
        rec.stop()


def _check_direct(nginx: Nginx, su: StreamUpstream, r: TReq) -> None:
    url = su.url if r.on_stream_upstream else nginx.url
    with Client(url) as c:
        t = c.post(r.path, OAI_HEADERS, r.direct)
    if t.status != 200:
        raise BenchError(f"direct {r.name}: upstream answered {t.status}: {t.body[:300]!r}")
    if r.expected is not None and t.body != r.expected:
        raise BenchError(f"direct {r.name}: upstream answered {t.body[:200]!r}, "
                         "not the fixed answer")


# Streams measured with the precise client -----------------------------------------------


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(q / 100 * (len(v) - 1)))]


def _stream_round(client: Client, path: str, headers: dict[str, str], body: bytes, n: int,
                  check: Any, meta_url: str | None = None) -> dict[str, Any]:
    runs: list[Timed] = []
    forwarded: list[float] = []
    for _ in range(n):
        t = client.post(path, headers, body)
        runs.append(t)
        if meta_url:  # when the request was complete at the scripted upstream
            status, raw = http("GET", meta_url + "/__meta")
            if status == 200:
                forwarded.append((json.loads(raw)["received_ns"] - t.t_sent) / 1000)
    problems = [p for p in (check(t) for t in runs) if p]
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


@dataclass
class StreamTarget:
    """One side of a stream lane: where to POST what, and how to judge the answer."""

    label: str
    url: str
    path: str
    headers: dict[str, str]
    body: bytes
    check: Any  # Timed -> problem or None
    pid: int | None = None
    meta_url: str | None = None  # the scripted upstream behind it: ask when the request arrived


def direct_check(t: Timed) -> str | None:
    if t.status != 200:
        return f"answered {t.status}: {t.body[:200]!r}"
    return streams.markers_in_order(t.body)


def anthropic_check(text: str | None) -> Any:
    def check(t: Timed) -> str | None:
        if t.status != 200:
            return f"answered {t.status}: {t.body[:200]!r}"
        return streams.check_anthropic_sse(t.body, text) or streams.markers_in_order(t.body)
    return check


def stream_lane(opts: Options, name: str, targets: list[StreamTarget], per_round: int,
                rounds: int | None = None) -> dict[str, Any]:
    """Alternate rounds of `per_round` streams on each target (the first is "direct").

    Per round and target: medians of TTFB, time to the first chunk, total, and the chunk
    latency percentiles (paced streams). Added = target - direct in the same round;
    per-chunk overhead = (added total - added TTFB) / chunks. Lane values: medians of rounds.
    """
    rounds = rounds or opts.rounds
    hz = os.sysconf("SC_CLK_TCK")
    per_round_results: list[dict[str, Any]] = []
    ticks = {t.label: 0 for t in targets}
    clients = {t.label: Client(t.url) for t in targets}
    try:
        for t in targets:  # warm each connection and path once
            _stream_round(clients[t.label], t.path, t.headers, t.body, 1, t.check, t.meta_url)
        for _ in range(rounds):
            rd: dict[str, Any] = {}
            for t in targets:
                t0 = cpu_ticks(t.pid) if t.pid else 0
                rd[t.label] = _stream_round(clients[t.label], t.path, t.headers, t.body,
                                            per_round, t.check, t.meta_url)
                if t.pid:
                    ticks[t.label] += cpu_ticks(t.pid) - t0
            d = rd[targets[0].label]
            added: dict[str, Any] = {}
            for t in targets[1:]:
                g = rd[t.label]
                a = {k: g[k] - d[k] for k in ("ttfb_us", "ttft_us", "total_us")}
                a["per_chunk_us"] = (a["total_us"] - a["ttfb_us"]) / streams.N_CHUNKS
                if d["request_at_upstream_us"] is not None and \
                        g["request_at_upstream_us"] is not None:
                    a["request_forwarding_us"] = (g["request_at_upstream_us"]
                                                  - d["request_at_upstream_us"])
                if d["chunk_latency_us"] and g["chunk_latency_us"]:
                    for q in ("p50", "p90", "p99"):
                        a[f"chunk_latency_{q}_us"] = (g["chunk_latency_us"][q]
                                                      - d["chunk_latency_us"][q])
                added[t.label] = a
            per_round_results.append({"targets": rd, "added": added})
            opts.log(f"  stream {name:<14} direct total {d['total_us'] / 1000:8.2f} ms | " +
                     " | ".join(
                         f"{lb} +ttfb {a['ttfb_us']:7.1f} us +{a['per_chunk_us']:6.2f} us/chunk"
                         + (f" +{a['chunk_latency_p50_us']:.1f} us/chunk latency"
                            if "chunk_latency_p50_us" in a else "")
                         for lb, a in added.items()))
    finally:
        for c in clients.values():
            c.close()
    out: dict[str, Any] = {"lane": name, "chunks": streams.N_CHUNKS,
                           "streams_per_round": per_round, "rounds": per_round_results,
                           "targets": {}, "added": {}}
    n_chunks = rounds * per_round * streams.N_CHUNKS
    for t in targets:
        rs = [r["targets"][t.label] for r in per_round_results]
        side: dict[str, Any] = {k: statistics.median(r[k] for r in rs)
                                for k in ("ttfb_us", "ttft_us", "total_us", "reads")}
        if all(r["request_at_upstream_us"] is not None for r in rs):
            side["request_at_upstream_us"] = statistics.median(
                r["request_at_upstream_us"] for r in rs)
        lat = [r["chunk_latency_us"] for r in rs if r["chunk_latency_us"]]
        if lat:
            side["chunk_latency_us"] = {q: statistics.median(x[q] for x in lat)
                                        for q in ("p50", "p90", "p99")}
        if t.pid:
            side["cpu_us_per_chunk"] = 1e6 * ticks[t.label] / hz / n_chunks
        out["targets"][t.label] = side
        if t is not targets[0]:
            out["added"][t.label] = {
                k: statistics.median(r["added"][t.label][k] for r in per_round_results)
                for k in per_round_results[0]["added"][t.label]}
    return out


# The whole translated part of a run --------------------------------------------------------


def _streams(opts: Options, workdir: Path, by: dict[str, TReq], nginx: Nginx,
             su: StreamUpstream, gw: Ccgate) -> dict[str, Any]:
    """The two 500-chunk lanes: direct, the bare floor relay (OpenAI chunks passed on as they
    are: what any relay hop costs per chunk), and ccgate (translating each chunk)."""
    floors: list[Floor] = []
    out: dict[str, Any] = {}
    try:
        for name, upstream in (("burst", nginx.url), ("paced", su.url)):
            r = by[name]
            meta = su.url if upstream == su.url else None
            targets = [StreamTarget("direct", upstream, r.path, OAI_HEADERS, r.direct,
                                    direct_check, meta_url=meta)]
            if opts.floor:
                f = Floor(opts.floor[0], upstream, workdir, name=f"{opts.floor[0]}-{name}")
                floors.append(f)
                targets.append(StreamTarget("floor", f.url, r.path, OAI_HEADERS, r.direct,
                                            direct_check, f.pid, meta))
            targets.append(StreamTarget("ccgate", gw.url, MESSAGES_PATH, _gw_headers(r),
                                        r.body, anthropic_check(r.text), gw.pid, meta))
            out[name] = stream_lane(opts, name, targets, per_round=(
                1 if name == "paced" else 5 if opts.quick else 20))
            if opts.floor:
                out[name]["floor_server"] = opts.floor[0]
    finally:
        for f in floors:
            f.stop()
    return out



def run(opts: Options, workdir: Path, large: Request, nginx: Nginx) -> dict[str, Any]:
    reqs = requests(large)
    by = {r.name: r for r in reqs}
    su = StreamUpstream(workdir, UPSTREAM_KEY).start()
    gw: Ccgate | None = None
    out: dict[str, Any] = {}
    try:
        record_upstream_bodies(workdir, su, reqs)
        gw = Ccgate(workdir, nginx.url, name="ccgate-oai", config=TRANSLATED_CONFIG,
                    nginx=nginx.url, stream=su.url).start()
        status, _ = http("POST", gw.url + "/v1/messages", reqs[0].body, reqs[0].headers)
        if status != 401:
            raise BenchError(f"translated ccgate answered {status} without a client token")
        for r in reqs:
            _check_direct(nginx, su, r)
            check_through("ccgate (translated)", gw.url, r)
        time.sleep(0.3)
        rss_idle = rss_kb(gw.pid)
        out["requests"] = {r.name: {
            "anthropic_bytes": len(r.body), "openai_bytes": len(r.direct), "stream": r.stream,
            "upstream": ("scripted" if r.on_stream_upstream else "nginx") + " " + r.path,
        } for r in reqs}
        files: dict[tuple[str, str], Path] = {}
        for r in reqs:
            files[(r.name, "direct")] = wrk.write_request(workdir, f"oai-{r.name}-direct",
                                                          r.direct, OAI_HEADERS)
            files[(r.name, "ccgate")] = wrk.write_request(workdir, f"oai-{r.name}-ccgate",
                                                          r.body, _gw_headers(r))
        metrics_before = gw.metrics()
        lanes: list[dict[str, Any]] = []
        plan = [(by["small"], (1, opts.concurrency)), (by["large"], (1, opts.concurrency)),
                (by["burst"], (opts.concurrency,))]
        for r, conns_list in plan:
            targets = [("direct", nginx.url, files[(r.name, "direct")], None, r.path),
                       ("ccgate", gw.url, files[(r.name, "ccgate")], gw.pid, MESSAGES_PATH)]
            for _label, url, f, _pid, path in targets:
                warm(opts, url, f, path=path)
            for conns in conns_list:
                runs: dict[str, list[dict[str, Any]]] = {t[0]: [] for t in targets}
                for _ in range(opts.rounds):
                    for label, url, f, pid, path in targets:
                        runs[label].append(lane(opts, f"{label} (oai)", url, f, r.name, conns,
                                                pid=pid, path=path))
                for label, v in runs.items():
                    m = median(v)
                    m["target"] = label
                    lanes.append(m)
        out["lanes"] = lanes
        out["streams"] = _streams(opts, workdir, by, nginx, su, gw)
        time.sleep(0.3)
        out["rss"] = {"idle": rss_idle, "after_load": rss_kb(gw.pid)}
        if gw.proc is not None and gw.proc.poll() is not None:
            raise BenchError(f"translated ccgate died during the run: {gw.stderr_tail()}")
        before, after = metric_counts(metrics_before), metric_counts(gw.metrics())
        gw_lanes = [ln for ln in lanes if ln["target"] == "ccgate"]
        out["checks"] = {
            "valid_anthropic_answers": True,  # every check above passed, or the run failed
            "ccgate_requests": sum(ln["requests"] for ln in gw_lanes),
            "ccgate_errors": sum(ln["error_total"] for ln in gw_lanes),
            "direct_errors": sum(ln["error_total"] for ln in lanes if ln["target"] == "direct"),
            "metrics_messages_by_status": {k: v - before.get(k, 0.0) for k, v in after.items()
                                           if v - before.get(k, 0.0) > 0},
        }
        out["summary"] = summary(out, opts.concurrency)
    finally:
        if gw is not None:
            gw.stop()
        su.stop()
    return out


def _find(lanes: list[dict[str, Any]], target: str, req: str, conns: int) -> dict[str, Any]:
    for ln in lanes:
        if ln["target"] == target and ln["request"] == req and ln["connections"] == conns:
            return ln
    raise KeyError((target, req, conns))


def summary(t: dict[str, Any], c: int) -> dict[str, Any]:
    lanes = t["lanes"]
    out: dict[str, Any] = {}
    for req in ("small", "large"):
        d1, dc = _find(lanes, "direct", req, 1), _find(lanes, "direct", req, c)
        g1, gc = _find(lanes, "ccgate", req, 1), _find(lanes, "ccgate", req, c)
        out[req] = {
            "direct": {"p50_ms": d1["latency_us"]["p50"] / 1000,
                       "p99_ms": d1["latency_us"]["p99"] / 1000, "rps": dc["rps"]},
            "ccgate": {"p50_ms": g1["latency_us"]["p50"] / 1000,
                       "p99_ms": g1["latency_us"]["p99"] / 1000,
                       "added_p50_ms": (g1["latency_us"]["p50"] - d1["latency_us"]["p50"]) / 1000,
                       "added_p99_ms": (g1["latency_us"]["p99"] - d1["latency_us"]["p99"]) / 1000,
                       "rps": gc["rps"], "cpu_pct_c32": gc.get("cpu_pct")},
        }
    db, gb = _find(lanes, "direct", "burst", c), _find(lanes, "ccgate", "burst", c)
    out["burst_c32"] = {"direct_streams_per_s": db["rps"], "ccgate_streams_per_s": gb["rps"],
                        "ccgate_chunks_per_s": gb["rps"] * streams.N_CHUNKS,
                        "ccgate_cpu_pct": gb.get("cpu_pct")}
    return out


TARGETS = [
    ("added_p50_small_oai_ms", "translated: added p50 latency, small request, c=1", 1.0, "ms"),
    ("per_chunk_burst_us", "translated: per-chunk overhead, 500-chunk stream, median", 50.0,
     "us"),
    ("chunk_latency_paced_us", "translated: added latency of each chunk, paced 500-chunk "
     "stream (one read per chunk), median (same limit, applied to the honest variant)", 50.0,
     "us"),
]


def targets(t: dict[str, Any]) -> list[dict[str, Any]]:
    st = t["streams"]
    measured = {
        "added_p50_small_oai_ms": t["summary"]["small"]["ccgate"]["added_p50_ms"],
        "per_chunk_burst_us": st["burst"]["added"]["ccgate"]["per_chunk_us"],
        "chunk_latency_paced_us": st["paced"]["added"]["ccgate"].get(
            "chunk_latency_p50_us", float("nan")),
    }
    return [{"key": k, "issue": 4, "target": desc, "limit": limit, "unit": unit, "op": "<=",
             "measured": measured[k], "pass": measured[k] <= limit}
            for k, desc, limit, unit in TARGETS]


# Rendering ---------------------------------------------------------------------------------


def tables(t: dict[str, Any], c: int) -> str:
    s = t["summary"]
    reqs = t["requests"]
    lines = [
        "Translated (Anthropic in, OpenAI Chat Completions to nginx, Anthropic back); direct = "
        "the same OpenAI body straight to nginx:",
        "",
        f"| request | Anthropic body → OpenAI body | c=1 p50 direct | c=1 p50 ccgate "
        f"| **added p50** | c=1 p99 direct | c=1 p99 ccgate | added p99 | c={c} req/s direct "
        f"| **c={c} req/s ccgate** |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for req, title in (("small", "small, JSON answer"),
                       ("large", "Claude Code, 5-chunk stream answer"
                        if reqs["large"]["stream"] else "Claude Code, JSON answer")):
        d, g = s[req]["direct"], s[req]["ccgate"]
        lines.append(
            f"| {title} | {reqs[req]['anthropic_bytes'] / 1024:.1f} → "
            f"{reqs[req]['openai_bytes'] / 1024:.1f} KiB | {d['p50_ms']:.3f} ms "
            f"| {g['p50_ms']:.3f} ms | **{g['added_p50_ms']:.3f} ms** | {d['p99_ms']:.3f} ms "
            f"| {g['p99_ms']:.3f} ms | {g['added_p99_ms']:.3f} ms | {d['rps']:,.0f} "
            f"| **{g['rps']:,.0f}** |")
    b, p = t["streams"]["burst"], t["streams"]["paced"]
    bc = s["burst_c32"]
    lines += [
        "",
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
            a = x["added"].get(who)
            name = {"direct": "direct", "ccgate": "**ccgate**"}.get(
                who, f"floor ({x.get('floor_server', '?')} + aiohttp)")
            if a is None:
                cl = side.get("chunk_latency_us")
                lat = (f"p50 {cl['p50']:.1f} / p99 {cl['p99']:.1f} µs (loopback + client)"
                       if cl else "—")
                lines.append(f"| {label} | {name} | {side['ttfb_us']:.0f} µs | | "
                             f"| {side['total_us'] / 1000:.2f} ms | | {lat} | |")
                continue
            lat = (f"{a['chunk_latency_p50_us']:.1f} / {a['chunk_latency_p99_us']:.1f} µs"
                   if "chunk_latency_p50_us" in a else "—")
            cpu = (f"{side['cpu_us_per_chunk']:.1f} µs" if "cpu_us_per_chunk" in side else "")
            # Paced: the total is set by the upstream's pauses and a gateway's work per chunk
            # hides in them, so (added total - added TTFB) / 500 is noise; the latency is the
            # measure there.
            per = (f"**{a['per_chunk_us']:.2f} µs**" if "chunk_latency_p50_us" not in a
                   else f"({a['per_chunk_us']:.1f} µs)")
            lines.append(
                f"| {label} | {name} | {side['ttfb_us']:.0f} µs | **{a['ttfb_us']:.0f} µs** "
                f"| {a['ttft_us']:.0f} µs | {side['total_us'] / 1000:.2f} ms "
                f"| {per} | {lat} | {cpu} |")
    lines += [
        "",
        f"Static 500-chunk stream at c={c}: {bc['direct_streams_per_s']:,.0f} streams/s direct, "
        f"**{bc['ccgate_streams_per_s']:,.0f} streams/s** through ccgate "
        f"({bc['ccgate_chunks_per_s']:,.0f} chunks/s translated"
        + (f", ccgate CPU {bc['ccgate_cpu_pct']:.0f}%" if bc.get("ccgate_cpu_pct") else "")
        + ").",
        f"Translated ccgate RSS: {t['rss']['idle']['vmrss_kb'] / 1024:.1f} MB idle, "
        f"{t['rss']['after_load']['vmrss_kb'] / 1024:.1f} MB after the load.",
    ]
    return "\n".join(lines)
