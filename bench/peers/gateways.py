"""The gateways measured side by side: how each is installed, configured and started.

Each Peer writes its own config for a list of routes into a fresh HOME and returns the command
line and environment that start it on 127.0.0.1:<port>.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.answers import OAI_MODEL
from bench.common import LOOPBACK, REPO
from bench.gateway import CLIENT_TOKEN, UPSTREAM_KEY, with_src_on_path
from bench.peers.install import PEERS_DIR, PINS, install_npm, install_venv, pip_version
from bench.peers.routes import Route
from bench.procs import clean_env

Log = Callable[[str], None]
Launch = tuple[list[str], dict[str, str]]  # argv and environment


class Peer:
    name = ""
    runtime = ""
    multi_route = True  # one instance serves every route (else one instance per route)
    passthrough = True
    translation = True
    messages_path = "/v1/messages?beta=true"
    relays_client_path = False  # sends every request to one upstream root with the client's path
    startup_timeout = 60.0

    def installed(self) -> bool:
        return True

    def install(self, log: Log) -> None:
        pass

    def version(self) -> str:
        return "?"

    def supports(self, route: Route) -> bool:
        return self.passthrough if route.protocol == "anthropic" else self.translation

    def model(self, route: Route) -> str:
        return route.name

    def auth(self) -> dict[str, str]:
        return {}

    def argv(self, home: Path, port: int, routes: list[Route]) -> Launch:
        raise NotImplementedError

    def base_env(self, home: Path) -> dict[str, str]:
        """Nothing of the caller's credentials or proxies; telemetry and downloads off."""
        env = clean_env("CCGATE_", "ANTHROPIC_", "OPENAI_", "LITELLM_")
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

    def argv(self, home: Path, port: int, routes: list[Route]) -> Launch:
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
            to = r.name if r.protocol == "anthropic" else f"{r.name}/{OAI_MODEL}"
            lines += [f"  - match: {r.name}", f"    to: {to}"]
        lines += ["log:", "  access: true", "  level: info",
                  f"  file: {json.dumps(str(home / 'access.log'))}"]
        cfg = home / "ccgate.yaml"
        cfg.write_text("\n".join(lines) + "\n")
        env = with_src_on_path(self.base_env(home))
        return [sys.executable, "-m", "ccgate", "serve", "--config", str(cfg)], env


class FloorPeer(Peer):
    name = "floor"
    runtime = "Python: bench/relay_floor.py (uvicorn + aiohttp), no auth/logging/validation"
    multi_route = False
    translation = False
    relays_client_path = True

    def version(self) -> str:
        return "bench"

    def argv(self, home: Path, port: int, routes: list[Route]) -> Launch:
        (route,) = routes
        u = urlsplit(route.base)
        # Give it the upstream root and let the bench send the route's path (Instance.path_for).
        return ([sys.executable, str(REPO / "bench" / "relay_floor.py"), "--server", "uvicorn",
                 "--port", str(port), "--upstream", f"{u.scheme}://{u.netloc}"],
                self.base_env(home))


class VenvPeer(Peer):
    """A Python gateway pip-installed into its own venv under bench/.peers/."""

    venv: Path
    script = ""  # the console script that shows it is installed
    requirement = ""  # what pip installs
    dist = ""  # the distribution whose version is reported

    def installed(self) -> bool:
        return (self.venv / "bin" / self.script).exists()

    def install(self, log: Log) -> None:
        install_venv(self.venv, [self.requirement], log)

    def version(self) -> str:
        return pip_version(self.venv, self.dist)


class LitellmPeer(VenvPeer):
    name = "litellm"
    runtime = "Python: FastAPI + uvicorn, LiteLLM proxy (1 worker, no database)"
    startup_timeout = 180.0
    venv = PEERS_DIR / "litellm"
    script = dist = "litellm"
    requirement = f"litellm[proxy]=={PINS['litellm']}"

    def auth(self) -> dict[str, str]:
        return {"authorization": "Bearer sk-bench-litellm-master-key"}

    def argv(self, home: Path, port: int, routes: list[Route]) -> Launch:
        lines = ["model_list:"]
        for r in routes:
            model = "anthropic/claude-bench" if r.protocol == "anthropic" else f"openai/{OAI_MODEL}"
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

    def install(self, log: Log) -> None:
        install_npm(self.prefix, f"@musistudio/claude-code-router@{PINS['claude-code-router']}",
                    log)

    def version(self) -> str:
        try:
            pkg = self.cli.parent.parent / "package.json"
            return str(json.loads(pkg.read_text())["version"])
        except (OSError, ValueError, KeyError):
            return "?"

    def model(self, route: Route) -> str:
        # "provider,model" picks the provider directly (CCR's router otherwise).
        return f"{route.name},{'claude-bench' if route.protocol == 'anthropic' else OAI_MODEL}"

    def auth(self) -> dict[str, str]:
        return {"x-api-key": "sk-bench-ccr-key"}

    def _provider(self, r: Route) -> dict[str, Any]:
        p: dict[str, Any] = {"name": r.name, "api_base_url": r.base + (
            "/v1/messages" if r.protocol == "anthropic" else "/chat/completions"),
            "api_key": UPSTREAM_KEY}
        if r.protocol == "anthropic":
            p.update(models=["claude-bench"], transformer={"use": ["Anthropic"]})
        else:
            p["models"] = [OAI_MODEL]
        return p

    def argv(self, home: Path, port: int, routes: list[Route]) -> Launch:
        cfg = {"LOG": False, "HOST": LOOPBACK, "PORT": port, "APIKEY": "sk-bench-ccr-key",
               "NON_INTERACTIVE_MODE": True, "Providers": [self._provider(r) for r in routes],
               "Router": {"default": self.model(routes[0])}}
        d = home / ".claude-code-router"
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(cfg, indent=1))
        return [shutil.which("node") or "node", str(self.cli), "start"], self.base_env(home)


class CcproxyPeer(VenvPeer):
    name = "claude-code-proxy"
    runtime = "Python: FastAPI + uvicorn, LiteLLM 1.71.1 SDK (one upstream per instance: env)"
    multi_route = False
    venv = PEERS_DIR / "ccproxy"
    script = dist = "claude-code-proxy"
    requirement = f"claude-code-proxy=={PINS['claude-code-proxy']}"
    messages_path = "/v1/messages"

    def model(self, route: Route) -> str:
        # Its model mapping: "haiku"/"sonnet" go to SMALL/BIG_MODEL on OpenAI; a prefixed name
        # goes to that LiteLLM provider as it is.
        # The Anthropic name must be one its LiteLLM 1.71 knows: it always sends `thinking`,
        # which LiteLLM refuses for a model it does not know to support it.
        return "anthropic/claude-opus-4-20250514" if route.protocol == "anthropic" else \
            f"openai/{OAI_MODEL}"

    def argv(self, home: Path, port: int, routes: list[Route]) -> Launch:
        (route,) = routes
        env = self.base_env(home)
        env.update(OPENAI_API_KEY=UPSTREAM_KEY, ANTHROPIC_API_KEY=UPSTREAM_KEY,
                   BIG_MODEL=OAI_MODEL, SMALL_MODEL=OAI_MODEL)
        if route.protocol == "openai":
            env.update(OPENAI_BASE_URL=route.base, OPENAI_API_BASE=route.base)
        else:
            env.update(ANTHROPIC_API_BASE=route.base, ANTHROPIC_BASE_URL=route.base)
        # Its own entry point binds 0.0.0.0:8082; the README's alternative is uvicorn itself.
        return [str(self.venv / "bin" / "python"), "-m", "uvicorn", "server.fastapi:app",
                "--host", LOOPBACK, "--port", str(port), "--log-level", "error"], env


PEERS: dict[str, type[Peer]] = {p.name: p for p in (CcgatePeer, FloorPeer, LitellmPeer,
                                                     CcrPeer, CcproxyPeer)}
