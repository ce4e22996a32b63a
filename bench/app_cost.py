"""ccgate's own CPU per request, without sockets: trees compared in alternating rounds.

The gateway of each tree (`LABEL=SRC`, a `git archive <commit> src` export; `LABEL=.` is this
checkout) runs in its own process with the production config of `bench cost`'s `full`
variant (client token or `--issued` key, store with usage rows and the request log, JSON
access log to a file, metrics) and a transport that answers every request at once with the
bench's fixed JSON message (`bench/answers.py`, no I/O). The small request is driven through
the ASGI entry point one at a time on uvloop; after the loop the usage writer is flushed, so
its thread's work is counted too. Printed per tree: CPU per request of the whole process
(`process_time`: every thread, the usage writer's SQLite inserts included) and of the
event-loop thread alone (`thread_time`), medians of the rounds and the median of the
per-round differences against the first tree (paired).

What it leaves out is what no change in ccgate's own Python can move: the sockets, uvicorn's
parser and the upstream client. It needs no nginx or wrk, and other processes on the machine
change it little, since it counts CPU time, not wall time.

    .venv/bin/python -m bench.app_cost --rounds 5 main=/tmp/op/t0/src new=.
    .venv/bin/python -m bench.app_cost --issued main=/tmp/op/t0/src new=.
    .venv/bin/python -m bench.app_cost --link main=/tmp/op/t0/src new=.   # as under `ccgate serve`

`--translated`: the translated path instead (Anthropic in, OpenAI Chat Completions out): an
openai-compatible provider, the captured Claude Code body (`bench/results/cc_capture`, else the
synthetic stand-in) sent with the same bytes every time as the bench does, and a transport
answering the 5-chunk OpenAI stream of the translated lanes (`answers.OAI_SHORT_SSE`).
`--profile FILE` (with `--child`, one tree) writes a cProfile of the measured loop.

    .venv/bin/python -m bench.app_cost --translated --requests 3000 old=/tmp/tr-base/src new=.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.gateway import REPO

TOKEN = "bench-client-token-0123456789"
UPSTREAM_KEY = "sk-ant-bench-upstream-key"


class _Link:
    """``--link``: what `ccgate serve`'s own server gives each request (``server.protocol.ClientLink``
    in ``scope["extensions"]``): the client's disconnect as a callback instead of a watcher timer
    per exchange. Body pieces and whole answers are declined, so every tree still sends through
    ASGI and the comparison stays like for like; the write itself is measured by ``bench.ab``."""

    __slots__ = ("gone", "on_lost")

    def __init__(self) -> None:
        self.gone = False
        self.on_lost: Any = None

    def write_body(self, data: bytes) -> bool:
        return False

    def write_whole(self, status: int, headers: Any, body: bytes) -> bool:
        return False


def _translated_body() -> bytes:
    """The Claude Code request the translated lanes send, routed to the 5-chunk stream."""
    import msgspec

    from bench import capture
    from bench.workload import synthetic_large

    cached = capture.load_cached()
    body = cached[0] if cached is not None else synthetic_large().body
    data = msgspec.json.decode(body)
    data["model"] = "bench-sse"
    return msgspec.json.encode(data)


def _child(requests: int, issued: bool, translated: bool = False, profile: str | None = None,
           link: bool = False) -> dict[str, float]:
    """One round in this process: set up a gateway, drive `requests`, return the CPU figures."""
    import asyncio
    import time

    import uvloop
    import yaml

    from bench.answers import MESSAGE_BYTES, OAI_SHORT_SSE
    from bench.workload import ANTHROPIC_HEADERS, SMALL_BODY
    from ccgate.config.load import load_config
    from ccgate.server.app import Gateway
    from ccgate.server.gcpolicy import tune_for_serving
    from ccgate.upstream.mock import Reply, ScriptedTransport

    class Always(ScriptedTransport):
        """The same JSON answer to every request, nothing recorded."""

        async def send(self, method: str, path_and_query: str, headers: Any, body: bytes,
                       *, timeout: float | None = None) -> Any:
            from ccgate.upstream.mock import ScriptedResponse
            if translated:
                return ScriptedResponse(Reply(200, {"content-type": "text/event-stream",
                                                    "x-request-id": "req_upstream_0123"}, OAI_SHORT_SSE))
            return ScriptedResponse(Reply(200, {"content-type": "application/json",
                                                "request-id": "req_upstream_0123"}, MESSAGE_BYTES))

    work = Path(tempfile.mkdtemp(prefix="ccgate-app-cost-"))
    config = {
        "server": {"auth": {"tokens": [{"name": "bench", "token": TOKEN}]}},
        "providers": [{"name": "bench-nginx", "kind": "anthropic", "base_url": "http://127.0.0.1:9",
                       "api_keys": [UPSTREAM_KEY]}],
        "store": {"path": str(work / "ccgate.db")},
        "log": {"access": True, "level": "info", "file": str(work / "access.log")},
    }
    body = SMALL_BODY
    if translated:
        config["providers"] = [{"name": "oai-sse", "kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                                "auth_header": "bearer", "api_keys": [UPSTREAM_KEY]}]
        config["models"] = [{"match": "*", "to": "oai-sse/bench-model"}]
        body = _translated_body()
    (work / "ccgate.yaml").write_text(yaml.safe_dump(config))
    env = {"CCGATE_DB": str(work / "ccgate.db")}
    token = TOKEN
    if issued:
        from ccgate.store import KeyManager, open_store
        store = open_store(work / "ccgate.db")
        try:
            token = KeyManager(store).create("bench-issued")[1]
        finally:
            store.close()
    loaded = load_config(str(work / "ccgate.yaml"), env)
    app = Gateway(loaded, env, transport=lambda p, keys, e: Always(p, keys))
    headers = [(k.encode(), v.encode()) for k, v in
               {**ANTHROPIC_HEADERS, "x-api-key": token, "content-length": str(len(body)),
                "host": "127.0.0.1:8080", "user-agent": "wrk"}.items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/messages", "raw_path": b"/v1/messages", "query_string": b"beta=true",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080)}
    message = {"type": "http.request", "body": body, "more_body": False}

    def fresh() -> dict[str, Any]:
        # A new scope per request, as the server makes one: the gateway clears a relayed
        # request's header list (server/dispatch.py), so one shared list would lose its token.
        if link:
            return {**scope, "headers": list(headers), "extensions": {"ccgate.link": _Link()}}
        return {**scope, "headers": list(headers)}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            statuses.append(msg["status"])

    async def main() -> dict[str, float]:
        lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        task = asyncio.create_task(app({"type": "lifespan"}, lifespan.get, sent.put))
        await lifespan.put({"type": "lifespan.startup"})
        await sent.get()
        for _ in range(500):  # warm: caches, first-time paths
            await app(fresh(), receive, send)
        assert app.recorder is not None
        app.recorder.flush(30)
        tune_for_serving()
        profiler = None
        if profile:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        cpu, loop = time.process_time(), time.thread_time()
        for _ in range(requests):
            await app(fresh(), receive, send)
        loop = time.thread_time() - loop
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        app.recorder.flush(30)
        cpu = time.process_time() - cpu
        await lifespan.put({"type": "lifespan.shutdown"})
        await task
        if set(statuses) != {200}:
            raise SystemExit(f"statuses other than 200: {sorted(set(statuses))}")
        return {"cpu_us": cpu * 1e6 / requests, "loop_us": loop * 1e6 / requests}

    return uvloop.run(main())


def _round(src: Path, requests: int, issued: bool, translated: bool, link: bool = False) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(REPO)])}
    out = subprocess.run([sys.executable, "-m", "bench.app_cost", "--child", str(requests),
                          *(["--issued"] if issued else []), *(["--translated"] if translated else []),
                          *(["--link"] if link else [])],
                         env=env, capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{src}: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if not str(result.pop("src")).startswith(str(src)):
        raise SystemExit(f"{src}: the child imported another ccgate")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--issued", action="store_true", help="an issued key instead of the config token")
    ap.add_argument("--link", action="store_true",
                    help="give each request a ClientLink as `ccgate serve` does (disconnect by callback)")
    ap.add_argument("--translated", action="store_true",
                    help="the translated path: the Claude Code body to an openai-compatible provider")
    ap.add_argument("--profile", metavar="FILE", help="with --child: a cProfile of the measured loop")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("trees", nargs="*", metavar="LABEL=SRC")
    args = ap.parse_args()
    if args.child:
        import ccgate
        print(json.dumps({**_child(args.child, args.issued, args.translated, args.profile, args.link),
                          "src": ccgate.__file__}))
        return 0
    trees = [(label, (REPO / "src") if src == "." else Path(src))
             for label, _, src in (t.partition("=") for t in args.trees or ["this=."])]
    rounds: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
    for i in range(args.rounds):
        for label, src in trees:
            rounds[label].append(_round(src, args.requests, args.issued, args.translated, args.link))
        print(f"round {i + 1}: " + " | ".join(
            f"{label} {r[-1]['cpu_us']:.1f} us ({r[-1]['loop_us']:.1f} loop)" for label, r in rounds.items()),
            flush=True)
    first = rounds[trees[0][0]]
    what = "translated Claude Code request" if args.translated else "issued key" if args.issued else "config token"
    print(f"{what}, {args.requests} requests x {args.rounds} "
          "rounds, CPU per request (medians):")
    for label, rs in rounds.items():
        cpu = statistics.median(r["cpu_us"] for r in rs)
        loop = statistics.median(r["loop_us"] for r in rs)
        best = min(r["cpu_us"] for r in rs)
        diff = statistics.median(r["cpu_us"] - f["cpu_us"] for r, f in zip(rs, first, strict=True))
        print(f"  {label:10s} process {cpu:6.1f} us (best round {best:6.1f})  event loop {loop:6.1f} us  "
              f"paired vs {trees[0][0]}: {diff:+.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
