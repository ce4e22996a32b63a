"""Issue 17 in the lab: paths the doctor used to call healthy, ranking, the worst case.

Every case is a real server on loopback (the scripted upstream of tests/lab/scripted.py, the
fake Anthropic upstream) or a network namespace the test creates; where it is cheap, the real
Claude Code CLI fails the same way and the doctor, given what it printed, agrees.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ccgate.doctor import Severity
from ccgate.doctor.render import render
from tests.doctor.conftest import DoctorRun
from tests.lab.claude_cli import run_claude
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic
from tests.lab.procs import free_port, stop_process, wait_port
from tests.lab.scripted import Auto, Callback, Hang, ScriptedRequest, ScriptedUpstream, Status
from tests.lab.squid import SquidProxy

pytestmark = pytest.mark.lab

KEY_ENV = {"ANTHROPIC_API_KEY": LAB_API_KEY}
Scripted = Callable[..., ScriptedUpstream]
BLOCK_PAGE = Status(200, b"<html><body><h1>Access to this site is blocked</h1></body></html>",
                    {"Content-Type": "text/html"})
BETA_400 = ("Unexpected value(s) `claude-code-20250219,interleaved-thinking-2025-05-14` for "
            "the `anthropic-beta` header. Please consult our documentation at "
            "docs.anthropic.com or try again without the header.")


@pytest.fixture
def onboarded_home(lab_home: Path) -> Path:
    (lab_home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    return lab_home


def printed_by_claude(base_url: str, **kw: Any) -> str:
    cli = run_claude("hi", base_url=base_url, max_retries=0, timeout=60, **kw)
    assert cli.returncode != 0, cli
    return cli.stdout + cli.stderr


# -- 1. a 2xx that is not the API ---------------------------------------------------------


async def test_html_200_is_an_intermediary_not_healthy(
    doctor: DoctorRun, scripted_upstream: Scripted, onboarded_home: Path,
) -> None:
    block = scripted_upstream(default=BLOCK_PAGE)
    report = await doctor(KEY_ENV, base_url=block.http_url)
    assert report.exit_code == 1
    root = report.findings[0]
    assert root.id == "http.intermediary_response"
    assert report.get("api.ok") is None
    assert any("malformed response (HTTP 200)" in line for line in root.fix)


async def test_html_200_on_the_first_run_check_is_an_intermediary(
    doctor: DoctorRun, scripted_upstream: Scripted, fake_anthropic: FakeAnthropic,
    lab_ca_file: Path,
) -> None:
    block = scripted_upstream(default=BLOCK_PAGE)
    pre = (block.http_url + "/api/hello", block.http_url + "/v1/oauth/hello")
    report = await doctor(KEY_ENV, base_url=fake_anthropic.url, ca_file=str(lab_ca_file),
                          preflight_urls=pre)
    assert report.exit_code == 1
    # the gateway path works, so the check that breaks is the root cause, naming the page
    root = report.findings[0]
    assert root.id == "claude.preflight_will_run" and root.severity is Severity.FAIL
    assert any("http.intermediary_response" in line for line in root.evidence)
    assert "hasCompletedOnboarding" in root.fix[0]
    assert report.get("http.intermediary_response") is not None


async def test_cli_html_200(claude_bin: Path, doctor: DoctorRun, scripted_upstream: Scripted,
                            onboarded_home: Path) -> None:
    block = scripted_upstream(default=BLOCK_PAGE)
    printed = printed_by_claude(block.http_url, api_key=LAB_API_KEY)
    assert "malformed response (HTTP 200)" in printed
    report = await doctor(KEY_ENV, base_url=block.http_url, explain=printed)
    assert report.findings[0].id == "http.intermediary_response"
    assert report.explanation is not None
    assert report.explanation.explained_by[0] == "http.intermediary_response"


# -- 2. Claude Code's request shape, beta rejection -----------------------------------------


def rejects_claude_code_betas(request: ScriptedRequest) -> Any:
    if "claude-code-20250219" in (request.header("anthropic-beta") or ""):
        return Status.anthropic_error(400, "invalid_request_error", BETA_400)
    return Auto()


async def test_gateway_rejecting_claude_code_betas(
    doctor: DoctorRun, scripted_upstream: Scripted, onboarded_home: Path,
) -> None:
    gateway = scripted_upstream(default=Callback(rejects_claude_code_betas))
    report = await doctor(KEY_ENV, base_url=gateway.http_url)
    assert report.exit_code == 1
    root = report.findings[0]
    assert root.id == "api.beta_rejected"
    assert "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1" in root.fix[0]
    sent = gateway.requests[0]
    assert sent.header("x-app") == "cli"
    assert sent.header("anthropic-dangerous-direct-browser-access") == "true"


@pytest.mark.parametrize("extra", [
    {"ANTHROPIC_MODEL": "claude-opus-5-5"},
    {"ANTHROPIC_MODEL": "claude-sonnet-4-5"},
    {"ANTHROPIC_MODEL": "claude-opus-5-5", "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS": "1"},
], ids=["opus-5-5", "sonnet-4-5", "experimental-off"])
async def test_doctor_sends_the_betas_the_installed_cli_sends(
    claude_bin: Path, doctor: DoctorRun, scripted_upstream: Scripted, onboarded_home: Path,
    extra: dict[str, str],
) -> None:
    upstream = scripted_upstream()
    run_claude("hi", base_url=upstream.http_url, api_key=LAB_API_KEY, max_retries=0, env=extra)
    cli_betas = upstream.requests[-1].header("anthropic-beta")
    report = await doctor({**KEY_ENV, **extra}, base_url=upstream.http_url,
                          claude_bin=str(claude_bin), claude_version=None)
    assert report.exit_code == 0, report.ids()
    doctor_betas = (upstream.requests[-1].header("anthropic-beta") or "").split(",")
    assert doctor_betas[-1] == "token-counting-2024-11-01"  # count_tokens adds it, as in CC
    assert ",".join(doctor_betas[:-1]) == cli_betas


async def test_cli_beta_rejection(claude_bin: Path, doctor: DoctorRun,
                                  scripted_upstream: Scripted, onboarded_home: Path) -> None:
    gateway = scripted_upstream(default=Callback(rejects_claude_code_betas))
    printed = printed_by_claude(gateway.http_url, api_key=LAB_API_KEY)
    assert "Unexpected value(s)" in printed
    report = await doctor(KEY_ENV, base_url=gateway.http_url, explain=printed)
    assert report.findings[0].id == "api.beta_rejected"
    assert report.explanation is not None
    assert report.explanation.explained_by[0] == "api.beta_rejected"


# -- 5. a gateway that wants a credential when none is set ----------------------------------


async def test_gateway_demands_a_credential(
    doctor: DoctorRun, scripted_upstream: Scripted, onboarded_home: Path,
) -> None:
    gateway = scripted_upstream(bearer_keys=["gateway-client-token-0123"])
    report = await doctor({}, base_url=gateway.http_url)
    assert report.exit_code == 1
    root = report.findings[0]
    assert root.id == "api.no_credential" and root.severity is Severity.FAIL
    assert "ANTHROPIC_AUTH_TOKEN" in root.fix[0]


async def test_cli_without_credential_against_a_gateway(
    claude_bin: Path, doctor: DoctorRun, scripted_upstream: Scripted, onboarded_home: Path,
) -> None:
    gateway = scripted_upstream(bearer_keys=["gateway-client-token-0123"])
    printed = printed_by_claude(gateway.http_url)
    assert "Not logged in" in printed
    report = await doctor({}, base_url=gateway.http_url, explain=printed)
    assert report.findings[0].id == "api.no_credential"
    assert report.explanation is not None
    assert report.explanation.explained_by == ["api.no_credential"]


# -- 4. the configured path ranks first ------------------------------------------------------


def closed_port_preflight() -> tuple[str, str]:
    port = free_port()  # nothing listens: the first-run check cannot connect
    return (f"https://api.anthropic.com:{port}/api/hello",
            f"https://platform.claude.com:{port}/v1/oauth/hello")


async def test_gateway_failure_outranks_the_first_run_check(
    doctor: DoctorRun, scripted_upstream: Scripted,
) -> None:
    gateway = scripted_upstream(default=Status(404, b"404 page not found",
                                               {"Content-Type": "text/plain"}))
    report = await doctor(KEY_ENV, base_url=gateway.http_url,
                          preflight_urls=closed_port_preflight())
    assert report.exit_code == 1
    assert report.findings[0].id == "api.wrong_path", report.ids()
    assert "net.tcp_blocked" in report.ids()  # still reported, after the gateway's finding


async def test_a_first_run_check_that_will_pass_comes_after_real_problems(
    doctor: DoctorRun, scripted_upstream: Scripted, fake_anthropic: FakeAnthropic,
    lab_ca_file: Path,
) -> None:
    gateway = scripted_upstream(default=Status.rate_limited(30, anthropic=True))
    pre = (fake_anthropic.host_url("api.anthropic.com") + "/api/hello",
           fake_anthropic.host_url("platform.claude.com") + "/v1/oauth/hello")
    report = await doctor(KEY_ENV, base_url=gateway.http_url, ca_file=str(lab_ca_file),
                          preflight_urls=pre)
    assert report.ids()[0] == "api.rate_limited", report.ids()
    assert report.get("claude.preflight_will_run") is not None
    assert report.exit_code == 0


# -- 8. a ccgate gateway whose own upstream fails ----------------------------------------------

GATEWAY_TOKEN = "ccgate-doctor-lab-token-0123456789"
GATEWAY_ADMIN_KEY = "ccgate-doctor-lab-admin-key-0123456789"  # /readyz's detail needs it


@pytest.fixture
def ccgate_behind_denying_proxy(squid_deny_proxy: SquidProxy, tmp_path: Path) -> Iterator[str]:
    """``ccgate serve`` whose only provider (api.anthropic.com) is reached through a Squid that
    denies every CONNECT: the gateway answers 502 naming the proxy hop."""
    port = free_port()
    config = tmp_path / "ccgate.yaml"
    config.write_text(
        f"server:\n  host: 127.0.0.1\n  port: {port}\n  auth:\n    tokens: [{GATEWAY_TOKEN}]\n"
        f"  admin:\n    key: {GATEWAY_ADMIN_KEY}\n"
        "providers:\n  - name: anthropic\n    base_url: https://api.anthropic.com\n"
        f"    api_keys: [{LAB_API_KEY}]\n    proxy: {squid_deny_proxy.url}\n")
    log = tmp_path / "gateway.log"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    gateway = subprocess.Popen([sys.executable, "-m", "ccgate", "serve", "--config", str(config)],
                               stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        wait_port(port, gateway, 30, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(gateway)


async def test_ccgate_gateway_names_its_failing_hop(
    doctor: DoctorRun, ccgate_behind_denying_proxy: str, onboarded_home: Path,
) -> None:
    # The gateway is on this machine: the doctor sends $CCGATE_ADMIN_KEY for /readyz's detail.
    report = await doctor({"ANTHROPIC_AUTH_TOKEN": GATEWAY_TOKEN, "CCGATE_ADMIN_KEY": GATEWAY_ADMIN_KEY},
                          base_url=ccgate_behind_denying_proxy)
    assert report.exit_code == 1
    root = report.findings[0]
    assert root.id == "gateway.upstream_failed", report.ids()
    assert "refused" in root.summary and "proxy" in root.summary
    assert "providers[].proxy" in root.fix[0]
    assert not any("retry later" in line.lower() for line in root.fix)
    assert any(line.startswith("< provider anthropic: unreachable") for line in root.evidence)
    assert GATEWAY_ADMIN_KEY not in report.to_json()
    # Without the admin key: the same finding, without the provider lines.
    report = await doctor({"ANTHROPIC_AUTH_TOKEN": GATEWAY_TOKEN}, base_url=ccgate_behind_denying_proxy)
    root = report.findings[0]
    assert root.id == "gateway.upstream_failed", report.ids()
    assert not any(line.startswith("< provider ") for line in root.evidence)


async def test_cli_ccgate_gateway_502(
    claude_bin: Path, doctor: DoctorRun, ccgate_behind_denying_proxy: str, onboarded_home: Path,
) -> None:
    printed = printed_by_claude(ccgate_behind_denying_proxy, auth_token=GATEWAY_TOKEN)
    assert "502" in printed
    report = await doctor({"ANTHROPIC_AUTH_TOKEN": GATEWAY_TOKEN},
                          base_url=ccgate_behind_denying_proxy, explain=printed)
    assert report.findings[0].id == "gateway.upstream_failed"
    assert report.explanation is not None
    assert report.explanation.explained_by[0] == "gateway.upstream_failed"


# -- 6. messages the doctor now decodes, and --explain agreeing with the run ---------------

OAUTH_TOKEN = "sk-ant-oat01-lab-expired-token-0123456789"
EXPIRED = ("OAuth token has expired. Please obtain a new token or refresh your existing token.")


def expired_oauth(request: ScriptedRequest) -> Any:
    if (request.header("authorization") or "").startswith("Bearer "):
        return Status.anthropic_error(401, "authentication_error", EXPIRED)
    return Status.anthropic_error(401, "authentication_error", "invalid x-api-key")


async def test_expired_oauth_token_fix_is_login(
    claude_bin: Path, doctor: DoctorRun, scripted_upstream: Scripted, onboarded_home: Path,
) -> None:
    api = scripted_upstream(default=Callback(expired_oauth))
    env = {"CLAUDE_CODE_OAUTH_TOKEN": OAUTH_TOKEN}
    printed = printed_by_claude(api.http_url, env=env)
    assert "OAuth token has expired" in printed
    report = await doctor(env, base_url=api.http_url, explain=printed)
    assert report.exit_code == 1
    root = report.findings[0]
    assert root.id == "api.oauth_expired"
    assert "/login" in root.fix[0] and "console.anthropic.com" not in root.fix[0]
    assert "oauth-2025-04-20" in (api.requests[0].header("anthropic-beta") or "")
    assert report.explanation is not None
    assert report.explanation.explained_by == ["api.oauth_expired"]
    assert "explained by the root cause below: [api.oauth_expired]" in render(report)
    assert OAUTH_TOKEN not in render(report) + report.to_json()


async def test_api_that_never_answers(doctor: DoctorRun, scripted_upstream: Scripted,
                                      onboarded_home: Path) -> None:
    api = scripted_upstream(default=Hang())
    report = await doctor(KEY_ENV, base_url=api.http_url, timeout=3.0,
                          explain="API Error: Request timed out.")
    assert report.exit_code == 1
    assert report.findings[0].id == "http.no_response"
    assert report.explanation is not None
    assert report.explanation.explained_by[0] == "http.no_response"


async def test_explain_after_all_checks_pass_exits_0(
    doctor: DoctorRun, fake_anthropic: FakeAnthropic, lab_ca_file: Path, onboarded_home: Path,
) -> None:
    report = await doctor(KEY_ENV, base_url=fake_anthropic.url, ca_file=str(lab_ca_file),
                          explain="API Error: Request timed out.")
    text = render(report)
    assert report.exit_code == 0 and "All checks passed" in text
    assert "did not reproduce it now" in text


# -- 7. specific fixes where a specific one is possible ---------------------------------------


async def test_base_url_ending_in_v1_messages(doctor: DoctorRun, fake_anthropic: FakeAnthropic,
                                              lab_ca_file: Path, onboarded_home: Path) -> None:
    base = fake_anthropic.url + "/v1/messages"
    report = await doctor(KEY_ENV, base_url=base, ca_file=str(lab_ca_file))
    assert report.exit_code == 1
    root = report.findings[0]
    assert root.id == "env.base_url_has_v1" and "/v1/messages" in root.summary
    assert f"ANTHROPIC_BASE_URL='{fake_anthropic.url}'" in root.fix[0]


def openai_server(request: ScriptedRequest) -> Any:
    """An OpenAI-compatible server (vLLM-like): models and chat, no Anthropic Messages."""
    if request.path.startswith("/v1/models"):
        return Status(200, {"object": "list", "data": [
            {"id": "qwen3-coder", "object": "model", "owned_by": "vllm"}]})
    if request.path.startswith("/v1/chat/completions"):
        return Auto()
    return Status(404, {"detail": "Not Found"})


async def test_openai_compatible_server_as_base_url(
    doctor: DoctorRun, scripted_upstream: Scripted, onboarded_home: Path,
) -> None:
    server = scripted_upstream(default=Callback(openai_server))
    report = await doctor(KEY_ENV, base_url=server.http_url)
    assert report.exit_code == 1
    root = report.findings[0]
    assert root.id == "api.openai_compatible", report.ids()
    assert "ccgate connect" in root.fix[0] and "openai-compatible" in root.fix[0]


async def test_cli_openai_compatible_server(
    claude_bin: Path, doctor: DoctorRun, scripted_upstream: Scripted, onboarded_home: Path,
) -> None:
    server = scripted_upstream(default=Callback(openai_server))
    printed = printed_by_claude(server.http_url, api_key=LAB_API_KEY)
    assert "issue with the selected model" in printed
    report = await doctor(KEY_ENV, base_url=server.http_url, explain=printed)
    assert report.findings[0].id == "api.openai_compatible"
    assert report.explanation is not None
    assert report.explanation.explained_by[0] == "api.openai_compatible"


async def test_socks_port_given_as_http(doctor: DoctorRun, socks_proxy: Any,
                                        onboarded_home: Path) -> None:
    url = f"http://127.0.0.1:{socks_proxy.port}"
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": url})
    assert report.exit_code == 1
    root = report.findings[0]
    assert root.id == "proxy.unreachable" and "SOCKS5 proxy, given as http://" in root.summary
    assert "cannot use a SOCKS proxy" in root.fix[0]


async def test_missing_and_wrong_proxy_password_have_different_fixes(
    doctor: DoctorRun, fake_anthropic: FakeAnthropic, squid_auth_proxy: SquidProxy,
    lab_ca_file: Path, onboarded_home: Path,
) -> None:
    user = squid_auth_proxy.username
    no_password = f"http://{user}@127.0.0.1:{squid_auth_proxy.port}"
    wrong = squid_auth_proxy.url_with_auth(password="wrong-pass")
    fixes = []
    for proxy_url in (no_password, wrong):
        report = await doctor({**KEY_ENV, "HTTPS_PROXY": proxy_url},
                              base_url=fake_anthropic.host_url(), ca_file=str(lab_ca_file))
        assert report.exit_code == 1
        root = report.findings[0]
        assert root.id == "proxy.auth_required", report.ids()
        fixes.append(root.fix[0])
    assert "Add the password" in fixes[0] and f"{user}:PASSWORD@" in fixes[0]
    assert "refused user" in fixes[1] and "PASSWORD@" not in fixes[1]


@pytest.fixture
def resets_after_client_hello() -> Iterator[int]:
    """A TCP port that reads the ClientHello and answers with a RST, like an SNI filter."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(4096)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


async def test_tls_reset_after_client_hello_points_at_sni_filtering(
    doctor: DoctorRun, resets_after_client_hello: int, onboarded_home: Path,
) -> None:
    base = f"https://gw.lab.example:{resets_after_client_hello}"
    report = await doctor(KEY_ENV, base_url=base, resolve={"gw.lab.example": "127.0.0.1"})
    assert report.exit_code == 1
    root = report.findings[0]
    assert root.id == "tls.handshake_failed"
    assert "ClientHello" in root.summary
    assert "SNI filtering" in root.fix[0] and "MTU" not in " ".join(root.fix)


async def test_skipped_rows_and_the_claude_row_when_the_first_run_check_hangs(
    doctor: DoctorRun, scripted_upstream: Scripted, squid_deny_proxy: SquidProxy,
    fake_anthropic: FakeAnthropic, lab_ca_file: Path,
) -> None:
    hang = scripted_upstream(default=Hang())
    pre = (hang.http_url + "/api/hello", hang.http_url + "/v1/oauth/hello")
    report = await doctor(KEY_ENV, base_url=fake_anthropic.url, ca_file=str(lab_ca_file),
                          preflight_urls=pre, timeout=2.0)
    claude_row = next(s for s in report.layers if s.layer == "claude")
    assert claude_row.status == "fail"  # a check that never finished did not pass
    assert report.findings[0].id == "claude.preflight_will_run"
    denied = await doctor({**KEY_ENV, "HTTPS_PROXY": squid_deny_proxy.url},
                          base_url=fake_anthropic.host_url(), ca_file=str(lab_ca_file),
                          preflight_urls=preflight_urls(fake_anthropic))
    skipped = [s.note for s in denied.layers if s.status == "skip"]
    assert skipped and all("preflight0" not in n and "api stopped" not in n for n in skipped)
    assert any("first-run check to api.anthropic.com stopped at proxy" in n for n in skipped)


def preflight_urls(up: FakeAnthropic) -> tuple[str, str]:
    return (up.host_url("api.anthropic.com") + "/api/hello",
            up.host_url("platform.claude.com") + "/v1/oauth/hello")
