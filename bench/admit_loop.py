"""The Redis admission path alone: CPU and wall time per `RedisShared.admit`, old against new.

`old` is the admission through redis-py's asyncio client as it was before the admission
channel (one EVALSHA per admission from the pool; `--concurrency N`: N admissions of one turn
in one redis-py pipeline); `new` is `RedisShared.admit` (shared/redis_admit.py: one connection,
pre-packed EVALSHA, hiredis). Both run the same script against one Debian redis-server on
loopback, in alternating rounds, on uvloop (what `ccgate serve` runs). CPU is this process's
`time.process_time()` per admission (the gateway's side; Redis' own CPU is not in it), so it
holds on a shared machine; wall times (p50 of sequential admissions) do not.

    .venv/bin/python -m bench.admit_loop --concurrency 1 --admissions 3000 --rounds 5
    .venv/bin/python -m bench.admit_loop --concurrency 32 --admissions 6400 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.redis import RedisServer
from ccgate.shared.redis import RedisOptions, RedisShared, admission_from
from ccgate.shared.redis_admit import script_sha
from ccgate.shared.redis_scripts import ADMIT, EXPIRE_MS

RPM = 1_000_000_000  # never reached: every admission is counted and allowed


def _old(shared: RedisShared) -> Callable[[int], Awaitable[list[float]]]:
    """redis-py: one EVALSHA per admission, or one pipeline per batch (the code before)."""
    keys = ["b:rl:k:r", "b:rl:k:t"]
    args = [RPM, 0, "", EXPIRE_MS]
    sha = script_sha(ADMIT)  # loaded by the warm-up (main_async)

    async def batch(n: int) -> list[float]:
        started = time.perf_counter()
        if n == 1:
            reply = await shared._client.evalsha(sha, 2, *keys, *args)
            admission_from(reply, RPM, None)
        else:
            pipe = shared._client.pipeline(transaction=False)
            for _ in range(n):
                pipe.evalsha(sha, 2, *keys, *args)
            for reply in await pipe.execute(raise_on_error=False):
                admission_from(reply, RPM, None)
        return [time.perf_counter() - started]

    return batch


def _new(shared: RedisShared) -> Callable[[int], Awaitable[list[float]]]:
    async def batch(n: int) -> list[float]:
        started = time.perf_counter()
        if n == 1:
            await shared.admit("k", RPM, None)
        else:
            await asyncio.gather(*(shared.admit("k", RPM, None) for _ in range(n)))
        return [time.perf_counter() - started]

    return batch


async def _round(run: Callable[[int], Awaitable[list[float]]], admissions: int, concurrency: int) -> dict[str, float]:
    walls: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(admissions // concurrency):
        walls += await run(concurrency)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = admissions // concurrency * concurrency
    return {"cpu_us": 1e6 * cpu / done, "wall_us": 1e6 * wall / done,
            "p50_batch_us": 1e6 * statistics.median(walls)}


async def main_async(args: argparse.Namespace, url: str) -> dict[str, list[dict[str, float]]]:
    shared = RedisShared(RedisOptions(url, timeout=2.0, prefix="b:"), "bench")
    sides = {"old": _old(shared), "new": _new(shared)}
    out: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    try:
        await shared._client.script_load(ADMIT)
        for run in sides.values():  # warm: connections, script, caches
            for _ in range(200):
                await run(args.concurrency)
        for i in range(args.rounds):
            for name, run in sides.items():
                out[name].append(await _round(run, args.admissions, args.concurrency))
            print(f"round {i + 1}: " + " | ".join(
                f"{name} {out[name][-1]['cpu_us']:.1f} µs CPU, p50 {out[name][-1]['p50_batch_us']:.0f} µs"
                for name in sides))
    finally:
        await shared.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=1, help="admissions asked for in one turn")
    ap.add_argument("--admissions", type=int, default=3000, help="per round and side")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccgate-bench-admit-"))
    redis = RedisServer(work).start()
    try:
        runner: Any
        try:
            import uvloop
            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        out = runner(main_async(args, redis.url))
    finally:
        redis.stop()
    print(f"\nconcurrency {args.concurrency}, {args.admissions} admissions x {args.rounds} rounds (medians):")
    print("| | CPU per admission | wall per admission | p50 per batch |\n|---|--:|--:|--:|")
    for name, rounds in out.items():
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(f"| {name} | {med['cpu_us']:.1f} µs | {med['wall_us']:.1f} µs | {med['p50_batch_us']:.0f} µs |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
