"""The gateway's own answers: errors in the Anthropic envelope, local endpoints, auth,
observability and model routing."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory, authed_config, provider_config, readyz
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic

pytestmark = pytest.mark.lab

MSG = {"model": "claude-opus-4-8", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"}


@pytest.fixture
def gw_url(upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path) -> str:
    config = authed_config(upstream.url, gw_ca_file)
    config["server"]["max_body_bytes"] = 4096
    return gateway(config).url


def error_of(r: httpx.Response) -> tuple[int, str, str]:
    body = r.json()
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert r.headers["request-id"] == body["request_id"]
    return r.status_code, body["error"]["type"], body["error"]["message"]


@pytest.mark.parametrize(
    ("content", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"model":"m","max_tokens":1}', 400, "messages: Field required"),
        (b'{"model":"m","max_tokens":"1","messages":[]}', 400, "max_tokens: Expected `int`"),
        (b'{"model":null,"max_tokens":1,"messages":[]}', 400, "model: Expected `str`, got `null`"),
        (b"[1,2]", 400, "must be a JSON object"),
        (b'{"model":"m","max_tokens":1,"messages":["' + b"x" * 5000 + b'"]}', 413, "limit is 4096"),
    ],
)
def test_bad_input_is_a_named_4xx_and_never_reaches_upstream(
    content: bytes, status: int, fragment: str, gw_url: str, upstream: FakeAnthropic
) -> None:
    r = httpx.post(gw_url + "/v1/messages", content=content, headers=AUTH)
    got_status, _, message = error_of(r)
    assert got_status == status and fragment in message
    assert r.headers["x-should-retry"] == "false"
    assert upstream.requests_to("/v1/messages") == []


def test_body_over_limit_without_content_length(gw_url: str) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 1000

    r = httpx.post(gw_url + "/v1/messages", content=chunks(), headers=AUTH)
    assert error_of(r)[:2] == (413, "request_too_large")


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "missing gateway credential"),
        ({"x-api-key": "wrong-token-0000000000"}, "invalid gateway credential"),
        ({"authorization": f"Basic {CLIENT_TOKEN}"}, "missing gateway credential"),
    ],
)
def test_client_authentication(headers: dict[str, str], fragment: str, gw_url: str) -> None:
    r = httpx.post(gw_url + "/v1/messages", json=MSG, headers=headers)
    assert error_of(r)[:2] == (401, "authentication_error")
    assert fragment in error_of(r)[2]
    ok = httpx.post(gw_url + "/v1/messages", json=MSG,
                    headers={"authorization": f"Bearer {CLIENT_TOKEN}", "anthropic-version": "2023-06-01"})
    assert ok.status_code == 200


def test_local_endpoints(gw_url: str, upstream: FakeAnthropic) -> None:
    for method, path in [("GET", "/"), ("HEAD", "/"), ("GET", "/api/hello"), ("HEAD", "/api/hello")]:
        assert httpx.request(method, gw_url + path).status_code == 200, (method, path)
    r = httpx.post(gw_url + "/api/event_logging/v2/batch", json={"events": [1]})
    assert r.status_code == 204
    assert httpx.get(gw_url + "/healthz").json() == {"status": "ok"}
    assert upstream.requests_to("/api") == []  # nothing was forwarded
    assert error_of(httpx.get(gw_url + "/v2/nothing"))[:2] == (404, "not_found_error")
    status, _, message = error_of(httpx.get(gw_url + "/v1/messages", headers=AUTH))
    assert status == 405 and "POST" in message


def test_count_tokens_and_models_are_forwarded(gw_url: str, upstream: FakeAnthropic) -> None:
    r = httpx.post(gw_url + "/v1/messages/count_tokens?beta=true",
                   json={"model": "claude-opus-4-8", "messages": MSG["messages"]}, headers=AUTH)
    assert r.status_code == 200 and "input_tokens" in r.json()
    assert upstream.requests_to("/v1/messages/count_tokens")[-1].path.endswith("?beta=true")
    models = httpx.get(gw_url + "/v1/models?limit=1000", headers=AUTH)
    assert models.status_code == 200
    assert {"data", "has_more", "first_id", "last_id"} <= set(models.json())
    assert upstream.requests_to("/v1/models")[-1].header("x-api-key") == LAB_API_KEY


def test_models_from_config_and_alias_rewrite(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    config = authed_config(upstream.url, gw_ca_file)
    config["models"] = [
        {"match": "claude-team-default", "to": "anthropic/claude-opus-4-8", "display_name": "Team default"},
        {"match": "claude-*", "to": "anthropic"},
    ]
    gw = gateway(config)
    listed = httpx.get(gw.url + "/v1/models", headers=AUTH).json()
    assert [m["id"] for m in listed["data"]] == ["claude-team-default"]
    assert listed["data"][0]["display_name"] == "Team default"
    assert upstream.requests_to("/v1/models") == []
    r = httpx.post(gw.url + "/v1/messages", json={**MSG, "model": "claude-team-default", "x_extra": [1]},
                   headers=AUTH)
    assert r.status_code == 200
    sent = upstream.requests_to("/v1/messages")[-1].json()
    assert sent["model"] == "claude-opus-4-8" and sent["x_extra"] == [1]


def test_bring_your_own_key_passes_client_key(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    provider = provider_config(upstream.url, gw_ca_file)
    provider["api_keys"] = []
    gw = gateway({"providers": [provider]})
    r = httpx.post(gw.url + "/v1/messages", json=MSG,
                   headers={"x-api-key": LAB_API_KEY, "anthropic-version": "2023-06-01"})
    assert r.status_code == 200
    assert upstream.requests_to("/v1/messages")[-1].header("x-api-key") == LAB_API_KEY
    r = httpx.post(gw.url + "/v1/messages", json=MSG,
                   headers={"x-api-key": "sk-ant-wrong", "anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid x-api-key"


def test_access_log_and_metrics(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    gw = gateway(authed_config(upstream.url, gw_ca_file))
    httpx.post(gw.url + "/v1/messages", json=MSG, headers=AUTH)
    httpx.post(gw.url + "/v1/messages", json={**MSG, "model": "fail-429"}, headers=AUTH)
    with httpx.stream("POST", gw.url + "/v1/messages", json={**MSG, "stream": True}, headers=AUTH) as r:
        r.read()
    httpx.post(gw.url + "/v1/messages", json=MSG, headers={"x-api-key": "nope-nope-nope"})
    records = gw.wait_access_records(4)
    first = records[0]
    assert {k: first[k] for k in ("method", "path", "status", "model", "upstream", "client")} == {
        "method": "POST", "path": "/v1/messages", "status": 200, "model": "claude-opus-4-8",
        "upstream": "anthropic", "client": "tester"}
    assert first["latency_ms"] > 0 and first["bytes_in"] > 0 and first["bytes_out"] > 0
    assert "attempts" not in first  # one attempt: no trail (docs/observability.md)
    assert records[1]["status"] == 429 and records[2]["stream"] is True
    assert records[3]["status"] == 401 and "client" not in records[3]
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'ccgate_requests_total{provider="anthropic",route="messages",status="200"} 2.0' in metrics
    assert 'ccgate_upstream_errors_total{hop="http_429",provider="anthropic"} 1.0' in metrics
    assert "ccgate_request_duration_seconds_bucket" in metrics and "ccgate_open_streams 0.0" in metrics
    # No secret anywhere in what the gateway wrote.
    for secret in (CLIENT_TOKEN, LAB_API_KEY, "nope-nope-nope"):
        assert secret not in gw.log and secret not in metrics


def test_readyz(upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path) -> None:
    gw = gateway(authed_config(upstream.url, gw_ca_file))
    assert httpx.get(gw.url + "/readyz").json() == {"status": "ready"}  # no key: status only
    r = readyz(gw)
    assert r.status_code == 200 and r.json()["providers"]["anthropic"]["reachable"] is True
    assert r.json()["providers"]["anthropic"]["seen_seconds_ago"] >= 0
    assert LAB_API_KEY not in r.text and LAB_API_KEY[-4:] not in r.text
    down = gateway(authed_config("https://127.0.0.1:1", gw_ca_file))
    r = httpx.get(down.url + "/readyz")
    assert r.status_code == 503 and r.json() == {"status": "not ready"}
    assert "cannot connect" in json.dumps(readyz(down).json())


def test_readyz_probe_is_bounded_when_provider_never_answers(
    gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    # The kernel completes the TCP handshake (listen backlog) but nothing ever answers; the
    # provider's read timeout is 300 s, so only the probe's own bound can end this.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        gw = gateway(authed_config(f"https://127.0.0.1:{port}", gw_ca_file))
        r = readyz(gw, timeout=30)
    assert r.status_code == 503
    assert "timed out" in r.json()["providers"]["anthropic"]["error"]
