"""``--print-env`` output, and the check against a live (loopback) gateway stand-in."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .conftest import Home

pytestmark = pytest.mark.lab

KEY = "sk-gw-test-0123456789abcdef"
TRICKY = "to'k\"en $HOME `x` \\n"


def test_print_env_bash_evaluates_to_the_exact_values(home: Home, cli: Any) -> None:
    r = cli("--print-env", "bash", "--key", TRICKY)
    assert r.code == 0
    assert "unset ANTHROPIC_API_KEY" in r.out
    assert not home.settings.exists() and not home.global_config.exists()
    assert not (home.root / ".claude").exists()
    script = r.out + 'printf "%s|%s" "$ANTHROPIC_BASE_URL" "$ANTHROPIC_AUTH_TOKEN"'
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": "x"},
    )
    assert done.stdout == f"http://127.0.0.1:4545|{TRICKY}"
    assert "nothing was written" in r.err


@pytest.mark.skipif(shutil.which("zsh") is None and not os.environ.get("CI"), reason="zsh not installed")
def test_print_env_zsh(home: Home, cli: Any) -> None:
    r = cli("--print-env", "zsh", "--key", TRICKY)
    done = subprocess.run(
        ["zsh", "-fc", r.out + 'print -rn -- "$ANTHROPIC_AUTH_TOKEN"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == TRICKY


def test_print_env_fish_and_powershell_quoting(home: Home, cli: Any) -> None:
    fish = cli("--print-env", "fish", "--key", "a'b\\c").out
    assert "set -e ANTHROPIC_API_KEY\n" in fish
    assert "set -gx ANTHROPIC_AUTH_TOKEN 'a\\'b\\\\c'\n" in fish
    ps = cli("--print-env", "powershell", "--key", "a'b").out
    assert "Remove-Item Env:ANTHROPIC_API_KEY -ErrorAction SilentlyContinue\n" in ps
    assert "$env:ANTHROPIC_AUTH_TOKEN = 'a''b'\n" in ps
    assert "$env:ANTHROPIC_BASE_URL = 'http://127.0.0.1:4545'\n" in ps


def test_print_env_adds_no_proxy_and_models(home: Home, cli: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    out = cli("--print-env", "bash", "--haiku-model", "small").out
    assert "export NO_PROXY='localhost,127.0.0.1'\n" in out
    assert "export no_proxy='localhost,127.0.0.1'\n" in out
    assert "export ANTHROPIC_DEFAULT_HAIKU_MODEL='small'\n" in out
    assert "export ANTHROPIC_AUTH_TOKEN='ccgate-local'\n" in out


def test_print_env_auto_detects_shell(home: Home, cli: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("SHELL", "/usr/bin/fish")
    assert cli("--print-env", "--key", KEY).out.startswith("set -e ")


class _Gateway(BaseHTTPRequestHandler):
    token = KEY

    def do_HEAD(self) -> None:
        self.send_response(200 if self.path == "/api/hello" else 404)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        ok = self.headers.get("authorization") == f"Bearer {self.token}"
        body = b'{"data":[],"has_more":false}' if ok else b'{"type":"error"}'
        self.send_response(200 if ok else 401)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        ok = self.headers.get("authorization") == f"Bearer {self.token}"
        body = (
            b'{"input_tokens":3}'
            if ok
            else b'{"type":"error","error":{"type":"authentication_error","message":"invalid"}}'
        )
        self.send_response(200 if ok else 401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["doctor", "direct"])
def checker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each check test through the doctor and through the direct fallback."""
    if request.param == "direct":
        from ccgate.cli import setup as cli_setup

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("doctor unavailable")

        monkeypatch.setattr(cli_setup, "verify_with_doctor", broken)
    return str(request.param)


def test_verify_passes_against_a_gateway(home: Home, cli: Any, gateway: str, checker: str) -> None:
    r = cli("--gateway", gateway, "--key", KEY)
    assert r.code == 0, r.out
    assert "Claude Code is ready" in r.out
    if checker == "direct":
        assert "the doctor failed: RuntimeError" in r.out
        assert "ok   gateway: HEAD" in r.out and "ok   key:" in r.out
    else:
        assert "Check (ccgate doctor)" in r.out and "ok   api.ok" in r.out
    r = cli("--gateway", gateway, "--key", KEY)  # a no-op run still checks
    assert r.code == 0 and "Nothing to change" in r.out and "Claude Code is ready" in r.out
    assert KEY not in r.out + r.err


def test_verify_reports_a_rejected_key(home: Home, cli: Any, gateway: str, checker: str) -> None:
    r = cli("--gateway", gateway, "--key", "wrong-key-000000000000")
    assert r.code == 1
    if checker == "direct":
        assert "FAIL key: GET /v1/models -> 401" in r.out and "--key" in r.out
    else:
        assert "FAIL api.invalid_key" in r.out
    assert "wrong-key-000000000000" not in r.out
    assert home.settings.exists()  # written; only the check failed


def test_verify_reports_no_gateway(home: Home, cli: Any, checker: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    port = server.server_address[1]
    server.server_close()  # a port nobody listens on
    r = cli("--gateway", f"http://127.0.0.1:{port}", "--key", KEY)
    assert r.code == 1 and "FAIL " in r.out
    if checker == "direct":
        assert "ccgate serve" in r.out


def test_verify_flags_a_proxy_route(home: Home, cli: Any, monkeypatch: Any, gateway: str, checker: str) -> None:
    # A managed file drops the gateway from NO_PROXY: the proxy (nothing listens) is used.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    (home.managed / "managed-settings.json").write_text(
        '{"env": {"NO_PROXY": "corp.example", "no_proxy": "corp.example"}}'
    )
    r = cli("--gateway", gateway, "--key", KEY)
    assert r.code == 1
    assert "managed settings" in r.out  # setup's own warning names the file that wins
    if checker == "direct":
        assert "FAIL route" in r.out
