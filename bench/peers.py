"""Peers side by side (issue 7): `python -m bench peers` (or `bench/run --peers`).

Each gateway is installed in its own throwaway environment under bench/.peers/ (gitignored) from
the package registries, pinned (PINS), started with a generated config that points every route
at the same loopback upstreams, and measured with the same load as ccgate:

  passthrough  Anthropic in, Anthropic upstream (nginx, or the scripted upstream for streams)
  translated   Anthropic in, OpenAI Chat Completions upstream
  lanes        small and Claude Code-sized requests: wrk c=1 latency, c=32 req/s (and c=8, 64
               for the Claude Code request: the plot); 500-chunk streams, static and paced
               (TTFB, per-chunk overhead, per-chunk latency); RSS idle and with 200 slow
               streams open; the captured Claude Code request once through each (correctness)

Every direct/gateway pair alternates round by round, as in `bench run`. A gateway that cannot
serve a lane is reported failing it with its error, never dropped. Nothing here talks to
anything but 127.0.0.1: peers get a fresh HOME, no proxy variables, telemetry off, and their
connect() calls are traced once (strace) to prove it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import streams, translated, wrk
from bench.common import (
    LOOPBACK,
    REPO,
    RESULTS,
    BenchError,
    cpu_busy_pct,
    free_port,
    machine,
    rss_kb,
    stop,
    wait_http,
)
from bench.gateway import CLIENT_TOKEN, UPSTREAM_KEY
from bench.lanes import Options, Request, cpu_ticks, median
from bench.stream_client import Client
from bench.stream_upstream import StreamUpstream
from bench.upstream import MESSAGE_BYTES, Nginx

PEERS_DIR = REPO / "bench" / ".peers"
DOCS = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "bench-peers-latency.png"
BEGIN = "<!-- bench:peers:begin (written by `python -m bench peers`; do not edit by hand) -->"
END = "<!-- bench:peers:end -->"
# What the bench installs, each in its own environment under bench/.peers/.
PINS = {
    "litellm": "1.106.2",  # PyPI litellm[proxy]
    "claude-code-router": "2.0.0",  # npm @musistudio/claude-code-router (3.1.1 needs a
    # dependency the registry does not have: @the-next-ai/ai-gateway -> 404)
    "claude-code-proxy": "0.1.5",  # PyPI claude-code-proxy (a fork of 1rgs/claude-code-proxy)
    "matplotlib": "3.10.7",  # the plot, in bench/.peers/tools
}
ANTH = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
OAI = translated.OAI_HEADERS
QUIET_PCT = 15.0


# Routes: one upstream endpoint each ----------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    protocol: str  # "anthropic" (root; /v1/messages appended) | "openai" (.../v1)
    base: str

    @property
    def upstream_path(self) -> str:
        from urllib.parse import urlsplit

        p = urlsplit(self.base).path
        return p + ("/v1/messages" if self.protocol == "anthropic" else "/chat/completions")


def routes(nginx: str, su: str) -> dict[str, Route]:
    r = [
        Route("pt-json", "anthropic", nginx), Route("pt-sse", "anthropic", nginx + "/sse"),
        Route("pt-burst", "anthropic", nginx + "/sse500"),
        Route("pt-paced", "anthropic", su + "/paced"), Route("pt-slow", "anthropic", su + "/slow"),
        Route("pt-cc", "anthropic", su),
        Route("tr-json", "openai", nginx + "/v1"), Route("tr-sse", "openai", nginx + "/sse/v1"),
        Route("tr-burst", "openai", nginx + "/sse500/v1"),
        Route("tr-paced", "openai", su + "/paced/v1"), Route("tr-slow", "openai", su + "/slow/v1"),
        Route("tr-cc", "openai", su + "/v1"),
    ]
    return {x.name: x for x in r}


# The gateways ------------------------------------------------------------------------------


class Peer:
    name = ""
    runtime = ""
    multi_route = True  # one instance serves every route (else one instance per route)
    passthrough = True
    translation = True
    messages_path = "/v1/messages?beta=true"
    startup_timeout = 60.0

    def installed(self) -> bool:
        return True

    def install(self, log: Any) -> None:
        pass

    def version(self) -> str:
        return "?"

    def supports(self, route: Route) -> bool:
        return self.passthrough if route.protocol == "anthropic" else self.translation

    def model(self, route: Route) -> str:
        return route.name

    def auth(self) -> dict[str, str]:
        return {}

    def argv(self, home: Path, port: int, routes: list[Route]) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def base_env(self, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
               and not k.startswith(("CCGATE_", "ANTHROPIC_", "OPENAI_", "LITELLM_"))}
        env.update(HOME=str(home), NO_PROXY="127.0.0.1,localhost", DO_NOT_TRACK="1",
                   LITELLM_TELEMETRY="False", LITELLM_LOCAL_MODEL_COST_MAP="True",
                   HF_HUB_OFFLINE="1", NODE_ENV="production")
        return env


class CcgatePeer(Peer):
    name = "ccgate"
    runtime = "Python: uvicorn + httptools + uvloop, aiohttp client"

    def version(self) -> str:
        try:
            out = subprocess.run([sys.executable, "-c", "import ccgate; print(ccgate.__version__)"],
                                 capture_output=True, text=True, timeout=30,
                                 env={**os.environ, "PYTHONPATH": str(REPO / "src")})
            return out.stdout.strip() or "?"
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    def auth(self) -> dict[str, str]:
        return {"x-api-key": CLIENT_TOKEN}

    def argv(self, home: Path, port: int, routes: list[Route]) -> tuple[list[str], dict[str, str]]:
        lines = ["server:", f"  host: {LOOPBACK}", f"  port: {port}", "  auth:", "    tokens:",
                 "      - name: bench", f"        token: {json.dumps(CLIENT_TOKEN)}",
                 "providers:"]
        for r in routes:
            lines += [f"  - name: {r.name}",
                      f"    kind: {'anthropic' if r.protocol == 'anthropic' else 'openai-compatible'}",
                      f"    base_url: {r.base}",
                      f"    auth_header: {'x-api-key' if r.protocol == 'anthropic' else 'bearer'}",
                      f"    api_keys: [{json.dumps(UPSTREAM_KEY)}]"]
        lines.append("models:")
        for r in routes:
            to = r.name if r.protocol == "anthropic" else f"{r.name}/{streams.OAI_MODEL}"
            lines += [f"  - match: {r.name}", f"    to: {to}"]
        lines += ["log:", "  access: true", "  level: info",
                  f"  file: {json.dumps(str(home / 'access.log'))}"]
        cfg = home / "ccgate.yaml"
        cfg.write_text("\n".join(lines) + "\n")
        env = self.base_env(home)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)
        return [sys.executable, "-m", "ccgate", "serve", "--config", str(cfg)], env


class FloorPeer(Peer):
    name = "floor"
    runtime = "Python: bench/relay_floor.py (uvicorn + aiohttp), no auth/logging/validation"
    multi_route = False
    translation = False

    def version(self) -> str:
        return "bench"

    def argv(self, home: Path, port: int, routes: list[Route]) -> tuple[list[str], dict[str, str]]:
        (route,) = routes
        from urllib.parse import urlsplit

        u = urlsplit(route.base)
        # The floor forwards the client's path to one upstream root: give it the root and let
        # the bench send the route's path (see Instance.path_for).
        return ([sys.executable, str(REPO / "bench" / "relay_floor.py"), "--server", "uvicorn",
                 "--port", str(port), "--upstream", f"{u.scheme}://{u.netloc}"],
                self.base_env(home))


class LitellmPeer(Peer):
    name = "litellm"
    runtime = "Python: FastAPI + uvicorn, LiteLLM proxy (1 worker, no database)"
    startup_timeout = 180.0
    venv = PEERS_DIR / "litellm"

    def installed(self) -> bool:
        return (self.venv / "bin" / "litellm").exists()

    def install(self, log: Any) -> None:
        _venv(self.venv, [f"litellm[proxy]=={PINS['litellm']}"], log)

    def version(self) -> str:
        return _pip_version(self.venv, "litellm")

    def auth(self) -> dict[str, str]:
        return {"authorization": "Bearer sk-bench-litellm-master-key"}

    def argv(self, home: Path, port: int, routes: list[Route]) -> tuple[list[str], dict[str, str]]:
        lines = ["model_list:"]
        for r in routes:
            model = "anthropic/claude-bench" if r.protocol == "anthropic" else \
                f"openai/{streams.OAI_MODEL}"
            lines += [f"  - model_name: {r.name}", "    litellm_params:",
                      f"      model: {model}", f"      api_base: {r.base}",
                      f"      api_key: {UPSTREAM_KEY}"]
        lines += ["litellm_settings:", "  telemetry: false", "  set_verbose: false",
                  "  drop_params: true", "general_settings:",
                  "  master_key: sk-bench-litellm-master-key", "  disable_spend_logs: true"]
        cfg = home / "litellm.yaml"
        cfg.write_text("\n".join(lines) + "\n")
        env = self.base_env(home)
        # Its documented opt-out of the Responses API bridge: without it /v1/messages to an
        # openai/ model calls {api_base}/responses, which OpenAI-compatible servers lack.
        env.update(LITELLM_LOG="ERROR", LITELLM_MODE="PRODUCTION",
                   LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES="True")
        return [str(self.venv / "bin" / "litellm"), "--config", str(cfg), "--host", LOOPBACK,
                "--port", str(port), "--num_workers", "1"], env


class CcrPeer(Peer):
    name = "claude-code-router"
    runtime = "Node.js: @musistudio/claude-code-router (`ccr start`)"
    prefix = PEERS_DIR / "ccr"

    @property
    def cli(self) -> Path:
        return self.prefix / "node_modules" / "@musistudio" / "claude-code-router" / "dist" / \
            "cli.js"

    def installed(self) -> bool:
        return self.cli.exists()

    def install(self, log: Any) -> None:
        if shutil.which("npm") is None:
            raise BenchError("npm not found (Debian package npm)")
        self.prefix.mkdir(parents=True, exist_ok=True)
        log(f"npm install @musistudio/claude-code-router@{PINS['claude-code-router']} ...")
        _check_call(["npm", "install", "--prefix", str(self.prefix), "--no-audit", "--no-fund",
                     f"@musistudio/claude-code-router@{PINS['claude-code-router']}"])

    def version(self) -> str:
        try:
            pkg = self.cli.parent.parent / "package.json"
            return str(json.loads(pkg.read_text())["version"])
        except (OSError, ValueError, KeyError):
            return "?"

    def model(self, route: Route) -> str:
        # "provider,model" picks the provider directly (CCR's router otherwise).
        return f"{route.name},{'claude-bench' if route.protocol == 'anthropic' else streams.OAI_MODEL}"

    def auth(self) -> dict[str, str]:
        return {"x-api-key": "sk-bench-ccr-key"}

    def argv(self, home: Path, port: int, routes: list[Route]) -> tuple[list[str], dict[str, str]]:
        providers = []
        for r in routes:
            p: dict[str, Any] = {"name": r.name, "api_base_url": r.base + (
                "/v1/messages" if r.protocol == "anthropic" else "/chat/completions"),
                "api_key": UPSTREAM_KEY}
            if r.protocol == "anthropic":
                p.update(models=["claude-bench"], transformer={"use": ["Anthropic"]})
            else:
                p["models"] = [streams.OAI_MODEL]
            providers.append(p)
        cfg = {"LOG": False, "HOST": LOOPBACK, "PORT": port, "APIKEY": "sk-bench-ccr-key",
               "NON_INTERACTIVE_MODE": True, "Providers": providers,
               "Router": {"default": self.model(routes[0])}}
        d = home / ".claude-code-router"
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(cfg, indent=1))
        return [shutil.which("node") or "node", str(self.cli), "start"], self.base_env(home)


class CcproxyPeer(Peer):
    name = "claude-code-proxy"
    runtime = "Python: FastAPI + uvicorn, LiteLLM 1.71.1 SDK (one upstream per instance: env)"
    multi_route = False
    venv = PEERS_DIR / "ccproxy"
    messages_path = "/v1/messages"

    def installed(self) -> bool:
        return (self.venv / "bin" / "claude-code-proxy").exists()

    def install(self, log: Any) -> None:
        _venv(self.venv, [f"claude-code-proxy=={PINS['claude-code-proxy']}"], log)

    def version(self) -> str:
        return _pip_version(self.venv, "claude-code-proxy")

    def model(self, route: Route) -> str:
        # Its model mapping: "haiku"/"sonnet" go to SMALL/BIG_MODEL on OpenAI; a prefixed name
        # goes to that LiteLLM provider as it is.
        # The Anthropic name must be one its LiteLLM 1.71 knows: it always sends `thinking`,
        # which LiteLLM refuses for a model it does not know to support it.
        return "anthropic/claude-opus-4-20250514" if route.protocol == "anthropic" else \
            f"openai/{streams.OAI_MODEL}"

    def argv(self, home: Path, port: int, routes: list[Route]) -> tuple[list[str], dict[str, str]]:
        (route,) = routes
        env = self.base_env(home)
        env.update(OPENAI_API_KEY=UPSTREAM_KEY, ANTHROPIC_API_KEY=UPSTREAM_KEY,
                   BIG_MODEL=streams.OAI_MODEL, SMALL_MODEL=streams.OAI_MODEL)
        if route.protocol == "openai":
            env.update(OPENAI_BASE_URL=route.base, OPENAI_API_BASE=route.base)
        else:
            env.update(ANTHROPIC_API_BASE=route.base, ANTHROPIC_BASE_URL=route.base)
        # Its own entry point binds 0.0.0.0:8082; the README's alternative is uvicorn itself.
        return [str(self.venv / "bin" / "python"), "-m", "uvicorn", "server.fastapi:app",
                "--host", LOOPBACK, "--port", str(port), "--log-level", "error"], env


PEERS: dict[str, type[Peer]] = {p.name: p for p in (CcgatePeer, FloorPeer, LitellmPeer,
                                                     CcrPeer, CcproxyPeer)}


def _check_call(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:4])} ... failed: {(out.stderr or out.stdout)[-500:]}")


def _venv(path: Path, reqs: list[str], log: Any) -> None:
    if not (path / "bin" / "pip").exists():
        _check_call(["/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable,
                     "-m", "venv", str(path)])
    log(f"pip install {' '.join(reqs)} into {path.relative_to(REPO)} ...")
    _check_call([str(path / "bin" / "pip"), "install", "-q", *reqs])


def _pip_version(venv: Path, dist: str) -> str:
    try:
        out = subprocess.run([str(venv / "bin" / "python"), "-c",
                              f"import importlib.metadata as m; print(m.version({dist!r}))"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def tools_python(log: Any) -> Path:
    """bench/.peers/tools: matplotlib for the plot (never a project dependency)."""
    venv = PEERS_DIR / "tools"
    py = venv / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import matplotlib"],
                                        capture_output=True).returncode == 0
    if not ok:
        _venv(venv, [f"matplotlib=={PINS['matplotlib']}"], log)
    return py


# A running instance ---------------------------------------------------------------------------


class Instance:
    def __init__(self, peer: Peer, workdir: Path, routes: list[Route], trace: bool = False
                 ) -> None:
        self.peer = peer
        self.routes = routes
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        tag = routes[0].name if len(routes) == 1 else "all"
        self.home = workdir / f"peer-{peer.name}-{tag}{'-trace' if trace else ''}"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = self.home / "stderr.log"
        self.trace_file = self.home / "connect.trace" if trace else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0
        self.routes_by = {r.name: r for r in routes}

    def start(self) -> Instance:
        argv, env = self.peer.argv(self.home, self.port, self.routes)
        if self.trace_file is not None:
            argv = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(self.trace_file),
                    *argv]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=self.home, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        try:
            wait_http(self.url + "/", self.proc, timeout=self.peer.startup_timeout,
                      what=self.peer.name)
        except BenchError as e:
            self.stop()
            raise BenchError(f"{e}: {self.tail()}") from None
        self.startup_s = time.monotonic() - t0
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> dict[str, int | None]:
        return rss_kb(self.pid)

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-600:].strip()
        except OSError:
            return ""

    def path_for(self, route: Route) -> str:
        if isinstance(self.peer, FloorPeer):  # the floor relays the client's path
            return route.upstream_path
        return self.peer.messages_path

    def headers(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, **self.peer.auth()}

    def non_loopback_connects(self) -> list[str]:
        if self.trace_file is None or not self.trace_file.exists():
            return []
        bad = set()
        for path in self.trace_file.parent.glob(self.trace_file.name + "*"):
            for line in path.read_text(errors="replace").splitlines():
                if "connect(" not in line or "AF_UNIX" in line or "AF_NETLINK" in line:
                    continue
                if 'inet_addr("127.' in line or "::1" in line or "AF_UNSPEC" in line:
                    continue
                if "sin_addr" in line or "sin6_addr" in line:
                    bad.add(line.split("connect(", 1)[1][:160])
        return sorted(bad)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        tree = _descendants(self.proc.pid)
        if self.trace_file is not None:
            # strace would detach and leave the traced gateway running: stop that one first.
            for pid, _ in tree[:1]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        stop(self.proc, grace=15.0)
        for pid, cmd in tree:  # anything the gateway started and left behind (our own tree)
            if _cmdline(pid) == cmd:  # the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _descendants(pid: int) -> list[tuple[int, bytes | None]]:
    """Our process's descendants with their command lines, nearest first (from /proc)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop(0)
        kids: list[int] = []
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    kids += [int(c) for c in (task / "children").read_text().split()]
        out += kids
        todo += kids
    return [(p, _cmdline(p)) for p in out]


# Lanes ---------------------------------------------------------------------------------------


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


def _with_model(body: bytes, model: str) -> bytes:
    b = json.loads(body)
    b["model"] = model
    return json.dumps(b, separators=(",", ":"), ensure_ascii=False).encode()


def make_lanes(large: Request, treqs: dict[str, translated.TReq], nginx: Nginx,
               su: StreamUpstream, sweep: tuple[int, ...]) -> list[Lane]:
    large_stream = bool(json.loads(large.body).get("stream"))
    small = translated._body("x", False)
    stream_small = translated._body("x", True)
    out = [
        Lane("pt-small", "pt", "small", "pt-json", small, dict(ANTH), False, streams.TEXT,
             nginx.url, "/v1/messages", {**ANTH, "x-api-key": UPSTREAM_KEY}, small),
        Lane("pt-large", "pt", "large", "pt-sse" if large_stream else "pt-json", large.body,
             dict(large.headers), large_stream, streams.TEXT, nginx.url,
             "/sse/v1/messages" if large_stream else "/v1/messages",
             {**large.headers, "x-api-key": UPSTREAM_KEY}, large.body, sweep),
        Lane("tr-small", "tr", "small", "tr-json", small, dict(ANTH), False, streams.TEXT,
             nginx.url, treqs["small"].path, OAI, treqs["small"].direct),
        Lane("tr-large", "tr", "large", "tr-sse" if large_stream else "tr-json", large.body,
             dict(large.headers), large_stream, streams.TEXT, nginx.url, treqs["large"].path,
             OAI, treqs["large"].direct, sweep),
        Lane("pt-burst", "pt", "burst", "pt-burst", stream_small, dict(ANTH), True,
             streams.LONG_TEXT, nginx.url, "/sse500/v1/messages",
             {**ANTH, "x-api-key": UPSTREAM_KEY}, stream_small),
        Lane("pt-paced", "pt", "paced", "pt-paced", stream_small, dict(ANTH), True, None,
             su.url, "/paced/v1/messages", {**ANTH, "x-api-key": UPSTREAM_KEY}, stream_small),
        Lane("tr-burst", "tr", "burst", "tr-burst", stream_small, dict(ANTH), True,
             streams.LONG_TEXT, nginx.url, treqs["burst"].path, OAI, treqs["burst"].direct),
        Lane("tr-paced", "tr", "paced", "tr-paced", stream_small, dict(ANTH), True, None,
             su.url, treqs["paced"].path, OAI, treqs["paced"].direct),
    ]
    return out


def _first_line(text: str, n: int = 200) -> str:
    return " ".join(str(text).split())[:n]


def precheck(inst: Instance, lane: Lane, body: bytes) -> str | None:
    """One request: a 200 and a valid Anthropic answer with the expected text, or the error."""
    try:
        with Client(inst.url, timeout=30) as c:
            t = c.post(inst.path_for(inst.routes_by[lane.route]), inst.headers(lane.headers),
                       body)
    except (OSError, BenchError) as e:
        return _first_line(f"{type(e).__name__}: {e}")
    if t.status != 200:
        return _first_line(f"HTTP {t.status}: {t.body.decode(errors='replace')}")
    problem = streams.check_anthropic(t.body, lane.stream, lane.text)
    if problem is None and lane.request in ("burst", "paced"):
        problem = streams.markers_in_order(t.body)
    if problem:
        return _first_line(f"invalid Anthropic answer: {problem}")
    return None


def wrk_lane(opts: Options, inst: Instance, lane: Lane, body: bytes, workdir: Path
             ) -> dict[str, Any]:
    route = inst.routes_by[lane.route]
    tag = f"{inst.peer.name}-{lane.key}"
    fd = wrk.write_request(workdir, f"{tag}-direct", lane.direct_body, lane.direct_headers)
    fg = wrk.write_request(workdir, f"{tag}-gw", body, inst.headers(lane.headers))
    gpath = inst.path_for(route)
    hz = os.sysconf("SC_CLK_TCK")
    out: dict[str, Any] = {}
    if opts.warmup:
        wrk.run(inst.url, fg, min(32, max(lane.conns)), opts.warmup, opts.threads, path=gpath)
    for conns in lane.conns:
        runs: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        for _ in range(opts.rounds):
            for side, url, f, path in (("direct", lane.direct_url, fd, lane.direct_path),
                                       ("gateway", inst.url, fg, gpath)):
                t0, c0 = time.monotonic(), cpu_ticks(inst.pid) if side == "gateway" else 0
                r = wrk.run(url, f, conns, opts.seconds, opts.threads, path=path)
                if side == "gateway":
                    r["cpu_pct"] = round(100.0 * (cpu_ticks(inst.pid) - c0) / hz /
                                         (time.monotonic() - t0), 1)
                r.update(target=side, request=lane.key)
                runs[side].append(r)
        d, g = median(runs["direct"]), median(runs["gateway"])
        if g["requests"] == 0:
            out[str(conns)] = {"direct": _slim(d), "error": _first_line(
                f"no request completed in {opts.rounds} x {opts.seconds} s at c={conns} "
                f"(wrk errors: {g['errors']})")}
            opts.log(f"  {inst.peer.name:<18} {lane.key:<9} c={conns:<3} nothing completed")
            continue
        out[str(conns)] = {
            "direct": _slim(d), "gateway": _slim(g),
            "added_p50_ms": (g["latency_us"]["p50"] - d["latency_us"]["p50"]) / 1000,
            "added_p99_ms": (g["latency_us"]["p99"] - d["latency_us"]["p99"]) / 1000,
        }
        opts.log(f"  {inst.peer.name:<18} {lane.key:<9} c={conns:<3} direct "
                 f"{d['rps']:>9,.0f} req/s p50 {d['latency_us']['p50'] / 1000:7.3f} ms | gateway "
                 f"{g['rps']:>8,.0f} req/s p50 {g['latency_us']['p50'] / 1000:8.3f} ms "
                 f"errors {g['error_total']}")
    return out


def _slim(r: dict[str, Any]) -> dict[str, Any]:
    return {"rps": r["rps"], "p50_ms": r["latency_us"]["p50"] / 1000,
            "p99_ms": r["latency_us"]["p99"] / 1000, "requests": r["requests"],
            "errors": r["error_total"], "cpu_pct": r.get("cpu_pct"),
            "rounds": r.get("rounds", [])}  # median() kept each round's rps / p50 / p99


def stream_lane(opts: Options, inst: Instance, lane: Lane, body: bytes, per_round: int
                ) -> dict[str, Any]:
    route = inst.routes_by[lane.route]
    su_meta = lane.direct_url if lane.request == "paced" else None
    targets = [
        translated.StreamTarget("direct", lane.direct_url, lane.direct_path,
                                lane.direct_headers, lane.direct_body, translated.direct_check,
                                meta_url=su_meta),
        translated.StreamTarget("gateway", inst.url, inst.path_for(route),
                                inst.headers(lane.headers), body,
                                translated.anthropic_check(lane.text), inst.pid, su_meta),
    ]
    return translated.stream_lane(opts, f"{inst.peer.name} {lane.key}", targets, per_round)


# Many slow streams at once (memory) ----------------------------------------------------------


async def _hold(url: str, path: str, headers: dict[str, str], body: bytes, n: int,
                settle: float, timeout: float, measure: Any) -> dict[str, Any]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    head = [f"POST {path} HTTP/1.1", f"host: {u.hostname}:{u.port}",
            f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    established = 0
    errors: list[str] = []
    writers: list[asyncio.StreamWriter] = []
    ready = asyncio.Event()

    async def one() -> None:
        nonlocal established
        try:
            reader, writer = await asyncio.open_connection(u.hostname, u.port, limit=1 << 20)
            writers.append(writer)
            writer.write(request)
            buf = b""
            while not streams.MARKER.search(buf):
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError(f"closed: {buf[:150]!r}")
                buf += data
                if len(buf) > 200_000:
                    buf = buf[-1000:]
            if not buf.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(buf[:150].decode(errors="replace"))
            established += 1
            if established == n:
                ready.set()
            while await reader.read(65536):  # keep draining until we close it
                pass
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
            errors.append(_first_line(str(e) or type(e).__name__))
            if established + len(errors) >= n:
                ready.set()

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    t0 = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ready.wait(), timeout)
    await asyncio.sleep(settle)
    result = {"requested": n, "established": established, "errors": len(errors),
              "first_error": errors[0] if errors else None,
              "seconds_to_establish": round(time.monotonic() - t0 - settle, 2),
              "rss": measure()}
    for w in writers:
        w.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


def memory_lane(inst: Instance, lane_route: str, n: int, quick: bool) -> dict[str, Any]:
    route = inst.routes_by[lane_route]
    body = _with_model(translated._body("x", True), inst.peer.model(route))
    res = asyncio.run(_hold(inst.url, inst.path_for(route), inst.headers(dict(ANTH)), body, n,
                            settle=1.0 if quick else 3.0, timeout=30.0 if quick else 60.0,
                            measure=inst.rss))
    time.sleep(2.0)
    res["rss_after_close"] = inst.rss()
    return res


# Correctness: the captured Claude Code request, once --------------------------------------


def correctness(inst: Instance, route: Route, large: Request, su: StreamUpstream
                ) -> dict[str, Any]:
    body = _with_model(large.body, inst.peer.model(route))
    stream = bool(json.loads(body).get("stream"))
    try:
        with Client(inst.url, timeout=60) as c:
            t = c.post(inst.path_for(route), inst.headers(dict(large.headers)), body)
    except (OSError, BenchError) as e:
        return {"valid": False, "error": _first_line(f"{type(e).__name__}: {e}")}
    out: dict[str, Any] = {"status": t.status}
    if t.status != 200:
        out.update(valid=False, error=_first_line(f"HTTP {t.status}: "
                                                  f"{t.body.decode(errors='replace')}"))
        return out
    problem = streams.check_anthropic(t.body, stream, streams.TEXT)
    out.update(valid=problem is None, error=problem and _first_line(problem))
    sent = su.last(route.upstream_path)
    if sent:
        out["upstream_body_bytes"] = len(sent)
        try:
            up = json.loads(sent)
            out["tools_forwarded"] = len(up.get("tools") or [])
        except ValueError:
            pass
        if route.protocol == "anthropic":
            out["byte_exact"] = sent == body
    return out


# The run -----------------------------------------------------------------------------------


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


def _groups(peer: Peer, rs: list[Route]) -> list[list[Route]]:
    return [rs] if peer.multi_route else [[r] for r in rs]


def run_peer(po: PeerOptions, peer: Peer, workdir: Path, all_routes: dict[str, Route],
             lanes: list[Lane], large: Request, su: StreamUpstream) -> dict[str, Any]:
    opts = po.base
    res: dict[str, Any] = {"name": peer.name, "version": peer.version(), "runtime": peer.runtime,
                           "lanes": {}, "streams": {}, "memory": {}, "correctness": {},
                           "instances": []}
    needed = [r for r in all_routes.values() if peer.supports(r)]
    for lane in lanes:
        if not peer.supports(all_routes[lane.route]):
            res["lanes" if lane.request in ("small", "large") else "streams"][lane.key] = {
                "unsupported": "no translation" if lane.mode == "tr" else "no passthrough"}
    for group in _groups(peer, needed):
        names = {r.name for r in group}
        try:
            inst = Instance(peer, workdir, group).start()
        except BenchError as e:
            for lane in lanes:
                if lane.route in names:
                    res["lanes" if lane.request in ("small", "large") else "streams"][
                        lane.key] = {"error": _first_line(f"did not start: {e}")}
            continue
        res["instances"].append({"routes": sorted(names), "pid": inst.pid,
                                 "startup_s": round(inst.startup_s, 2)})
        try:
            first = len(res["instances"]) == 1
            for lane in lanes:
                if lane.route not in names:
                    continue
                body = _with_model(lane.body, peer.model(all_routes[lane.route]))
                where = "lanes" if lane.request in ("small", "large") else "streams"
                err = precheck(inst, lane, body)
                if err:
                    opts.log(f"  {peer.name:<18} {lane.key:<9} FAILS: {err}")
                    res[where][lane.key] = {"error": err}
                    continue
                if first and "idle" not in res["memory"]:
                    time.sleep(0.5)
                    res["memory"]["idle"] = inst.rss()
                try:
                    if where == "lanes":
                        res[where][lane.key] = wrk_lane(opts, inst, lane, body, workdir)
                    else:
                        # Paced streams take ~0.6 s each; three per round (not one) because
                        # their per-chunk latency moved by tens of µs between single runs.
                        per_round = (1 if opts.quick else 3) if lane.request == "paced" else (
                            3 if opts.quick else 10)
                        res[where][lane.key] = stream_lane(opts, inst, lane, body, per_round)
                except BenchError as e:
                    res[where][lane.key] = {"error": _first_line(str(e))}
                    opts.log(f"  {peer.name:<18} {lane.key:<9} FAILED during the load: {e}")
            for slow in ("tr-slow", "pt-slow"):
                if slow in names and po.streams_open:
                    m = memory_lane(inst, slow, po.streams_open, opts.quick)
                    res["memory"][slow] = m
                    opts.log(f"  {peer.name:<18} {slow:<9} {m['established']}/{m['requested']} "
                             f"streams open, tree RSS {(m['rss']['tree_vmrss_kb'] or 0) / 1024:.1f}"
                             f" MB ({m['errors']} errors)")
            if "idle" not in res["memory"] and first:
                res["memory"]["idle"] = inst.rss()
            for cc in ("pt-cc", "tr-cc"):
                if cc in names:
                    res["correctness"][cc] = correctness(inst, all_routes[cc], large, su)
                    c = res["correctness"][cc]
                    opts.log(f"  {peer.name:<18} {cc:<9} Claude Code request: "
                             f"{'valid' if c['valid'] else 'INVALID: ' + str(c.get('error'))}")
        finally:
            inst.stop()
    if po.trace and shutil.which("strace") and peer.name not in ("floor",):
        res["network"] = network_probe(peer, workdir, needed, lanes, all_routes)
    return res


def network_probe(peer: Peer, workdir: Path, needed: list[Route], lanes: list[Lane],
                  all_routes: dict[str, Route]) -> dict[str, Any]:
    """Start the peer once more under strace, send one request per lane, list connect()s."""
    group = needed if peer.multi_route else needed[:1]
    inst = Instance(peer, workdir, group, trace=True)
    try:
        inst.start()
        for lane in lanes:
            if lane.route in inst.routes_by and lane.request in ("small", "large"):
                precheck(inst, lane, _with_model(lane.body, peer.model(all_routes[lane.route])))
        time.sleep(1.0)
    except BenchError as e:
        return {"error": _first_line(str(e))}
    finally:
        inst.stop()
    bad = inst.non_loopback_connects()
    return {"traced": True, "non_loopback_connects": bad}


def run(po: PeerOptions) -> dict[str, Any]:
    opts = po.base
    started = time.monotonic()
    peers = [PEERS[n]() for n in po.only]
    for p in peers:
        if not p.installed():
            if not po.install:
                raise BenchError(f"{p.name} is not installed under {PEERS_DIR} (drop --no-install)")
            p.install(opts.log)
    results: dict[str, Any] = {
        "schema": 1, "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": opts.command, "mode": "quick" if opts.quick else "full",
        "seconds_per_lane": opts.seconds, "rounds": opts.rounds, "sweep": list(po.sweep),
        "machine": machine(), "node": _node_version(), "loadavg_before": os.getloadavg(),
        "pins": PINS,
    }
    with tempfile.TemporaryDirectory(prefix="ccgate-peers-") as tmp:
        workdir = Path(tmp)
        from bench.run import large_request

        large = large_request(opts, workdir)
        results["large"] = {"bytes": len(large.body), "tools": large.tools,
                            "source": large.source}
        busy = cpu_busy_pct()
        deadline = time.monotonic() + opts.wait_quiet
        while busy > QUIET_PCT and time.monotonic() < deadline:
            opts.log(f"waiting for a quiet machine: others keep the CPUs {busy:.0f}% busy")
            time.sleep(2)
            busy = cpu_busy_pct()
        results["others_cpu_busy_pct_before"] = busy
        nginx = Nginx(workdir, UPSTREAM_KEY).start()
        su = StreamUpstream(workdir, UPSTREAM_KEY, slow_gap=0.5).start()
        with Client(nginx.url) as c:
            t = c.post("/v1/messages", {**ANTH, "x-api-key": UPSTREAM_KEY},
                       translated._body("x", False))
        if t.body != MESSAGE_BYTES:
            su.stop()
            nginx.stop()
            raise BenchError(f"nginx does not answer the fixed message: {t.body[:200]!r}")
        try:
            treqs = {r.name: r for r in translated.requests(large)}
            translated.record_upstream_bodies(workdir, su, list(treqs.values()))
            all_routes = routes(nginx.url, su.url)
            lanes = make_lanes(large, treqs, nginx, su, po.sweep)
            results["peers"] = {}
            for p in peers:
                opts.log(f"{p.name} {p.version()}:")
                results["peers"][p.name] = run_peer(po, p, workdir, all_routes, lanes, large, su)
        finally:
            su.stop()
            nginx.stop()
    results["loadavg_after"] = os.getloadavg()
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    results["targets"] = targets(results)
    return results


def _node_version() -> str:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"


# Summaries -----------------------------------------------------------------------------------


def _lane(res: dict[str, Any], key: str) -> dict[str, Any] | None:
    x = res["lanes"].get(key) or res["streams"].get(key)
    return x if x and "error" not in x and "unsupported" not in x else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    peers = results.get("peers", {})
    cc = peers.get("ccgate")
    out: list[dict[str, Any]] = []
    if not cc:
        return out
    c = "32"

    def add(desc: str, ok: bool | None, measured: str) -> None:
        out.append({"target": desc, "pass": ok, "measured": measured})

    for name, p in peers.items():
        if name in ("ccgate", "floor"):
            continue
        wins, losses, missing = [], [], []
        for key in ("pt-small", "pt-large", "tr-small", "tr-large"):
            a, b = _lane(cc, key), _lane(p, key)
            if a is None or b is None:
                missing.append(key)
                continue
            for conns in ("1", c):
                if "error" in a.get(conns, {"error": 1}):
                    missing.append(f"ccgate {key} c={conns}")
                    continue
                if "error" in b.get(conns, {"error": 1}):  # nothing completed: ccgate ahead
                    wins.append(f"{key} c={conns}")
                    continue
                better = (a[conns]["added_p50_ms"] < b[conns]["added_p50_ms"] if conns == "1"
                          else a[conns]["gateway"]["rps"] > b[conns]["gateway"]["rps"])
                (wins if better else losses).append(f"{key} c={conns}")
        for key in ("pt-burst", "tr-burst", "pt-paced", "tr-paced"):
            a, b = _lane(cc, key), _lane(p, key)
            if a is None or b is None:
                missing.append(key)
                continue
            fa, fb = a["added"]["gateway"], b["added"]["gateway"]
            metric = "chunk_latency_p50_us" if key.endswith("paced") else "per_chunk_us"
            (wins if fa["ttfb_us"] < fb["ttfb_us"] else losses).append(f"{key} TTFB")
            if metric in fa and metric in fb:
                (wins if fa[metric] < fb[metric] else losses).append(f"{key} per chunk")
        m_a, m_b = cc["memory"].get("idle"), p["memory"].get("idle")
        if m_a and m_b:
            (wins if m_a["tree_vmrss_kb"] < m_b["tree_vmrss_kb"] else losses).append("idle RSS")
        add(f"ccgate ahead of {name} on every lane", not losses if wins else None,
            f"ahead on {len(wins)}, behind on {len(losses)}"
            + (f" ({', '.join(losses)})" if losses else "")
            + (f"; {name} failed/missing: {', '.join(missing)}" if missing else ""))
    ll = peers.get("litellm")
    for key, title in (("tr-large", "translated"), ("pt-large", "passthrough")):
        a, b = _lane(cc, key), _lane(ll, key) if ll else None
        if a is None or b is None:
            add(f">= 10x LiteLLM req/s, Claude Code request, {title}", None, "not measured")
            add(f"<= 1/10 of LiteLLM added p50, Claude Code request, {title}", None,
                "not measured")
            continue
        ga = a[c].get("gateway", {}).get("rps", 0.0)
        gb = b[c].get("gateway", {}).get("rps", 0.0)
        if ga and gb:
            add(f">= 10x LiteLLM req/s, Claude Code request, {title}, c={c}", ga / gb >= 10,
                f"{ga / gb:.1f}x ({ga:,.0f} vs {gb:,.0f})")
        else:
            add(f">= 10x LiteLLM req/s, Claude Code request, {title}, c={c}",
                bool(ga) if ga or gb else None, f"{ga:,.0f} vs {gb:,.0f} (0 = none completed)")
        if "error" in a["1"] or "error" in b["1"]:
            continue
        fa, fb = a["1"]["added_p50_ms"], b["1"]["added_p50_ms"]
        add(f"<= 1/10 of LiteLLM added p50, Claude Code request, {title}, c=1",
            fa <= fb / 10, f"{fa:.3f} ms vs {fb:.3f} ms (1/{fb / fa:.1f})" if fa > 0 else
            f"{fa:.3f} ms vs {fb:.3f} ms")
    fl = peers.get("floor")
    for key in ("pt-small", "pt-large"):
        a, b = _lane(cc, key), _lane(fl, key) if fl else None
        if a is None or b is None:
            continue
        if "error" in a["1"] or "error" in b["1"]:
            continue
        fa, fb = a["1"]["added_p50_ms"], b["1"]["added_p50_ms"]
        add(f"ccgate added p50 within 1.5x of the bare relay floor, {key}, c=1",
            fa <= 1.5 * fb, f"{fa:.3f} ms vs {fb:.3f} ms ({fa / fb:.2f}x)" if fb > 0 else
            f"{fa:.3f} ms vs {fb:.3f} ms")
    return out


# Rendering -----------------------------------------------------------------------------------

LANE_TITLES = {
    "pt-small": "passthrough, small", "pt-large": "passthrough, Claude Code",
    "tr-small": "translated, small", "tr-large": "translated, Claude Code",
    "pt-burst": "passthrough, static 500-chunk stream",
    "pt-paced": "passthrough, paced 500-chunk stream",
    "tr-burst": "translated, static 500-chunk stream",
    "tr-paced": "translated, paced 500-chunk stream",
    "pt-cc": "passthrough, captured Claude Code request",
    "tr-cc": "translated, captured Claude Code request",
}


def _cell_fail(x: dict[str, Any] | None) -> str | None:
    if x is None:
        return "—"
    if "unsupported" in x:
        return f"n/a ({x['unsupported']})"
    if "error" in x:
        return "**fails**"
    return None


def tables(results: dict[str, Any]) -> str:
    peers = results["peers"]
    names = list(peers)
    cc = peers.get("ccgate")
    c = "32"
    head = "| lane | " + " | ".join(f"{n} {peers[n]['version']}" for n in names) + " |"
    sep = "|---|" + "--:|" * len(names)
    lines = ["Added p50 latency at c=1 (gateway − direct, same run), and its ratio to ccgate's:",
             "", head, sep]
    for key in ("pt-small", "pt-large", "tr-small", "tr-large"):
        cells = []
        for n in names:
            x = peers[n]["lanes"].get(key)
            f = _cell_fail(x)
            if f:
                cells.append(f)
                continue
            if "error" in x["1"]:
                cells.append("**none completed**")
                continue
            v = x["1"]["added_p50_ms"]
            ref = _lane(cc, key) if cc else None
            ratio = (f" (×{v / ref['1']['added_p50_ms']:.1f})"
                     if ref and n != "ccgate" and "error" not in ref["1"]
                     and ref["1"]["added_p50_ms"] > 0 else "")
            cells.append(f"{v:.3f} ms{ratio}")
        lines.append(f"| {LANE_TITLES[key]} | " + " | ".join(cells) + " |")
    lines += ["", f"Throughput at c={c} (req/s through the gateway; × direct; × ccgate):", "",
              head, sep]
    for key in ("pt-small", "pt-large", "tr-small", "tr-large"):
        cells = []
        for n in names:
            x = peers[n]["lanes"].get(key)
            f = _cell_fail(x)
            if f:
                cells.append(f)
                continue
            if "error" in x[c]:
                cells.append("**none completed**")
                continue
            g, d = x[c]["gateway"], x[c]["direct"]
            ref = _lane(cc, key) if cc else None
            rc = (f", ×{g['rps'] / ref[c]['gateway']['rps']:.3f}"
                  if ref and n != "ccgate" and "gateway" in ref[c] else "")
            err = f", {g['errors']} errors" if g["errors"] else ""
            cells.append(f"{g['rps']:,.0f} (×{g['rps'] / d['rps']:.3f}{rc}{err})")
        lines.append(f"| {LANE_TITLES[key]} | " + " | ".join(cells) + " |")
    lines += ["", "Streams of 500 chunks, one connection: added TTFB, and per chunk: static "
              "stream (one body) the overhead (added total − added TTFB) / 500, paced stream "
              "(one write per chunk, ~1 ms apart) the added latency of each chunk (p50):", "",
              head, sep]
    for key in ("pt-burst", "tr-burst", "pt-paced", "tr-paced"):
        cells = []
        for n in names:
            x = peers[n]["streams"].get(key)
            f = _cell_fail(x)
            if f:
                cells.append(f)
                continue
            a = x["added"]["gateway"]
            if "chunk_latency_p50_us" in a:  # paced: the work per chunk hides in the gaps
                per = f"+{a['chunk_latency_p50_us']:.0f} µs latency/chunk"
            else:
                per = f"{a['per_chunk_us']:.1f} µs/chunk"
            cells.append(f"TTFB +{a['ttfb_us'] / 1000:.2f} ms, {per}")
        lines.append(f"| {LANE_TITLES[key]} | " + " | ".join(cells) + " |")
    lines += ["", f"Memory (VmRSS of the process tree): idle after the first request, and with "
              f"{results.get('streams_open', 200)} slow streams open (the scripted upstream sends "
              "a chunk every 0.5 s):", "", head, sep]
    n_open = results.get("streams_open", 200)
    for key, title in (("idle", "idle"), ("tr-slow", f"{n_open} open streams, translated"),
                       ("pt-slow", f"{n_open} open streams, passthrough")):
        cells = []
        for n in names:
            m = peers[n]["memory"].get(key)
            if not m:
                cells.append("—")
                continue
            if key == "idle":
                cells.append(f"{(m['tree_vmrss_kb'] or 0) / 1024:.1f} MB"
                             + (f" ({m['processes']} processes)" if m["processes"] > 1 else ""))
            else:
                ok = f"{m['established']}/{m['requested']} open"
                cells.append(f"{(m['rss']['tree_vmrss_kb'] or 0) / 1024:.1f} MB ({ok})")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "Correctness: the captured Claude Code request (model name set per gateway) "
              "once through each, against the scripted upstream answering validly:", "", head,
              sep]
    for key, title in (("pt-cc", "passthrough: valid Anthropic answer"),
                       ("tr-cc", "translated: valid Anthropic answer")):
        cells = []
        for n in names:
            x = peers[n]["correctness"].get(key)
            if not x:
                cells.append("n/a")
                continue
            if x["valid"]:
                bits = []
                if "byte_exact" in x:
                    bits.append("body byte-exact" if x["byte_exact"] else "body rewritten")
                if "tools_forwarded" in x:
                    bits.append(f"{x['tools_forwarded']} tools sent")
                cells.append("yes" + (f" ({', '.join(bits)})" if bits else ""))
            else:
                cells.append("**no**")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    net = []
    for n in names:
        x = peers[n].get("network")
        if x is None:
            net.append("not traced")
        elif "error" in x:
            net.append("trace failed")
        else:
            bad = x["non_loopback_connects"]
            net.append("127.0.0.1 only" if not bad else f"**{len(bad)} other**")
    lines.append("| connect() targets (strace) | " + " | ".join(net) + " |")
    errors = []
    for n in names:
        for where in ("lanes", "streams", "correctness"):
            for key, x in peers[n][where].items():
                if isinstance(x, dict) and x.get("error") and (where != "correctness"
                                                               or not x.get("valid")):
                    errors.append(f"- {n}, {LANE_TITLES.get(key, key)}: `{x['error']}`")
        for key, m in peers[n]["memory"].items():
            if key != "idle" and m.get("first_error"):
                errors.append(f"- {n}, {key} ({m['errors']} of {m['requested']} failed): "
                              f"`{m['first_error']}`")
        x = peers[n].get("network") or {}
        for b in x.get("non_loopback_connects", []):
            errors.append(f"- {n} tried to connect: `{b}`")
    if errors:
        lines += ["", "Failures and errors (first 200 characters):", "", *errors]
    if results.get("targets"):
        lines += ["", "| target (issue 7) | measured | result |", "|---|---|---|"]
        for t in results["targets"]:
            r = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
            lines.append(f"| {t['target']} | {t['measured']} | {r} |")
    return "\n".join(lines)


def docs_section(results: dict[str, Any], plot_rel: str | None) -> str:
    m = results["machine"]
    peers = results["peers"]
    inst = [f"{n} {p['version']} ({p['runtime']})" for n, p in peers.items()]
    lines = [
        BEGIN, "",
        f"Measured {results['generated_at']} with:", "", "```sh", results["command"], "```", "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_mb']} MB RAM, {m['os']}, "
        f"kernel {m['kernel']}, Python {m['python']}, Node {results['node']}, {m['nginx']}, "
        f"{m['wrk'].split(' Copyright')[0]}. wrk -t1; every direct/gateway pair alternates "
        f"{results['rounds']} rounds of {results['seconds_per_lane']} s (median kept); others "
        f"kept the CPUs {results['others_cpu_busy_pct_before']:.0f}% busy just before; whole run "
        f"{results['elapsed_seconds']:.0f} s; load average before/after "
        f"{results['loadavg_before'][0]:.2f}/{results['loadavg_after'][0]:.2f}.",
        f"Claude Code request: {results['large']['bytes']:,} bytes, {results['large']['tools']} "
        f"tools, {results['large']['source']}.",
        "", "Gateways: " + "; ".join(inst) + ".", "", tables(results), ""]
    if plot_rel:
        lines += [f"![added p50 latency vs concurrency]({plot_rel})", ""]
    lines.append(END)
    return "\n".join(lines)


def update_docs(results: dict[str, Any], plot_rel: str | None, path: Path = DOCS) -> None:
    section = docs_section(results, plot_rel)
    text = path.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Peers: latest results\n\n" + section + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def make_plot(results_file: Path, png: Path, log: Any) -> bool:
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
    try:
        results = run(po)
    except BenchError as e:
        print(f"bench peers: {e}", file=sys.stderr)
        return 1
    results["streams_open"] = po.streams_open
    print()
    print(tables(results))
    po.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = po.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(po.out)
    print(f"\nwrote {po.out}")
    plotted = False
    if po.plot is not None:
        plotted = make_plot(po.out, po.plot, po.base.log)
        if plotted:
            print(f"wrote {po.plot}")
    if docs:
        rel = os.path.relpath(po.plot, DOCS.parent) if plotted and po.plot else None
        update_docs(results, rel)
        print(f"updated {DOCS}")
    return 0

