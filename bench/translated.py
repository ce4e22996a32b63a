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

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import translated_report, wrk
from bench.checks import check_stream_answer
from bench.common import BenchError, http
from bench.floor import Floor
from bench.gateway import CLIENT_TOKEN, TRANSLATED_CONFIG, UPSTREAM_KEY, Ccgate
from bench.lanes import MESSAGES_PATH, WrkTarget, alternate, warm
from bench.nginx import Nginx
from bench.options import Options
from bench.procs import rss_kb
from bench.stream_client import Client, Timed
from bench.stream_lanes import StreamTarget, anthropic_check, direct_check, stream_lane
from bench.stream_upstream import StreamUpstream
from bench.summary import load_checks, messages_delta
from bench.workload import OAI_HEADERS, Request, TranslatedRequest, translated_requests

# The paced lane is one 500-chunk stream per target per round, and one round's added latency
# per chunk moves by ±40 µs with where the scheduler puts the four processes (docs/benchmarks.md,
# "Every lane against the floor, third pass"): its median needs more alternating rounds than a
# wrk lane's. Both sides get the same rounds; about 0.6 s each.
PACED_ROUNDS = 15


def gateway_headers(r: TranslatedRequest) -> dict[str, str]:
    return {**r.headers, "x-api-key": CLIENT_TOKEN}


def check_through(what: str, url: str, r: TranslatedRequest) -> Timed:
    """One request through a gateway: 200 and a valid Anthropic answer with the right text."""
    with Client(url) as c:
        t = c.post(MESSAGES_PATH, gateway_headers(r), r.body)
    if t.status != 200:
        raise BenchError(f"{what}: {r.name} request answered {t.status}: {t.body[:300]!r}")
    problem = check_stream_answer(t.body, r.stream, r.text, r.long)
    if problem:
        raise BenchError(f"{what}: {r.name} answer is not the valid Anthropic "
                         f"{'stream' if r.stream else 'message'} expected: {problem}")
    return t


def record_upstream_bodies(workdir: Path, su: StreamUpstream, reqs: list[TranslatedRequest]) -> None:
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


def _check_direct(nginx: Nginx, su: StreamUpstream, r: TranslatedRequest) -> None:
    url = su.url if r.on_stream_upstream else nginx.url
    with Client(url) as c:
        t = c.post(r.path, OAI_HEADERS, r.direct)
    if t.status != 200:
        raise BenchError(f"direct {r.name}: upstream answered {t.status}: {t.body[:300]!r}")
    if r.expected is not None and t.body != r.expected:
        raise BenchError(f"direct {r.name}: upstream answered {t.body[:200]!r}, "
                         "not the fixed answer")


def _start(stack: ExitStack, workdir: Path, reqs: list[TranslatedRequest], nginx: Nginx
           ) -> tuple[StreamUpstream, Ccgate]:
    """The scripted upstream and the translated ccgate, every answer checked once."""
    su = StreamUpstream(workdir, UPSTREAM_KEY).start()
    stack.callback(su.stop)
    record_upstream_bodies(workdir, su, reqs)
    gw = Ccgate(workdir, nginx.url, name="ccgate-oai", config=TRANSLATED_CONFIG,
                nginx=nginx.url, stream=su.url).start()
    stack.callback(gw.stop)
    status, _ = http("POST", gw.url + "/v1/messages", reqs[0].body, reqs[0].headers)
    if status != 401:
        raise BenchError(f"translated ccgate answered {status} without a client token")
    for r in reqs:
        _check_direct(nginx, su, r)
        check_through("ccgate (translated)", gw.url, r)
    return su, gw


def _request_lanes(opts: Options, workdir: Path, by: dict[str, TranslatedRequest], nginx: Nginx,
                   gw: Ccgate) -> list[dict[str, Any]]:
    """wrk: small and large at c=1 and c=concurrency, the static stream at c=concurrency."""
    lanes: list[dict[str, Any]] = []
    plan = [(by["small"], (1, opts.concurrency)), (by["large"], (1, opts.concurrency)),
            (by["burst"], (opts.concurrency,))]
    for r, conns_list in plan:
        targets = [
            WrkTarget("direct", nginx.url, wrk.write_request(
                workdir, f"oai-{r.name}-direct", r.direct, OAI_HEADERS), path=r.path),
            WrkTarget("ccgate", gw.url, wrk.write_request(
                workdir, f"oai-{r.name}-ccgate", r.body, gateway_headers(r)), gw.pid),
        ]
        for t in targets:
            warm(opts, t)
        for conns in conns_list:
            lanes += alternate(opts, targets, r.name, conns, note=" (oai)").values()
    return lanes


def _stream_lanes(opts: Options, workdir: Path, by: dict[str, TranslatedRequest], nginx: Nginx,
                  su: StreamUpstream, gw: Ccgate) -> dict[str, Any]:
    """The two 500-chunk lanes: direct, the bare floor relay (OpenAI chunks passed on as they
    are: what any relay hop costs per chunk), and ccgate (translating each chunk)."""
    out: dict[str, Any] = {}
    with ExitStack() as floors:
        for name, upstream in (("burst", nginx.url), ("paced", su.url)):
            r = by[name]
            meta = su.url if upstream == su.url else None
            targets = [StreamTarget("direct", upstream, r.path, OAI_HEADERS, r.direct,
                                    direct_check, meta_url=meta)]
            if opts.floor:
                f = Floor(opts.floor[0], upstream, workdir, name=f"{opts.floor[0]}-{name}").start()
                floors.callback(f.stop)
                targets.append(StreamTarget("floor", f.url, r.path, OAI_HEADERS, r.direct,
                                            direct_check, f.pid, meta))
            targets.append(StreamTarget("ccgate", gw.url, MESSAGES_PATH, gateway_headers(r),
                                        r.body, anthropic_check(r.text), gw.pid, meta))
            paced = name == "paced"
            out[name] = stream_lane(opts, name, targets, per_round=(
                1 if paced else 5 if opts.quick else 20),
                rounds=max(opts.rounds, PACED_ROUNDS) if paced and not opts.quick else None)
            if opts.floor:
                out[name]["floor_server"] = opts.floor[0]
    return out


def run(opts: Options, workdir: Path, large: Request, nginx: Nginx) -> dict[str, Any]:
    reqs = translated_requests(large)
    by = {r.name: r for r in reqs}
    out: dict[str, Any] = {}
    with ExitStack() as stack:
        su, gw = _start(stack, workdir, reqs, nginx)
        time.sleep(0.3)
        rss_idle = rss_kb(gw.pid)
        out["requests"] = {r.name: {
            "anthropic_bytes": len(r.body), "openai_bytes": len(r.direct), "stream": r.stream,
            "upstream": ("scripted" if r.on_stream_upstream else "nginx") + " " + r.path,
        } for r in reqs}
        metrics_before = gw.messages_by_status()
        out["lanes"] = lanes = _request_lanes(opts, workdir, by, nginx, gw)
        out["streams"] = _stream_lanes(opts, workdir, by, nginx, su, gw)
        time.sleep(0.3)
        out["rss"] = {"idle": rss_idle, "after_load": rss_kb(gw.pid)}
        if gw.died():
            raise BenchError(f"translated ccgate died during the run: {gw.stderr_tail()}")
        out["checks"] = {
            "valid_anthropic_answers": True,  # every check above passed, or the run failed
            **load_checks(lanes, messages_delta(metrics_before, gw.messages_by_status())),
        }
        out["summary"] = translated_report.summary(out, opts.concurrency)
    return out
