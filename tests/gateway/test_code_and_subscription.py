"""The real Claude Code CLI with a Claude subscription through the gateway, and ``ccgate code``
starting a gateway in the background and handing over to ``claude``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from ccgate.store import open_store
from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory, authed_config
from tests.gateway.harness import free_port
from tests.lab.certs import LabPKI
from tests.lab.claude_cli import claude_binary, clean_env, run_claude
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic

pytestmark = pytest.mark.lab

# A stand-in: the pinned CLI sends CLAUDE_CODE_OAUTH_TOKEN as `Authorization: Bearer`, as it
# does a subscription login's token.
OAUTH_TOKEN = "sk-ant-oat01-stand-in-subscription-token-0123456789-TEST"


@pytest.fixture
def subscription_upstream(gw_pki: LabPKI) -> Iterator[FakeAnthropic]:
    """An Anthropic that accepts only the subscription's token, as Bearer."""
    with FakeAnthropic(gw_pki.server_context(), expected_api_key=OAUTH_TOKEN, accept_bearer=True) as fake:
        yield fake


def test_subscription_login_passes_through_and_usage_is_the_gateway_keys(
    subscription_upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    upstream = subscription_upstream
    upstream.text = "Subscription path works."
    gw = gateway(authed_config(upstream.url, gw_ca_file))  # the provider has a key of its own too
    result = run_claude("Say the magic words", base_url=gw.url, max_retries=0, timeout=90, env={
        "CLAUDE_CODE_OAUTH_TOKEN": OAUTH_TOKEN,
        "ANTHROPIC_CUSTOM_HEADERS": f"x-ccgate-key: {CLIENT_TOKEN}",
    })
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Subscription path works." in result.stdout

    (sent,) = [r for r in upstream.requests_to("/v1/messages") if "count_tokens" not in r.path]
    assert sent.header("authorization") == f"Bearer {OAUTH_TOKEN}"  # byte for byte
    assert "oauth-" in (sent.header("anthropic-beta") or "")
    assert sent.header("x-api-key") is None and sent.header("x-ccgate-key") is None
    record = next(r for r in gw.wait_access_records(1) if r["path"] == "/v1/messages")
    assert record["status"] == 200 and record["client"] == "tester"
    gw.stop()  # the usage recorder commits on shutdown
    store = open_store(gw.db_path, create=False)
    try:
        groups = store.usage_summary(since=None, by="key")
    finally:
        store.close()
    assert [(g.group, g.requests) for g in groups] == [("config:tester", 1)]
    for secret in (CLIENT_TOKEN, OAUTH_TOKEN, LAB_API_KEY):
        assert secret not in gw.log


def test_setup_subscription_settings_work_with_the_real_cli(
    subscription_upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path, tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text('{"env": {"ANTHROPIC_CUSTOM_HEADERS": "x-team: blue"}}')
    gw = gateway(authed_config(subscription_upstream.url, gw_ca_file))
    setup = subprocess.run(
        [sys.executable, "-m", "ccgate", "setup", "claude-code", "--subscription", "--gateway", gw.url,
         "--key", CLIENT_TOKEN, "--no-verify"],
        env=clean_env(home, {"CCGATE_CLAUDE_MANAGED_DIR": str(tmp_path / "managed")}), cwd=home,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    assert setup.returncode == 0, setup.stderr
    assert CLIENT_TOKEN not in setup.stdout + setup.stderr
    # The settings alone point Claude Code at the gateway (no ANTHROPIC_BASE_URL given here).
    result = run_claude("Say hi", base_url="", home=home, max_retries=0, timeout=90,
                        env={"CLAUDE_CODE_OAUTH_TOKEN": OAUTH_TOKEN})
    assert result.returncode == 0, result.stdout + result.stderr
    sent = subscription_upstream.requests_to("/v1/messages")[-1]
    assert sent.header("authorization") == f"Bearer {OAUTH_TOKEN}"
    assert sent.header("x-team") == "blue" and sent.header("x-ccgate-key") is None
    record = next(r for r in gw.wait_access_records(1) if r["path"] == "/v1/messages")
    assert record["client"] == "tester"


def _code_env(tmp_path: Path, bin_dir: Path, config: Path, **extra: str) -> dict[str, str]:
    env = clean_env(tmp_path / "home", {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "CCGATE_CONFIG": str(config),
        "CCGATE_STATE_DIR": str(tmp_path / "state"),
        "CCGATE_DB": str(tmp_path / "ccgate.db"),
        **extra,
    })
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def _write_config(tmp_path: Path, upstream: FakeAnthropic, ca_file: Path) -> tuple[Path, str]:
    port = free_port()
    config = authed_config(upstream.url, ca_file)
    config["server"]["port"] = port
    path = tmp_path / "ccgate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, f"http://127.0.0.1:{port}"


@pytest.fixture
def stop_started_gateway(tmp_path: Path) -> Iterator[None]:
    yield
    pid_file = tmp_path / "state" / "gateway.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def _ccgate_code(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccgate", "code", *args], env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90, check=False)


def test_ccgate_code_starts_a_gateway_and_passes_args_env_and_status(
    tmp_path: Path, upstream: FakeAnthropic, gw_ca_file: Path, stop_started_gateway: None,
) -> None:
    config, url = _write_config(tmp_path, upstream, gw_ca_file)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_claude = bin_dir / "claude"
    fake_claude.write_text('#!/bin/sh\nprintf "%s\\n" "$ANTHROPIC_BASE_URL" "$ANTHROPIC_AUTH_TOKEN" '
                           '"${HTTPS_PROXY-none}" "${ANTHROPIC_API_KEY-none}" "$@" > "$CLAUDE_OUT"\nexit 7\n')
    fake_claude.chmod(0o755)
    out = tmp_path / "claude-saw.txt"
    env = _code_env(tmp_path, bin_dir, config, CLAUDE_OUT=str(out), HTTPS_PROXY="http://127.0.0.1:9",
                    ANTHROPIC_API_KEY="sk-ant-shell-key-000000000000")
    first = _ccgate_code(["-p", "hi there", "--model", "x"], env, tmp_path)
    assert first.returncode == 7, first.stderr
    assert out.read_text().splitlines() == [url, CLIENT_TOKEN, "none", "none", "-p", "hi there", "--model", "x"]
    assert "started the gateway" in first.stderr and CLIENT_TOKEN not in first.stderr + first.stdout
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}  # it keeps running
    assert (tmp_path / "state" / "gateway.log").exists()

    second = _ccgate_code(["--help"], env, tmp_path)  # the running gateway is reused
    assert second.returncode == 7 and "started" not in second.stderr
    assert out.read_text().splitlines()[4:] == ["--help"]


def test_ccgate_code_runs_the_real_claude(
    tmp_path: Path, upstream: FakeAnthropic, gw_ca_file: Path, stop_started_gateway: None,
) -> None:
    binary = claude_binary()
    if binary is None:
        pytest.skip("claude CLI not installed: run scripts/install-test-deps")
    upstream.text = "ccgate code works."
    config, _ = _write_config(tmp_path, upstream, gw_ca_file)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").symlink_to(binary)
    env = _code_env(tmp_path, bin_dir, config, CLAUDE_CODE_MAX_RETRIES="0")
    result = _ccgate_code(["-p", "Say the magic words"], env, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert "ccgate code works." in result.stdout
    sent = upstream.requests_to("/v1/messages")[-1]
    assert sent.header("x-api-key") == LAB_API_KEY
    assert not (tmp_path / "home" / ".claude" / "settings.json").exists()  # no file was written
