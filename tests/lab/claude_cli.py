"""The pinned Claude Code CLI (``@anthropic-ai/claude-code@2.1.330``) as a test client.

``scripts/install-test-deps`` installs it with npm into ``<repo>/.tools/claude``. The npm
package is a wrapper; the real program is the native binary of the per-platform package
(``@anthropic-ai/claude-code-linux-x64/claude``), which :func:`claude_binary` finds and which
runs offline (no postinstall download, no Node needed).

:func:`run_claude` runs ``claude -p PROMPT`` in a fresh temporary HOME with a *clean*
environment built from scratch: nothing leaks from the caller's environment (no proxy
variables, no ``CLAUDE_CONFIG_DIR``, no real credentials) unless passed in ``env``.

What 2.1.330 sent in ``-p`` mode against the fake upstream (plain-HTTP base URL on
127.0.0.1, ``ANTHROPIC_API_KEY`` set, nonessential traffic disabled), captured by
``tests/test_lab.py::test_claude_cli_prints_streamed_answer``:

* exactly one request, ``POST /v1/messages?beta=true`` with ``"stream": true``; no
  ``HEAD /api/hello`` warm-up, no ``/api/hello`` preflight, no ``count_tokens``, no
  ``/v1/models``, and no connection to any other address (checked once with strace);
* headers: ``accept``, ``content-type``, ``user-agent: claude-cli/2.1.330 (external,
  sdk-cli)``, ``x-claude-code-session-id``, ``x-stainless-{arch,lang,os,package-version,
  retry-count,runtime,runtime-version,timeout}``, ``anthropic-beta`` (e.g.
  ``claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,
  ...,effort-2025-11-24``), ``anthropic-dangerous-direct-browser-access: true``,
  ``anthropic-version: 2023-06-01``, ``x-api-key`` (the key; no ``authorization``),
  ``x-app: cli``, ``connection``, ``host``, ``accept-encoding``, ``content-length``;
* body keys: ``context_management, max_tokens, messages, metadata, model, output_config,
  stream, system, thinking, tools``; default model ``claude-opus-5-5``.
* with ``ANTHROPIC_AUTH_TOKEN`` instead, the token goes in ``authorization: Bearer`` and
  there is no ``x-api-key``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / ".tools" / "claude"
PINNED_VERSION = "2.1.330"
_PLATFORM_PKGS = ("claude-code-linux-x64", "claude-code-linux-arm64",
                  "claude-code-linux-x64-musl", "claude-code-linux-arm64-musl",
                  "claude-code-darwin-arm64", "claude-code-darwin-x64")


MATRIX_FILE = REPO_ROOT / "scripts" / "claude-matrix.txt"
MATRIX_ENV = "CCGATE_CLAUDE_MATRIX"


def claude_matrix() -> list[str]:
    """The versions the real-CLI end-to-end tests run against: the pinned one, then those in
    ``scripts/claude-matrix.txt``. ``$CCGATE_CLAUDE_MATRIX`` ("2.1.340=/path/to/claude,...",
    set by scripts/compat-latest) replaces the list with the binaries it names."""
    override = os.environ.get(MATRIX_ENV)
    if override:
        return [entry.split("=", 1)[0] for entry in override.split(",") if entry]
    listed = [line.split("#", 1)[0].strip() for line in MATRIX_FILE.read_text().splitlines()]
    return [PINNED_VERSION, *(v for v in listed if v)]


def claude_binary(version: str | None = None) -> Path | None:
    """Path of the installed native ``claude`` binary of ``version`` (default: the pinned one
    in ``.tools/claude``; others in ``.tools/claude-<version>``), or None if not installed.

    ``$CCGATE_CLAUDE_BIN`` overrides the pinned lookup; ``$CCGATE_CLAUDE_MATRIX`` the others.
    """
    override = os.environ.get("CCGATE_CLAUDE_BIN")
    matrix = dict(e.split("=", 1) for e in os.environ.get(MATRIX_ENV, "").split(",") if "=" in e)
    if version in matrix:
        return Path(matrix[version]) if Path(matrix[version]).is_file() else None
    if override and version in (None, PINNED_VERSION):
        return Path(override) if Path(override).is_file() else None
    tools = TOOLS_DIR if version in (None, PINNED_VERSION) else TOOLS_DIR.with_name(f"claude-{version}")
    scope = tools / "node_modules" / "@anthropic-ai"
    for pkg in _PLATFORM_PKGS:
        cand = scope / pkg / "claude"
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    wrapper = scope / "claude-code" / "bin" / "claude.exe"
    if wrapper.is_file() and wrapper.stat().st_size > 1_000_000:  # postinstall copied it
        return wrapper
    return None


@dataclass
class ClaudeResult:
    returncode: int
    stdout: str
    stderr: str
    duration: float
    home: Path = field(repr=False)


def clean_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A from-scratch environment for the CLI: quiet, offline-friendly, no proxies."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL": "1",
    }
    env.update(extra or {})
    return env


def run_claude(prompt: str, *, base_url: str, api_key: str | None = None,
               auth_token: str | None = None, env: dict[str, str] | None = None,
               args: tuple[str, ...] = (), home: Path | None = None, timeout: float = 60.0,
               max_retries: int | None = None, ca_file: Path | None = None,
               binary: Path | None = None) -> ClaudeResult:
    """Run ``claude -p PROMPT [args]`` against ``base_url`` and return its output.

    ``api_key`` → ``ANTHROPIC_API_KEY`` (sent as x-api-key); ``auth_token`` →
    ``ANTHROPIC_AUTH_TOKEN`` (sent as Bearer); ``ca_file`` → ``NODE_EXTRA_CA_CERTS``;
    ``max_retries`` → ``CLAUDE_CODE_MAX_RETRIES`` (the CLI's default of 10 with backoff
    makes error tests slow); ``env`` adds or overrides variables (e.g. ``HTTPS_PROXY``).
    A fresh temporary HOME is created unless ``home`` is given; it is the cwd too.
    """
    binary = binary or claude_binary()
    if binary is None:
        raise RuntimeError("claude CLI not installed: run scripts/install-test-deps")
    home = home or Path(tempfile.mkdtemp(prefix="ccgate-lab-claude-home-"))
    extra: dict[str, str] = {"ANTHROPIC_BASE_URL": base_url}
    if api_key is not None:
        extra["ANTHROPIC_API_KEY"] = api_key
    if auth_token is not None:
        extra["ANTHROPIC_AUTH_TOKEN"] = auth_token
    if max_retries is not None:
        extra["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    if ca_file is not None:
        extra["NODE_EXTRA_CA_CERTS"] = str(ca_file)
    extra.update(env or {})
    start = time.monotonic()
    proc = subprocess.run([str(binary), "-p", prompt, *args], env=clean_env(home, extra),
                          cwd=home, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return ClaudeResult(proc.returncode, proc.stdout, proc.stderr,
                        time.monotonic() - start, home)
