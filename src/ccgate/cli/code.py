"""``ccgate code [CLAUDE ARGS...]``: run Claude Code through the gateway, touching no file.

Claude Code gets ``ANTHROPIC_BASE_URL`` and the gateway credential in its environment only
(like ``ccr code`` and ``lite claude``); when no gateway answers ``/healthz`` on the configured
address, ``ccgate serve`` is started in the background first, with the same config, and keeps
running afterwards. Every argument after ``code`` goes to ``claude`` unchanged, and its exit
status is ours: on POSIX the process becomes ``claude`` (exec), so signals and the terminal
belong to it alone.

The config comes from ``$CCGATE_CONFIG``, ``./ccgate.yaml`` or the user config dir (there is no
``--config`` here, since every argument belongs to claude). Only the server address and the
client tokens are read (``config.load.load_client_view``): provider keys are the gateway's
business. Exit status 127 when ``claude`` is not installed, 2 when the gateway cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from ccgate.claude_code import env as cc
from ccgate.claude_code.files import ClaudeFiles, settings_env
from ccgate.config.load import GatewayClientView, load_client_view
from ccgate.errors import ConfigError
from ccgate.setup.model import PLACEHOLDER_TOKEN

EXIT_NO_CLAUDE = 127  # what a shell answers for a command it cannot find
EXIT_NO_GATEWAY = 2
START_TIMEOUT = 20.0  # seconds for a background gateway to answer /healthz
KEY_ENV = "CCGATE_KEY"  # a gateway key to use instead of the config's (an issued key)
# Claude Code talks to the gateway only; the gateway deals with proxies (its own config).
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("claude_args", nargs=argparse.REMAINDER, metavar="CLAUDE ARGS",
                        help="passed to claude unchanged")
    # Every argument belongs to claude, including -p, --help and --version: with no prefix
    # characters argparse classifies none of them as an option of ours. (REMAINDER alone
    # does not capture a leading option, and main() must keep using parse_args.)
    parser.prefix_chars = ""


@dataclass(frozen=True)
class Launch:
    """What runs: ``argv`` (claude first) in ``env``, and notes for stderr."""

    argv: list[str]
    env: dict[str, str]
    notes: list[str]


def claude_env(shell: Mapping[str, str], gateway: str, token: str) -> dict[str, str]:
    """The shell's environment with the gateway set and what would contradict it removed."""
    env = {k: v for k, v in shell.items() if k not in _PROXY_VARS}
    env.pop(cc.API_KEY, None)  # beside the token it is an "Auth conflict"
    env[cc.BASE_URL] = gateway
    env[cc.AUTH_TOKEN] = token
    return env


def settings_overrides(shell: Mapping[str, str], home: Path, project_dir: Path) -> list[str]:
    """Claude Code's settings ``env`` blocks win over the process environment: name each that
    would undo what ``ccgate code`` sets."""
    watched = (cc.BASE_URL, cc.AUTH_TOKEN, cc.API_KEY, *_PROXY_VARS)
    notes = []
    for settings in ClaudeFiles.locate(shell, home).settings_files(project_dir):
        try:
            data = json.loads(settings.path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        found = sorted(set(settings_env(data if isinstance(data, dict) else {})) & set(watched))
        if found:
            notes.append(f"{settings.path} sets {', '.join(found)}, which wins over the environment "
                         "ccgate code gives Claude Code")
    return notes


def plan_launch(claude: str, args: Sequence[str], shell: Mapping[str, str], view: GatewayClientView,
                home: Path, project_dir: Path) -> Launch:
    token = shell.get(KEY_ENV) or next((s.value for s in view.client_tokens.values()), PLACEHOLDER_TOKEN)
    env = claude_env(shell, view.url, token)
    return Launch([claude, *args], env, settings_overrides(shell, home, project_dir))


def gateway_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a ccgate answers ``GET /healthz`` at ``url`` (never through a proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url + "/healthz", timeout=timeout) as answer:
            return bool(answer.status == 200 and json.loads(answer.read()).get("status") == "ok")
    except (OSError, ValueError, urllib.error.URLError):
        return False


def state_dir(env: Mapping[str, str]) -> Path:
    override = env.get("CCGATE_STATE_DIR")
    return Path(override) if override else Path(platformdirs.user_state_dir("ccgate"))


def start_gateway(view: GatewayClientView, env: Mapping[str, str]) -> tuple[int, Path]:
    """``ccgate serve`` detached, logging to the state dir; (pid, log) once /healthz answers.
    Raises RuntimeError with the log's tail when it exits or does not answer in time."""
    directory = state_dir(env)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = directory / "gateway.log"
    argv = [sys.executable, "-m", "ccgate", "serve"]
    if view.path is not None:
        argv += ["--config", str(view.path)]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=dict(env),
                                start_new_session=True)  # outlives us, and our terminal's ^C
    (directory / "gateway.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ccgate serve exited with status {proc.returncode}:\n{_tail(log)}")
        if gateway_answers(view.url, timeout=0.5):
            return proc.pid, log
        time.sleep(0.1)
    raise RuntimeError(f"ccgate serve did not answer on {view.url} within {START_TIMEOUT:g} s "
                       f"(pid {proc.pid} left running):\n{_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


def _say(message: str) -> None:
    print(f"ccgate code: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    shell = dict(os.environ)
    claude = shutil.which("claude", path=shell.get("PATH"))
    if claude is None:
        _say("Claude Code is not installed: no `claude` on PATH. Install it (npm install -g "
             "@anthropic-ai/claude-code, or see https://code.claude.com/docs/en/setup), then run "
             "`ccgate code` again.")
        return EXIT_NO_CLAUDE
    try:
        view = load_client_view(None, shell)
    except ConfigError as exc:
        _say(f"cannot read the ccgate config: {exc}")
        return EXIT_NO_GATEWAY
    if not gateway_answers(view.url):
        try:
            pid, log = start_gateway(view, shell)
        except (OSError, RuntimeError) as exc:
            _say(f"no gateway answers on {view.url}, and starting one failed: {exc}")
            return EXIT_NO_GATEWAY
        _say(f"started the gateway on {view.url} in the background (pid {pid}, log {log}); "
             f"it keeps running: stop it with `kill {pid}`")
    home = Path(shell.get("HOME") or Path.home())
    launch = plan_launch(claude, list(args.claude_args), shell, view, home, Path.cwd())
    for note in launch.notes:
        _say(f"warning: {note}")
    return _exec(launch)


def _exec(launch: Launch) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(launch.argv[0], launch.argv, launch.env)  # no return: claude's status is ours
    return subprocess.call(launch.argv, env=launch.env)  # pragma: no cover - Windows
