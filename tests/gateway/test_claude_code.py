"""The real Claude Code CLI (pinned) through ccgate, while ccgate reaches the provider
through an authenticating Squid. Claude Code itself runs with no proxy variables."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory, authed_config
from tests.gateway.harness import Gateway
from tests.lab.claude_cli import PINNED_VERSION, claude_matrix, run_claude
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic
from tests.lab.squid import SquidProxy

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def corp_proxy() -> Iterator[SquidProxy]:
    with SquidProxy(mode="basic") as proxy:
        yield proxy


def test_claude_p_streams_answer_through_gateway_and_squid(
    claude_version_bin: tuple[str, Path], upstream: FakeAnthropic, corp_proxy: SquidProxy,
    gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    """Once per Claude Code version of the matrix (tests/lab/claude_cli.claude_matrix); the
    pinned version with each credential variable, the others alternating, to keep time modest."""
    version, binary = claude_version_bin
    matrix = claude_matrix()
    credentials = ["auth_token", "api_key"] if version == PINNED_VERSION else [
        ("auth_token", "api_key")[matrix.index(version) % 2]]
    upstream.text = "Gateway path works: 42."
    for credential in credentials:
        upstream.reset()
        gw = gateway(authed_config(upstream.host_url("api.anthropic.com"), gw_ca_file,
                                   proxy=corp_proxy.url_with_auth()))
        check_one_run(credential, version, binary, upstream, corp_proxy, gw)


def check_one_run(credential: str, version: str, binary: Path, upstream: FakeAnthropic, corp_proxy: SquidProxy,
                  gw: Gateway) -> None:
    result = run_claude("Say the magic words", base_url=gw.url, max_retries=0, timeout=90, binary=binary,
                        **{credential: CLIENT_TOKEN})  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr
    assert "Gateway path works: 42." in result.stdout

    (sent,) = [r for r in upstream.requests_to("/v1/messages") if "count_tokens" not in r.path]
    assert sent.path == "/v1/messages?beta=true"
    assert sent.json()["stream"] is True
    assert "claude-code-20250219" in (sent.header("anthropic-beta") or "")
    assert sent.header("user-agent", ).startswith(f"claude-cli/{version} ")  # type: ignore[union-attr]
    assert sent.header("x-api-key") == LAB_API_KEY and sent.header("authorization") is None
    assert sent.json()["system"][0]["text"].startswith("x-anthropic-billing-header")
    record = messages_record(gw)
    assert record["status"] == 200 and record["stream"] is True and record["client"] == "tester"
    for secret in (CLIENT_TOKEN, LAB_API_KEY, corp_proxy.password):
        assert secret not in gw.log


def messages_record(gw: Gateway, timeout: float = 5.0) -> dict[str, Any]:
    """The access-log line of the /v1/messages request (lines are written every 0.2 s, and some
    versions send other requests first, e.g. telemetry)."""
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in gw.access_records() if r["path"] == "/v1/messages"]
        if records:
            return records[0]
        assert time.monotonic() < deadline, gw.log[-2000:]
        time.sleep(0.05)
