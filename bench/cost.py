"""Where ccgate's time goes: CPU per request with features switched off, next to the floor.

`python -m bench cost` starts one nginx, the floor relay and one `ccgate serve` per variant
(the production config of `bench run`, minus what the variant switches off), then runs the
same wrk load through each in alternating rounds and reports, per variant, the median req/s,
the median CPU time the gateway process spent per request (utime + stime from /proc over
the round, divided by the requests wrk completed) and both as ratios to the floor's. CPU per
request is steadier than req/s on a shared machine; the difference between two variants is
what the switched-off feature costs.

Variants: `full` (production), `no-request-log` (usage rows on, the console's request log
off), `no-usage` (store on, usage rows and request log off: no writer at all), `no-store` (no
SQLite store at all), `no-access-log`, `bare` (no store, no access log), `otel` (full, with
OpenTelemetry traces exported over OTLP/HTTP to a sink in the bench's nginx), `issued` (full,
the client holding an issued key instead of a config token: the key cache and admission
path), `budget` (as `issued`, the key with daily and monthly budgets it never reaches:
`budget` − `issued` is what the budget check costs).

`--baseline DIR` adds, for each variant, an `old-<variant>` side running the ccgate of another
checkout (a checkout holding `src/ccgate`, e.g. a `git archive` of the previous commit, or its
`src/` itself; first on `PYTHONPATH`), in the same alternating rounds: a before/after
comparison of two trees on one shared machine at one time.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import RESULTS, BenchError
from bench.floor import Floor
from bench.gateway import CLIENT_TOKEN, CONFIG, UPSTREAM_KEY, Ccgate
from bench.nginx import Nginx
from bench.options import Options
from bench.procs import cpu_ticks, ticks_to_seconds
from bench.redis import RedisServer
from bench.report import publish
from bench.workload import ANTHROPIC_HEADERS, SMALL_BODY, large_request

VARIANTS: dict[str, tuple[str, ...]] = {
    "full": (),
    "no-request-log": ("no-request-log",),
    "no-usage": ("no-usage",),
    "no-store": ("no-store",),
    "no-access-log": ("no-access-log",),
    "bare": ("no-store", "no-access-log"),
    "otel": ("otel",),
    "issued": ("issued-key",),
    "budget": ("issued-key", "budget"),
    "limited": ("issued-key", "rpm"),
    "limited-redis": ("issued-key", "rpm", "redis"),
    # Redis configured, the key without rpm/tpm: what shared state costs every other request.
    "issued-redis": ("issued-key", "redis"),
}
UNREACHED_RPM = 1_000_000_000  # counted on every request, never refusing one


def issue_key(gw: Ccgate, switches: tuple[str, ...], store_url: str | None = None) -> str:
    """An issued key in the variant's own store (``CCGATE_DB``, or ``store_url``), before the
    gateway starts."""
    from ccgate.store import KeyManager, open_store

    gw.dir.mkdir(parents=True, exist_ok=True)
    store = open_store(store_url or gw.dir / "ccgate.db")
    try:
        limits: dict[str, Any] = {"budget_day": 1e8, "budget_month": 1e9} if "budget" in switches else {}
        if "rpm" in switches:
            limits["rpm"] = UNREACHED_RPM
        return KeyManager(store).create(f"bench-{gw.dir.name}", **limits)[1]
    finally:
        store.close()


def config(switches: tuple[str, ...], *, redis_url: str | None = None, store_url: str | None = None) -> str:
    text = CONFIG
    if "redis" in switches:
        text += f"redis:\n  url: {redis_url}\n"
    if store_url is not None and not {"no-store", "no-usage", "no-request-log"} & set(switches):
        text += f"store:\n  url: {store_url}\n"
    if "no-access-log" in switches:
        text = text.replace("access: true", "access: false")
    if "no-store" in switches:
        text += "store:\n  enabled: false\n"
    elif "no-usage" in switches:
        text += "store:\n  record_usage: false\n  request_log:\n    enabled: false\n"
    elif "no-request-log" in switches:
        text += "store:\n  request_log:\n    enabled: false\n"  # (no braces: the text is a format template)
    return text


@dataclass
class Side:
    name: str
    url: str
    request: Path
    pid: int
    rounds: list[dict[str, float]]


def _round(side: Side, conns: int, seconds: int) -> dict[str, float]:
    before = cpu_ticks(side.pid)
    result = wrk.run(side.url, side.request, conns, seconds, 1)
    spent = ticks_to_seconds(cpu_ticks(side.pid) - before)
    if result["error_total"]:
        raise BenchError(f"{side.name}: {result['error_total']} wrk errors (non-2xx or socket)")
    return {"rps": result["rps"], "cpu_us_per_request": 1e6 * spent / max(result["requests"], 1),
            "p50_us": result["latency_us"]["p50"]}


def run(variants: list[str], *, size: str, conns: int, seconds: int, rounds: int,
        log: Any = print, baseline: Path | None = None, store_url: str | None = None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ccgate-bench-cost-"))
    body, headers = SMALL_BODY, dict(ANTHROPIC_HEADERS)
    if size == "large":
        large = large_request(Options(log=log), work)
        body, headers = large.body, dict(large.headers)
    nginx = Nginx(work, UPSTREAM_KEY).start()
    started: list[Ccgate] = []
    floor: Floor | None = None
    redis: RedisServer | None = None
    try:
        if any("redis" in VARIANTS[name] for name in variants):
            redis = RedisServer(work).start()
        sides: list[Side] = []
        named = [(name, name) for name in variants]
        if baseline is not None:
            named = [pair for name in variants for pair in ((f"old-{name}", name), (name, name))]
        for label, name in named:
            switches = VARIANTS[name]
            src = baseline if baseline is not None and label.startswith("old-") else None
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": nginx.url} if "otel" in switches else {}
            if store_url is not None:
                env["CCGATE_DB"] = ""  # store.url decides
            text = config(switches, redis_url=redis.url if redis is not None else None, store_url=store_url)
            gw = Ccgate(work, nginx.url, name=f"ccgate-{label}", config=text, src=src, env=env)
            token = issue_key(gw, switches, store_url) if "issued-key" in switches else CLIENT_TOKEN
            started.append(gw.start())
            req = wrk.write_request(work, f"req-{label}", body, {**headers, "x-api-key": token})
            sides.append(Side(label, gw.url, req, gw.pid, []))
        floor = Floor("uvicorn", nginx.url, work).start()
        req = wrk.write_request(work, "req-floor", body, {**headers, "x-api-key": UPSTREAM_KEY})
        sides.append(Side("floor", floor.url, req, floor.pid, []))
        for side in sides:  # warm
            wrk.run(side.url, side.request, conns, 1, 1)
        for i in range(rounds):
            for side in sides:
                side.rounds.append(_round(side, conns, seconds))
            log(f"round {i + 1}: " + " | ".join(
                f"{s.name} {s.rounds[-1]['rps']:,.0f} req/s {s.rounds[-1]['cpu_us_per_request']:.0f} us"
                for s in sides))
    finally:
        for gw in started:
            gw.stop()
        if floor is not None:
            floor.stop()
        if redis is not None:
            redis.stop()
        nginx.stop()
    out: dict[str, Any] = {"request": size, "concurrency": conns, "seconds": seconds, "rounds": rounds,
                           "variants": {}}
    for side in sides:
        out["variants"][side.name] = {
            k: statistics.median(r[k] for r in side.rounds) for k in side.rounds[0]
        } | {"rounds": side.rounds}
    f = out["variants"]["floor"]
    for v in out["variants"].values():
        v["rps_vs_floor"] = round(v["rps"] / f["rps"], 3)
        v["cpu_vs_floor"] = round(v["cpu_us_per_request"] / f["cpu_us_per_request"], 3)
    return out


def baseline_src(path: Path) -> Path:
    """The src/ directory of `--baseline DIR`: DIR/src when DIR is a checkout, DIR when it is a src/."""
    for src in (path / "src", path):
        if (src / "ccgate").is_dir():
            return src
    raise SystemExit(f"--baseline {path}: no ccgate there (give a checkout holding src/ccgate, or its src/)")


def table(out: dict[str, Any]) -> str:
    lines = [f"request {out['request']}, c={out['concurrency']}, {out['rounds']} alternating rounds of "
             f"{out['seconds']} s (medians):", "",
             "| variant | req/s | × floor | CPU per request | × floor | p50 |", "|---|--:|--:|--:|--:|--:|"]
    for name, v in out["variants"].items():
        lines.append(f"| {name} | {v['rps']:,.0f} | {v['rps_vs_floor']:.2f} | "
                     f"{v['cpu_us_per_request']:.0f} µs | {v['cpu_vs_floor']:.2f} | {v['p50_us']:.0f} µs |")
    return "\n".join(lines)


def main(variants: list[str], *, size: str, conns: int, seconds: int, rounds: int,
         out_path: Path | None = None, baseline: Path | None = None, store_url: str | None = None) -> int:
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if baseline is not None:
        baseline = baseline_src(baseline)
        if any("issued-key" in VARIANTS[v] for v in variants):
            raise SystemExit("--baseline: the issued and budget variants write this tree's store schema; "
                             "compare them without --baseline")
    out = run(variants, size=size, conns=conns, seconds=seconds, rounds=rounds, baseline=baseline,
              store_url=store_url)
    publish(out, table(out), out_path or RESULTS / "cost.json")
    return 0
