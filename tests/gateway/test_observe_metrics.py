"""Issue 19 metrics and logs on a real ``ccgate serve`` (lab): token counters by kind, time to
first token, attempts by outcome (a retry shows), build info, process metrics; the scrape passes
``promtool check metrics``; the access log carries tokens, the Claude Code session id and the
provider's request id; ``--log-format json`` makes every stderr line JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import ccgate
from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory, authed_config
from tests.gateway.harness import clean_env
from tests.lab.fake_anthropic import FakeAnthropic
from tests.observe.scrape import value
from tests.observe.tools import need

pytestmark = pytest.mark.lab

MODEL = "claude-opus-4-8"
MSG = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"}


def _stream_usage(body: str) -> dict[str, int]:
    usage: dict[str, int] = {}
    for line in body.splitlines():
        if line.startswith("data: "):
            event = json.loads(line[6:])
            if event["type"] == "message_start":
                usage.update(event["message"]["usage"])
            elif event["type"] == "message_delta":
                usage.update(event["usage"])
    return usage


def _traffic(gw_url: str, upstream: FakeAnthropic) -> list[dict[str, Any]]:
    """A plain answer, a stream and a 529-then-200 retry; returns the usages the client saw."""
    usages = [httpx.post(gw_url + "/v1/messages", json=MSG,
                         headers={**AUTH, "x-claude-code-session-id": "session-one"}).json()["usage"]]
    with httpx.stream("POST", gw_url + "/v1/messages", json={**MSG, "stream": True}, headers=AUTH) as r:
        usages.append(_stream_usage(r.read().decode()))
    upstream.fail_times = 1
    retried = httpx.post(gw_url + "/v1/messages", json=MSG, headers={**AUTH, "x-fake-scenario": "overloaded"})
    assert retried.status_code == 200, retried.text
    usages.append(retried.json()["usage"])
    return usages


def test_metrics_scrape(upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path) -> None:
    promtool = need("promtool")
    config = authed_config(upstream.url, gw_ca_file)
    config["routing"] = {"retries": {"base": 0, "cap": 0}}
    gw = gateway(config, args=["--log-format", "json", "--log-level", "debug"])
    usages = _traffic(gw.url, upstream)
    text = httpx.get(gw.url + "/metrics").text

    for kind, field in (("input", "input_tokens"), ("output", "output_tokens")):
        expected = sum(u[field] for u in usages)
        assert expected > 0
        assert value(text, "ccgate_tokens_total", kind=kind, model=MODEL, provider="anthropic") == expected
    # Four attempts for three requests: the retry is visible.
    assert value(text, "ccgate_upstream_attempts_total", provider="anthropic", outcome="success") == 3
    assert value(text, "ccgate_upstream_attempts_total", provider="anthropic", outcome="overloaded") == 1
    assert value(text, "ccgate_upstream_latency_seconds_count", provider="anthropic") == 4
    assert value(text, "ccgate_time_to_first_token_seconds_count", provider="anthropic") == 1  # the stream
    assert value(text, "ccgate_build_info", version=ccgate.__version__,
                 python=".".join(map(str, sys.version_info[:3]))) == 1
    assert value(text, "process_resident_memory_bytes") > 0
    assert "python_info" in text
    assert 'ccgate_rate_limited_total{client="tester"}' not in text  # no key names by default

    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=30)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr

    # Tracing is off: nothing is added to what goes upstream.
    assert all(r.header("traceparent") is None for r in upstream.requests)

    access: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while len(access) < 3 and time.monotonic() < deadline:  # log lines are JSON too: pick the access lines
        access = [r for r in gw.access_records() if "request_id" in r]
        time.sleep(0.05)
    first = access[0]
    assert first["input_tokens"] == usages[0]["input_tokens"]
    assert first["output_tokens"] == usages[0]["output_tokens"]
    assert first["session_id"] == "session-one"
    assert first["upstream_request_id"] == upstream.requests[0].request_id
    assert "session_id" not in access[1]
    assert access[2]["attempts"].startswith("anthropic#0 529")
    assert access[2]["upstream_request_id"] == upstream.requests[-1].request_id

    # --log-format json: every line on stderr is one JSON object, the banner included.
    lines = [line for line in gw.log.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]
    banner = [p for p in parsed if p.get("logger") == "ccgate.serve"]
    assert banner and banner[0]["message"].startswith("ccgate listening on")
    assert {"ts", "level", "logger", "message"} <= banner[0].keys() and banner[0]["level"] == "info"
    assert len(access) == 3 and len(parsed) > len(access)


def test_json_format_covers_the_refusal_too(tmp_path: Path) -> None:
    """A start refused (0.0.0.0 without client auth) still says why, as a JSON line."""
    config = tmp_path / "ccgate.yaml"
    config.write_text("providers:\n  - {name: anthropic, base_url: 'http://127.0.0.1:9'}\n")
    env = clean_env({"CCGATE_DB": str(tmp_path / "ccgate.db")})
    done = subprocess.run([sys.executable, "-m", "ccgate", "serve", "--config", str(config), "--host", "0.0.0.0",
                           "--port", "1", "--log-format", "json"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 2
    (line,) = [json.loads(x) for x in done.stderr.splitlines() if x.strip()]
    assert line["level"] == "error" and line["message"].startswith("refusing to listen on 0.0.0.0")
