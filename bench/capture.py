"""Capture a real Claude Code request body by running the pinned CLI against a loopback server.

The CLI runs in a fresh temporary HOME and working directory with ANTHROPIC_BASE_URL
pointing at a tiny capture server on 127.0.0.1. The server records every POST /v1/messages and
answers with a short, valid SSE stream (or JSON when the request is not streaming), so the CLI
exits 0. Any traffic the CLI tries to send elsewhere is sent to the same server as an HTTP proxy
(HTTPS_PROXY) and refused there, so nothing leaves 127.0.0.0/8.

By default the CLI runs interactively (`claude hi` in a pseudo-terminal, onboarding pre-seeded,
stopped once the first turn is sent); `print` mode runs `claude -p hi` instead.
The largest /v1/messages body (the main turn with the full tool list) is cached in
bench/results/cc_capture/ and never committed: it contains Claude Code's prompts.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import LOOPBACK, REPO, RESULTS, BenchError

CACHE_DIR = RESULTS / "cc_capture"
PINNED_SCOPE = REPO / ".tools" / "claude" / "node_modules" / "@anthropic-ai"
_PLATFORM_PKGS = ("claude-code-linux-x64", "claude-code-linux-arm64",
                  "claude-code-linux-x64-musl", "claude-code-linux-arm64-musl")
FAKE_KEY = "sk-ant-api03-bench-capture-not-a-real-key-000000000000"
_SECRET_HEADERS = {"x-api-key", "authorization", "proxy-authorization", "cookie"}


def _sse(model: str) -> bytes:
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_01CaptureBench000000000000", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hello!"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 3}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    for name, data in events)


def _message(model: str) -> bytes:
    return json.dumps({
        "id": "msg_01CaptureBench000000000000", "type": "message", "role": "assistant",
        "model": model, "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 3},
    }).encode()


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.seen: list[str] = []
        self.refused: list[str] = []


def _handler(rec: _Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes, ctype: str = "application/json",
                   head: bool = False) -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.send_header("request-id", "req_bench_capture")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _read_body(self) -> bytes:
            n = int(self.headers.get("content-length") or 0)
            return self.rfile.read(n) if n else b""

        def do_CONNECT(self) -> None:
            with rec.lock:
                rec.refused.append(f"CONNECT {self.path}")
            self.close_connection = True
            self._reply(403, b"bench capture: no traffic leaves loopback\n", "text/plain")

        def _route(self, method: str) -> None:
            split = urlsplit(self.path)
            if split.hostname and split.hostname != LOOPBACK:  # proxied absolute-URI request
                with rec.lock:
                    rec.refused.append(f"{method} {self.path}")
                self._read_body()
                self._reply(403, b"bench capture: no traffic leaves loopback\n", "text/plain")
                return
            path = split.path
            body = self._read_body() if method == "POST" else b""
            with rec.lock:
                rec.seen.append(f"{method} {self.path} ({len(body)} bytes)")
            if method == "POST" and path.endswith("/v1/messages/count_tokens"):
                self._reply(200, b'{"input_tokens":10}')
            elif method == "POST" and path.endswith("/v1/messages"):
                try:
                    req = json.loads(body)
                except ValueError:
                    self._reply(400, b'{"type":"error","error":{"type":"invalid_request_error",'
                                b'"message":"bad json"}}')
                    return
                headers = {k.lower(): ("<redacted>" if k.lower() in _SECRET_HEADERS else v)
                           for k, v in self.headers.items()}
                with rec.lock:
                    rec.messages.append({"path": self.path, "headers": headers, "body": body})
                model = str(req.get("model", "claude-sonnet-4-5"))
                if req.get("stream"):
                    self._reply(200, _sse(model), "text/event-stream")
                else:
                    self._reply(200, _message(model))
            elif "/api/event_logging" in path:
                self._reply(204, b"")
            elif method in ("GET", "HEAD"):
                self._reply(200, b"{}", head=method == "HEAD")
            else:
                self._reply(404, b'{"type":"error","error":{"type":"not_found_error",'
                            b'"message":"capture server"}}')

        def do_GET(self) -> None:
            self._route("GET")

        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


def cli_path() -> Path:
    """The pinned CLI's native binary (same lookup as tests/lab/claude_cli.py)."""
    override = os.environ.get("CCGATE_CLAUDE_BIN")
    candidates = [Path(override)] if override else [
        *(PINNED_SCOPE / pkg / "claude" for pkg in _PLATFORM_PKGS),
        PINNED_SCOPE / "claude-code" / "bin" / "claude.exe",
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK) and path.stat().st_size > 1_000_000:
            return path
    raise BenchError(
        f"Claude Code CLI not found ({override or PINNED_SCOPE}); install the pinned version with "
        "`npm install --prefix .tools/claude @anthropic-ai/claude-code@2.1.330` "
        "(scripts/install-test-deps does this), or pass --large-body synthetic")


def _cli_env(home: Path, base: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base,
        "ANTHROPIC_API_KEY": FAKE_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        # Tool search off: the whole tool list travels inline in every request (what Claude
        # Code sends to hosts without tool search, and the heavier body). With it on, 2.1.330
        # defers most tools and the body is ~50 KB with ~12 tools.
        "ENABLE_TOOL_SEARCH": "false",
        # Everything not addressed to the base URL goes to the capture server as a proxy,
        # which refuses it: the CLI never reaches past loopback.
        "HTTPS_PROXY": base,
        "HTTP_PROXY": base,
        "NO_PROXY": LOOPBACK,
    }


def _run_print(cli: Path, cwd: Path, env: dict[str, str], rec: _Recorder,
               timeout: float) -> str:
    """`claude -p hi`: must exit 0 after the streamed answer."""
    try:
        out = subprocess.run([str(cli), "-p", "hi"], cwd=cwd, env=env, capture_output=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"claude -p did not finish within {timeout:.0f}s; "
                         f"requests seen: {rec.seen}") from e
    if out.returncode != 0 or not rec.messages:
        raise BenchError(
            f"claude -p exited {out.returncode} with {len(rec.messages)} /v1/messages captured; "
            f"stdout={out.stdout.decode(errors='replace')[-500:]!r} "
            f"stderr={out.stderr.decode(errors='replace')[-500:]!r} seen={rec.seen}")
    return out.stdout.decode(errors="replace").strip()[:200]


def _run_interactive(cli: Path, cwd: Path, env: dict[str, str], rec: _Recorder,
                     timeout: float) -> str:
    """`claude hi` in a pseudo-terminal, as a user starts it; stopped once the turn is sent.

    Onboarding, the folder-trust dialog and the API-key approval are pre-seeded in the temp
    HOME so the TUI goes straight to the first turn. Interactive sessions carry the tools
    print mode leaves out (AskUserQuestion, plan mode, ...).
    """
    home = Path(env["HOME"])
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "customApiKeyResponses": {"approved": [FAKE_KEY[-20:]], "rejected": []},
        "projects": {str(cwd): {"hasTrustDialogAccepted": True,
                                "hasCompletedProjectOnboarding": True, "allowedTools": []}},
    }))
    pid, fd = pty.fork()
    if pid == 0:  # child: become the CLI
        try:
            os.chdir(cwd)
            os.execve(str(cli), [str(cli), "hi"], env)
        finally:
            os._exit(127)
    screen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    screen = (screen + os.read(fd, 65536))[-20000:]
                except OSError:
                    break  # the CLI exited
            with rec.lock:
                done = any(m["body"].find(b'"tools"') >= 0 for m in rec.messages)
            if done:
                time.sleep(0.5)  # let it read the streamed answer
                break
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    if not rec.messages:
        raise BenchError(f"interactive claude sent no /v1/messages within {timeout:.0f}s; "
                         f"seen={rec.seen} screen tail={screen[-400:]!r}")
    return "interactive session stopped after the first turn"


def capture(workdir: Path, cache_dir: Path = CACHE_DIR, timeout: float = 120.0,
            mode: str = "interactive") -> dict[str, Any]:
    """Run the real CLI once and write body.json / headers.json / meta.json into `cache_dir`.

    mode "interactive" drives `claude hi` in a pty (the request a user's session sends);
    "print" runs `claude -p hi`. If interactive fails, print mode is used and meta says so.
    """
    cli = cli_path()
    rec = _Recorder()
    server = ThreadingHTTPServer((LOOPBACK, 0), _handler(rec))
    server.daemon_threads = True
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://{LOOPBACK}:{port}"
    notes: list[str] = []
    started = time.monotonic()
    try:
        for attempt in ([mode, "print"] if mode == "interactive" else [mode]):
            home = workdir / f"cli-home-{attempt}"
            cwd = workdir / f"cli-cwd-{attempt}"
            home.mkdir(parents=True, exist_ok=True)
            cwd.mkdir(parents=True, exist_ok=True)
            env = _cli_env(home, base)
            with rec.lock:
                rec.messages.clear()
            try:
                run = _run_interactive if attempt == "interactive" else _run_print
                output = run(cli, cwd, env, rec, timeout)
                mode = attempt
                break
            except BenchError as e:
                if attempt == "print":
                    raise
                notes.append(f"interactive capture failed, fell back to print mode: {e}")
    finally:
        server.shutdown()
        server.server_close()
    elapsed = time.monotonic() - started
    with rec.lock:
        main = max(rec.messages, key=lambda m: len(m["body"]))
        sizes = [len(m["body"]) for m in rec.messages]
    parsed = json.loads(main["body"])
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True,
                             timeout=30, env=env).stdout.strip()
    meta = {
        "cli": str(cli.relative_to(REPO)) if cli.is_relative_to(REPO) else str(cli),
        "cli_version": version,
        "mode": mode,
        "command": "claude hi (pty)" if mode == "interactive" else "claude -p hi",
        "env": {k: v for k, v in env.items() if k in ("ENABLE_TOOL_SEARCH",
                                                      "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")},
        "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cli_seconds": round(elapsed, 2),
        "cli_output": output,
        "notes": notes,
        "path": main["path"],
        "body_bytes": len(main["body"]),
        "tools": len(parsed.get("tools") or []),
        "tool_names": [t.get("name") for t in parsed.get("tools") or []],
        "model": parsed.get("model"),
        "stream": bool(parsed.get("stream")),
        "messages_requests": sizes,
        "requests_seen": rec.seen,
        "refused_non_loopback": rec.refused,
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "body.json").write_bytes(main["body"])
    (cache_dir / "headers.json").write_text(json.dumps(main["headers"], indent=2) + "\n")
    (cache_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def load_cached(cache_dir: Path = CACHE_DIR) -> tuple[bytes, dict[str, str], dict[str, Any]] | None:
    try:
        body = (cache_dir / "body.json").read_bytes()
        headers = json.loads((cache_dir / "headers.json").read_text())
        meta = json.loads((cache_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return body, headers, meta


def main() -> int:
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ccgate-capture-") as tmp:
        meta = capture(Path(tmp), mode=sys.argv[1] if len(sys.argv) > 1 else "interactive")
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
