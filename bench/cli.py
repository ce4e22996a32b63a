"""`python -m bench run [options]` (or `bench/run`): see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import run as bench_run
from bench.common import RESULTS
from bench.options import Options, command_line


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("run", help="run the benchmark (full: ~2 minutes)")
    r.add_argument("--quick", action="store_true",
                   help="1 s lanes, no warm-up, no floor relays, no docs update (smoke test)")
    r.add_argument("--seconds", type=int, help="seconds per wrk round (default 1)")
    r.add_argument("--rounds", type=int,
                   help="alternating direct/ccgate rounds per lane, median kept (default 5; "
                        "quick 1)")
    r.add_argument("--warmup", type=int, help="warm-up seconds per target (default 1; quick 0)")
    r.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    r.add_argument("--concurrency", type=int, default=32, help="connections for the req/s lanes")
    r.add_argument("--floor", default=None,
                   help="comma-separated floor relays to measure: uvicorn,aiohttp "
                        "(default both; quick none; '' for none)")
    r.add_argument("--large-body", choices=["auto", "capture", "synthetic"], default="auto",
                   help="auto: cached capture, else capture now; capture: recapture; "
                        "synthetic: generated stand-in, no CLI needed")
    r.add_argument("--capture-mode", choices=["interactive", "print"], default="interactive",
                   help="how the CLI is run for the capture: `claude hi` in a pty, or `claude -p`")
    r.add_argument("--out", type=Path, help="results JSON (default bench/results/latest.json)")
    r.add_argument("--wait-quiet", type=int, default=0, metavar="SECONDS",
                   help="first wait up to SECONDS for other processes to leave the CPUs "
                        "(<15%% busy); the run records how busy they were either way")
    r.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    r.add_argument("--translated", action=argparse.BooleanOptionalAction, default=True,
                   help="run the translation lanes (kind: openai-compatible; default on)")


def _add_peers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("peers", help="ccgate next to LiteLLM, claude-code-router, "
                       "claude-code-proxy and the bare floor relay (installs them under "
                       "bench/.peers/; full: ~20 minutes)")
    p.add_argument("--only", help="comma-separated gateways (default: all): "
                   "ccgate,floor,litellm,claude-code-router,claude-code-proxy")
    p.add_argument("--quick", action="store_true",
                   help="1 round, c=1 and 32 only, 20 open streams, no docs, no plot")
    p.add_argument("--seconds", type=int, help="seconds per wrk round (default 3; quick 1)")
    p.add_argument("--rounds", type=int, help="alternating rounds per lane (default 3; quick 1)")
    p.add_argument("--sweep", default=None,
                   help="concurrencies for the Claude Code lanes (default 1,8,32,64)")
    p.add_argument("--streams-open", type=int, default=None,
                   help="slow streams held open for the memory lane (default 200)")
    p.add_argument("--large-body", choices=["auto", "capture", "synthetic"], default="auto")
    p.add_argument("--capture-mode", choices=["interactive", "print"], default="interactive")
    p.add_argument("--no-install", action="store_true", help="fail instead of installing")
    p.add_argument("--no-trace", action="store_true", help="skip the strace connect() check")
    p.add_argument("--out", type=Path, help="results JSON (default bench/results/peers.json)")
    p.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    p.add_argument("--wait-quiet", type=int, default=0, metavar="SECONDS")


def _add_cost(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    k = sub.add_parser("cost", help="CPU per request with features switched off, next to the floor")
    k.add_argument("variants", nargs="*", default=["full", "no-usage", "no-access-log", "bare"],
                   help="full, no-request-log, no-usage, no-store, no-access-log, bare, otel, issued, budget, "
                        "limited, limited-redis "
                        "(default: full, no-usage, no-access-log, bare)")
    k.add_argument("--request", choices=["small", "large"], default="small")
    k.add_argument("--concurrency", type=int, default=32)
    k.add_argument("--seconds", type=int, default=3)
    k.add_argument("--rounds", type=int, default=5)
    k.add_argument("--out", type=Path, help="results JSON (default bench/results/cost.json)")
    k.add_argument("--baseline", type=Path, metavar="DIR",
                   help="also run each variant on the ccgate of another checkout (DIR/src, or DIR "
                        "itself when it is a src/) as old-<variant>, in the same rounds")
    k.add_argument("--store-url", metavar="URL",
                   help="the store of the variants with default store settings (store.url, e.g. "
                        "postgresql://...; default: a SQLite file per variant)")


def _add_scale(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("scale", help="N concurrent long streams, direct vs ccgate (docs/benchmarks.md)")
    s.add_argument("--streams", default=None,
                   help="comma-separated stream counts (default 1000,5000,10000; quick 50)")
    s.add_argument("--chunks", type=int, default=None, help="chunks per stream (default 20; quick 3)")
    s.add_argument("--ramp", type=int, default=2000, help="new streams per second (default 2000)")
    s.add_argument("--gap", type=float, default=None,
                   help="seconds between a stream's chunks (default 1; quick 0.2)")
    s.add_argument("--quick", action="store_true", help="a tiny run: what the smoke test runs")
    s.add_argument("--out", type=Path, help="results JSON (default bench/results/scale.json)")
    s.add_argument("--body-kb", type=int, default=0,
                   help="pad each request to about this many KiB (default: the ~100-byte small request)")
    s.add_argument("--baseline", type=Path, metavar="DIR", default=None,
                   help="also run the ccgate of another checkout (DIR or DIR/src), before this one")
    s.add_argument("--no-floor", dest="floor", action="store_false",
                   help="skip the bare relay floor side (bench/relay_floor.py)")
    s.add_argument("--profile", type=Path, default=None,
                   help="record the gateway with py-spy per level (collapsed stacks) into this folder")


def _scale(args: argparse.Namespace) -> int:
    from bench import cost, scale

    quick = args.quick
    streams = args.streams or ("50" if quick else "1000,5000,10000")
    return scale.main(scale.ScaleOptions(
        streams=tuple(int(x) for x in streams.split(",") if x),
        chunks=args.chunks or (3 if quick else 20),
        ramp=args.ramp,
        gap=args.gap or (0.2 if quick else 1.0),
        out=args.out or RESULTS / ("scale-quick.json" if quick else "scale.json"),
        quick=quick,
        profile=args.profile,
        floor=args.floor,
        body_kb=args.body_kb,
        baseline=None if args.baseline is None else cost.baseline_src(args.baseline),
    ))


def _add_workers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser("workers", help="ccgate serve --workers 2 vs one process, small request, c=32")
    w.add_argument("--seconds", type=int, default=5, help="seconds per wrk round (default 5)")
    w.add_argument("--rounds", type=int, default=5, help="alternating rounds, median kept (default 5)")
    w.add_argument("--concurrency", type=int, default=32)
    w.add_argument("--out", type=Path, help="results JSON (default bench/results/workers.json)")


def _add_capture(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("capture", help="(re)capture the Claude Code request only")
    c.add_argument("--capture-mode", choices=["interactive", "print"], default="interactive")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for add in (_add_run, _add_peers, _add_cost, _add_scale, _add_workers, _add_capture):
        add(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser()
    args = ap.parse_args(argv)
    if args.cmd == "capture":
        return _capture(args)
    if args.cmd == "peers":
        return _peers(args, argv, ap)
    if args.cmd == "scale":
        return _scale(args)
    if args.cmd == "workers":
        from bench import workers

        workers.run(args.seconds, args.rounds, args.concurrency, args.out)
        return 0
    if args.cmd == "cost":
        from bench import cost

        return cost.main(args.variants, size=args.request, conns=args.concurrency,
                         seconds=args.seconds, rounds=args.rounds, out_path=args.out,
                         baseline=args.baseline, store_url=args.store_url)
    return _run(args, argv, ap)


def _capture(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from bench import capture

    with tempfile.TemporaryDirectory(prefix="ccgate-capture-") as tmp:
        meta = capture.capture(Path(tmp), mode=args.capture_mode)
    print(json.dumps(meta, indent=2))
    return 0


def _run(args: argparse.Namespace, argv: list[str], ap: argparse.ArgumentParser) -> int:
    quick = args.quick
    floor = args.floor if args.floor is not None else ("" if quick else "uvicorn,aiohttp")
    opts = Options(
        seconds=args.seconds or 1,
        rounds=args.rounds or (1 if quick else 5),
        warmup=args.warmup if args.warmup is not None else (0 if quick else 1),
        threads=args.threads,
        concurrency=args.concurrency,
        floor=tuple(f for f in floor.split(",") if f),
        large_body=args.large_body,
        capture_mode=args.capture_mode,
        out=args.out or RESULTS / ("quick.json" if quick else "latest.json"),
        docs=not (args.no_docs or quick),
        quick=quick,
        wait_quiet=args.wait_quiet,
        translated=args.translated,
        command=command_line(argv),
    )
    bad = [f for f in opts.floor if f not in ("uvicorn", "aiohttp")]
    if bad:
        ap.error(f"unknown floor relay(s): {', '.join(bad)}")
    return bench_run.main(opts)


def _peers(args: argparse.Namespace, argv: list[str], ap: argparse.ArgumentParser) -> int:
    from bench.peers import run as peers_run
    from bench.peers.gateways import PEERS

    quick = args.quick
    only = tuple(x for x in (args.only or ",".join(PEERS)).split(",") if x)
    bad = [x for x in only if x not in PEERS]
    if bad:
        ap.error(f"unknown gateway(s): {', '.join(bad)}; known: {', '.join(PEERS)}")
    if "ccgate" in only:  # ccgate first: the other columns are compared with it
        only = ("ccgate", *(x for x in only if x != "ccgate"))
    sweep = tuple(int(x) for x in (args.sweep or ("1,32" if quick else "1,8,32,64")).split(","))
    if 1 not in sweep or 32 not in sweep:
        ap.error("--sweep must include 1 and 32")
    base = Options(
        # 3 s rounds: a slow gateway at c=32-64 needs more than a second to finish anything
        seconds=args.seconds or (1 if quick else 3),
        rounds=args.rounds or (1 if quick else 3),
        warmup=0 if quick else 1,
        floor=(),
        large_body=args.large_body,
        capture_mode=args.capture_mode,
        quick=quick,
        wait_quiet=args.wait_quiet,
        command=command_line(argv),
    )
    po = peers_run.PeerOptions(
        base=base, only=only, sweep=sweep,
        streams_open=args.streams_open if args.streams_open is not None else (
            20 if quick else 200),
        install=not args.no_install, trace=not args.no_trace,
        out=args.out or RESULTS / ("peers-quick.json" if quick else "peers.json"),
        plot=None if (args.no_plot or quick) else peers_run.PLOT,
    )
    return peers_run.main(po, docs=not (args.no_docs or quick))
