"""The real Claude Code CLI signs in to a real ``ccgate serve`` with its own /login.

On 127.0.0.1 only: the test identity provider (tests/lab/oidc_idp.py), the fake Anthropic
upstream, an OTLP sink, ``ccgate serve`` with a ``login:`` section (a 2-minute session, so the
CLI refreshes at every start: it refreshes when less than 5 minutes remain), and the pinned
CLI in a fresh HOME whose user settings come from ``ccgate setup claude-code --login``.

1. Interactive under tmux: /login offers the gateway -> trust prompt -> device code -> the
   "browser" (httpx, following the IdP's redirects) approves -> "Signed in as" -> the prompt ->
   "say hi" is answered through ccgate; the managed settings were delivered and stored by the
   CLI, which sends their checksum back as If-None-Match (304). (2.1.330 does not recompute
   the checksum: a scratch run serving a wrong one saw it accepted; docs/login.md.)
2. ``claude -p`` with the stored credential: refresh, managed settings (304 on the checksum),
   the answer, OTLP accepted and relayed; a model the policy forbids; the gateway down at
   startup; the developer's key revoked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from ccgate.store import open_store
from tests.gateway.harness import Gateway, free_port
from tests.lab.claude_cli import claude_binary
from tests.lab.fake_anthropic import FakeAnthropic
from tests.lab.oidc_idp import ALICE, IdPServer
from tests.login.lab import approve_in_browser, login_gateway
from tests.setup.test_claude_code_e2e import Tmux


def _missing() -> str | None:
    if shutil.which("tmux") is None:
        return "tmux not installed (scripts/install-test-deps)"
    if claude_binary() is None:
        return "claude CLI not installed (scripts/install-test-deps)"
    return None


pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    # Locally a missing tool skips; under CI (which installs everything) it must fail.
    pytest.mark.skipif(_missing() is not None and not os.environ.get("CI"), reason=str(_missing())),
    pytest.mark.timeout(300),
]

ANSWER = "Hello from the fake Anthropic API."
PORT = free_port()
# As Anthropic's gateway does: the policy turns the CLI's OTLP export on, towards the gateway.
OTEL_ENV = {"CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{PORT}",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_LOGS_EXPORT_INTERVAL": "1000"}
POLICIES = [
    {"groups": ["engineering"], "settings": {"permissions": {"deny": ["WebFetch"]},
                                             "availableModels": ["opus", "sonnet", "haiku"], "env": OTEL_ENV}},
]


class Sink:
    """An OTLP/HTTP collector: records what the gateway relays."""

    def __init__(self) -> None:
        received: list[tuple[str, bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Lab:
    tmp: Path
    idp: IdPServer
    upstream: FakeAnthropic
    gateway: Gateway
    sink: Sink
    home: Path
    launcher: Path

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.gateway.log.splitlines() if line.startswith("{")]

    def claude_p(self, *args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        return subprocess.run(["env", *extra, str(self.launcher), "-p", *args], capture_output=True, text=True,
                              timeout=timeout, check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("login-lab")
    sink = Sink()
    with IdPServer() as idp, FakeAnthropic() as upstream:
        gateway = login_gateway(tmp, idp, upstream, ttl="2m", policies=POLICIES, port=PORT)
        config = (tmp / "ccgate.yaml").read_text()
        (tmp / "ccgate.yaml").write_text(config.replace("  session:", f"  telemetry:\n    forward_to: {sink.url}\n  session:"))
        gateway.start()
        home = tmp / "home"
        (home / "project").mkdir(parents=True)
        launcher = tmp / "claude.sh"
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
               "TERM": "xterm-256color", "DISABLE_AUTOUPDATER": "1"}
        launcher.write_text(
            "#!/bin/sh\n"
            f"cd '{home / 'project'}'\n"
            # Extra variables come in as "env K=V ... claude.sh": keep those named CLAUDE*/OTEL*.
            "exec env -i " + " ".join(f"{k}='{v}'" for k, v in env.items())
            + ' $(env | grep -E "^(CLAUDE_CODE_|OTEL_)" | tr "\\n" " ")'
            + f" '{claude_binary()}' \"$@\"\n"
        )
        launcher.chmod(0o755)
        try:
            yield Lab(tmp, idp, upstream, gateway, sink, home, launcher)
        finally:
            gateway.stop()
            sink.close()


def _setup_login(lab: Lab) -> None:
    """``ccgate setup claude-code --login URL`` writes what makes /login offer the gateway."""
    done = subprocess.run(
        [sys.executable, "-m", "ccgate", "setup", "claude-code", "--login", lab.gateway.url],
        capture_output=True, text=True, timeout=60, check=False, cwd=lab.home / "project",
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(lab.home), "LANG": "C.UTF-8",
             "CCGATE_CLAUDE_MANAGED_DIR": str(lab.tmp / "no-managed")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    settings = json.loads((lab.home / ".claude" / "settings.json").read_text())
    assert settings["forceLoginMethod"] == "gateway" and settings["forceLoginGatewayUrl"] == lab.gateway.url


# Screens of the first interactive run, in order; each with the keys that answer it.
_SCREENS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(r"Choose the text style"), ("Enter",)),
    (re.compile(r"Gateway:\s+http://127\.0\.0\.1:\d+\s*\n.*Enter to connect", re.S), ("Enter",)),
    (re.compile(r"Trust gateway 127\.0\.0\.1\?"), ("Up", "Enter")),
    (re.compile(r"Signed in to Cloud gateway as alice@example\.com"), ("Up", "Enter")),
    (re.compile(r"Connected to Cloud gateway"), ("Enter",)),
    (re.compile(r"Managed settings require approval"), ("Up", "Enter")),
    (re.compile(r"Security notes"), ("Enter",)),
    (re.compile(r"trust this folder"), ("Down", "Enter")),
]
_PROMPT = re.compile(r"^❯\s*$", re.MULTILINE)
_CODE = re.compile(r"Code:\s+([A-Z]{4}-[A-Z]{4})")


def _drive_login(lab: Lab, tmux: Tmux) -> list[str]:
    """Answer each screen until the prompt; approve the device code in the "browser"."""
    seen: list[str] = []
    approved = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        screen = tmux.screen()
        if "CLAUDE-EXITED" in screen:
            raise AssertionError(f"claude exited during login:\n{screen}")
        if _PROMPT.search(screen) and "trust this folder" not in screen:
            return seen
        code = _CODE.search(screen)
        if code and not approved:
            seen.append("device code")
            assert f"{lab.gateway.url}/device" in screen
            page = approve_in_browser(f"{lab.gateway.url}/device?user_code={code.group(1)}")
            assert "signed in as <strong>alice@example.com</strong>" in page
            approved = True
            continue
        for pattern, keys in _SCREENS:
            if pattern.search(screen):
                if not seen or seen[-1] != pattern.pattern:
                    seen.append(pattern.pattern)
                if keys[0] == "Up" and not re.search(r"❯\s*(Yes|\d\.\s*Yes)", screen):
                    tmux.keys("Up")
                elif keys[0] == "Down" and not re.search(r"❯\s*(\d\.\s*)?Yes, I trust", screen):
                    tmux.keys("Down")
                else:
                    tmux.keys("Enter")
                time.sleep(0.7)
                break
        else:
            time.sleep(0.3)
    raise AssertionError(f"no prompt after login; screens {seen}:\n{tmux.screen()}")


@pytest.fixture(scope="module")
def signed_in(lab: Lab) -> Iterator[list[str]]:
    _setup_login(lab)
    tmux = Tmux(f"ccgate-login-{os.getpid()}")
    try:
        tmux.start(f"{lab.launcher}; echo CLAUDE-EXITED-$?; sleep 600")
        seen = _drive_login(lab, tmux)
        for _ in range(5):  # keys typed while the prompt is still mounting can be lost
            tmux.keys("say hi")
            if "❯ say hi" in tmux.screen():
                break
            time.sleep(1)
        tmux.keys("Enter")
        tmux.wait(ANSWER, timeout=60)
    finally:
        tmux.close()  # the interactive CLI exits: the -p runs below own the credentials file
    yield seen


def test_interactive_login_device_code_and_chat(lab: Lab, signed_in: list[str]) -> None:
    assert "device code" in signed_in
    assert any("Trust gateway" in s for s in signed_in)
    credentials = json.loads((lab.home / ".claude" / ".credentials.json").read_text())
    gateway = credentials["enterpriseGateway"]
    assert gateway["url"] == lab.gateway.url and gateway["jwt"].startswith("eyJ")
    assert gateway["tokenEndpoint"] == f"{lab.gateway.url}/oauth/token" and gateway["idpRefreshToken"]
    assert credentials["gatewayTrust"] == {"127.0.0.1": "http-loopback"}
    # The CLI accepted the wrapped settings and stored the policy.
    stored = json.loads((lab.home / ".claude" / "remote-settings.json").read_text())
    assert stored == POLICIES[0]["settings"]
    lines = lab.log_lines()
    paths = [(line["method"], line["path"], line["status"]) for line in lines]
    assert ("POST", "/oauth/device_authorization", 200) in paths
    assert ("POST", "/oauth/token", 200) in paths  # the device grant, once approved
    assert ("GET", "/managed/settings", 200) in paths
    chat = [line for line in lines if line["path"] == "/v1/messages" and line["status"] == 200]
    assert chat and chat[-1]["client"] == "login-alice@example.com"
    assert lab.upstream.requests_to("/v1/messages")
    for line in lab.gateway.log.splitlines():  # no token in the gateway's output
        assert gateway["jwt"] not in line and gateway["idpRefreshToken"] not in line


def test_print_mode_refreshes_uses_304_and_sends_telemetry(lab: Lab, signed_in: list[str]) -> None:
    before = json.loads((lab.home / ".claude" / ".credentials.json").read_text())["enterpriseGateway"]
    start = len(lab.log_lines())
    done = lab.claude_p("say hi")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ANSWER in done.stdout
    after = json.loads((lab.home / ".claude" / ".credentials.json").read_text())["enterpriseGateway"]
    # The 2-minute session is always within the CLI's 5-minute window: it refreshed first.
    assert after["jwt"] != before["jwt"] and after["idpRefreshToken"] != before["idpRefreshToken"]
    assert any(path == "/token" and params.get("grant_type") == "refresh_token" for path, params in lab.idp.idp.requests)
    new = lab.log_lines()[start:]
    calls = [(line["method"], line["path"], line["status"]) for line in new]
    assert ("POST", "/oauth/token", 200) in calls
    assert ("GET", "/managed/settings", 304) in calls  # If-None-Match carried our checksum
    telemetry = [c for c in calls if c[1] in ("/v1/logs", "/v1/metrics")]
    assert telemetry and all(status == 200 for _, _, status in telemetry), calls
    deadline = time.monotonic() + 10
    while not lab.sink.received and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lab.sink.received and all(path in ("/v1/logs", "/v1/metrics") for path, _ in lab.sink.received)
    store = open_store(lab.gateway.db_path)
    try:
        by_key = {g.label: g.requests for g in store.usage_summary(since=None, by="key")}
    finally:
        store.close()
    assert by_key.get("login-alice@example.com", 0) >= 2


def test_a_model_outside_the_policy_is_refused(lab: Lab, signed_in: list[str]) -> None:
    lab.upstream.reset()
    done = lab.claude_p("say hi", "--model", "claude-instant-1.2", env={"CLAUDE_CODE_MAX_RETRIES": "0"})
    # Claude Code applies the pushed availableModels itself and falls back to an allowed model.
    assert done.returncode == 0 and ANSWER in done.stdout
    assert "restricted by your organization's settings" in done.stderr
    models = [json.loads(r.body)["model"] for r in lab.upstream.requests_to("/v1/messages")]
    assert models and "claude-instant-1.2" not in models
    # A client that ignores the policy (same session token) is refused by the gateway itself.
    jwt = json.loads((lab.home / ".claude" / ".credentials.json").read_text())["enterpriseGateway"]["jwt"]
    answer = httpx.post(f"{lab.gateway.url}/v1/messages?beta=true", timeout=10, json={
        "model": "claude-instant-1.2", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {jwt}", "anthropic-version": "2023-06-01"})
    assert answer.status_code == 400
    assert answer.json()["error"] == {"type": "invalid_request_error",
                                      "message": "model claude-instant-1.2 is not in your role's availableModels allowlist"}
    assert len(lab.upstream.requests_to("/v1/messages")) == len(models)


def test_gateway_down_at_startup_then_revocation(lab: Lab, signed_in: list[str]) -> None:
    lab.gateway.stop()
    try:
        down = lab.claude_p("say hi", timeout=60)
        # Claude Code never runs a signed-in session without its policy: it exits at once.
        assert down.returncode == 1
        assert "Couldn't load settings from Cloud gateway" in down.stdout + down.stderr
        # No policy for the developer's groups: 404, which the CLI takes as "no settings".
        config = yaml.safe_load(lab.gateway.config_path.read_text())
        original = lab.gateway.config_path.read_text()
        config["login"]["policies"] = [{"groups": ["contractors"], "settings": {"availableModels": ["haiku"]}}]
        lab.gateway.config_path.write_text(yaml.safe_dump(config))
        lab.gateway.start()
        no_policy = lab.claude_p("say hi")
        assert no_policy.returncode == 0 and ANSWER in no_policy.stdout, no_policy.stderr
        assert json.loads((lab.home / ".claude" / "remote-settings.json").read_text()) == {}
        assert ("GET", "/managed/settings", 404) in [(x["method"], x["path"], x["status"]) for x in lab.log_lines()]
        lab.gateway.stop()
        lab.gateway.config_path.write_text(original)
    finally:
        lab.gateway.start()
    assert lab.claude_p("say hi").returncode == 0
    revoke = subprocess.run([sys.executable, "-m", "ccgate", "keys", "revoke", "login-alice@example.com"],
                            capture_output=True, text=True, env={**os.environ, "CCGATE_DB": str(lab.gateway.db_path)},
                            timeout=30, check=False)
    assert revoke.returncode == 0, revoke.stderr
    time.sleep(1.5)  # the running gateway's key cache polls the store every second
    refused = lab.claude_p("say hi")
    assert refused.returncode == 1
    assert "sign in again with /login" in refused.stdout + refused.stderr
    assert ALICE.email  # the developer's next /login creates a fresh key (tests/login/test_flow.py)
