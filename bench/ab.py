"""A/B of several ccgate trees (or configs) in the same alternating rounds, against the floor.

`bench cost --baseline DIR` compares one old tree with this one on the passthrough config; this
compares any number of sides, each `LABEL=VARIANT[:ENV=V,...][@SRC]`: a `bench cost` variant
(`full`, `bare`, ...) or `translated` (the translated lanes' config, the request's model set to
the JSON or the 5-chunk stream route), optional environment, and the `src/` of the ccgate to run
(a `git archive <commit> src` export; default this checkout). Per side: median req/s, CPU per
request (utime + stime from /proc over the round / requests) and wrk's p50, each × the floor's
of the same rounds, plus the median of the per-round CPU ratios ("paired").

    .venv/bin/python -m bench.ab --request small --concurrency 32 --rounds 5 \\
        old=full@/tmp/perf/t0/src new=full@/tmp/perf/t1/src
    .venv/bin/python -m bench.ab --request large old=translated@/tmp/perf/t0/src new=translated
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

import msgspec

from bench import wrk
from bench.cost import VARIANTS, Side, _round, config, issue_key
from bench.floor import Floor
from bench.gateway import CLIENT_TOKEN, TRANSLATED_CONFIG, UPSTREAM_KEY, Ccgate
from bench.nginx import Nginx
from bench.options import Options
from bench.workload import ANTHROPIC_HEADERS, SMALL_BODY, large_request


def _side(spec: str, work: Path, nginx: Nginx, body: bytes, headers: dict[str, str], size: str,
          stack: ExitStack) -> Side:
    label, rest = spec.split("=", 1)
    rest, _, src = rest.partition("@")
    variant, _, envs = rest.partition(":")
    env = dict(kv.split("=", 1) for kv in envs.split(",") if kv)
    if variant == "translated":
        gw = Ccgate(work, nginx.url, name=f"gw-{label}", config=TRANSLATED_CONFIG, src=Path(src) if src else None,
                    env=env, nginx=nginx.url, stream="http://127.0.0.1:9")  # the paced route is not used
        data = msgspec.json.decode(body)
        data["model"] = "bench-json" if size == "small" else "bench-sse"
        body, token = msgspec.json.encode(data), CLIENT_TOKEN
    else:
        switches = VARIANTS[variant]
        gw = Ccgate(work, nginx.url, name=f"gw-{label}", config=config(switches), src=Path(src) if src else None,
                    env=env)
        token = issue_key(gw, switches) if "issued-key" in switches else CLIENT_TOKEN
    gw.start()
    stack.callback(gw.stop)
    request = wrk.write_request(work, f"req-{label}", body, {**headers, "x-api-key": token})
    return Side(label, gw.url, request, gw.pid, [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--request", choices=["small", "large"], default="small")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("sides", nargs="+", metavar="LABEL=VARIANT[:ENV=V,...][@SRC]")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccgate-bench-ab-"))
    body, headers = SMALL_BODY, dict(ANTHROPIC_HEADERS)
    if args.request == "large":
        large = large_request(Options(log=print), work)
        body, headers = large.body, dict(large.headers)
    with ExitStack() as stack:
        nginx = Nginx(work, UPSTREAM_KEY).start()
        stack.callback(nginx.stop)
        sides = [_side(spec, work, nginx, body, headers, args.request, stack) for spec in args.sides]
        floor = Floor("uvicorn", nginx.url, work).start()
        stack.callback(floor.stop)
        request = wrk.write_request(work, "req-floor", body, {**headers, "x-api-key": UPSTREAM_KEY})
        sides.append(Side("floor", floor.url, request, floor.pid, []))
        for side in sides:  # warm
            wrk.run(side.url, side.request, args.concurrency, 1, 1)
        for i in range(args.rounds):
            for side in sides:
                side.rounds.append(_round(side, args.concurrency, args.seconds))
            print(f"round {i + 1}: " + " | ".join(
                f"{s.name} {s.rounds[-1]['rps']:,.0f}/s {s.rounds[-1]['cpu_us_per_request']:.0f} us" for s in sides),
                flush=True)
    base = sides[-1].rounds
    print(f"{args.request} request, c={args.concurrency}, {args.rounds} alternating rounds of {args.seconds} s (medians):")
    for side in sides:
        rps, cpu, p50 = (statistics.median(r[k] for r in side.rounds) for k in ("rps", "cpu_us_per_request", "p50_us"))
        paired = statistics.median(r["cpu_us_per_request"] / f["cpu_us_per_request"] for r, f in zip(side.rounds, base, strict=True))
        f_rps, f_cpu = (statistics.median(r[k] for r in base) for k in ("rps", "cpu_us_per_request"))
        print(f"  {side.name:12s} {rps:7,.0f} req/s ({rps / f_rps:.2f}x)  CPU {cpu:5.0f} us ({cpu / f_cpu:.2f}x, "
              f"paired {paired:.2f}x)  p50 {p50 / 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
