"""Claude Code -> ccgate -> Anthropic: the passthrough contract, against a real TLS upstream."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory, authed_config, readyz
from tests.gateway.harness import Gateway
from tests.lab.certs import LabPKI
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic
from tests.lab.sdk import sdk_client

pytestmark = pytest.mark.lab

MSG = {"model": "claude-opus-4-8", "max_tokens": 64,
       "messages": [{"role": "user", "content": "hello"}]}
# The contract holds for both upstream clients: ccgate's own (the default for a provider reached
# directly) and aiohttp (behind proxies, or with http_client: aiohttp).
BOTH_CLIENTS = pytest.mark.parametrize("http_client", ["auto", "aiohttp"])


def sdk(base_url: str, key: str, pki: LabPKI | None = None) -> anthropic.Anthropic:
    if pki is not None:
        return sdk_client(base_url, verify=pki.client_context(), api_key=key)
    # Through the gateway: the SDK's own default wiring (it sends the key as a Bearer token).
    return anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)


def strip_ids(value: Any) -> Any:
    """Ids and request ids differ per request; everything else must match exactly."""
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k not in ("id", "_request_id", "signature")}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


@pytest.mark.parametrize("scenario", ["text", "tool_use", "thinking"])
def test_sdk_message_identical_to_direct(
    scenario: str, upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
    gw_pki: LabPKI,
) -> None:
    upstream.scenario = scenario
    gw = gateway(authed_config(upstream.url, gw_ca_file))
    direct = sdk(upstream.url, LAB_API_KEY, gw_pki).messages.create(**MSG)  # type: ignore[call-overload]
    through = sdk(gw.url, CLIENT_TOKEN).messages.create(**MSG)  # type: ignore[call-overload]
    assert strip_ids(through.model_dump()) == strip_ids(direct.model_dump())
    # The upstream saw the provider key, never the client's gateway token.
    seen = upstream.requests_to("/v1/messages")[-1]
    assert seen.header("x-api-key") == LAB_API_KEY
    assert CLIENT_TOKEN not in str(seen.headers)


@pytest.mark.parametrize("scenario", ["text", "tool_use", "thinking"])
def test_sdk_stream_events_identical_to_direct(
    scenario: str, upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
    gw_pki: LabPKI,
) -> None:
    upstream.scenario = scenario
    gw = gateway(authed_config(upstream.url, gw_ca_file))

    def collect(client: anthropic.Anthropic) -> tuple[list[Any], Any]:
        with client.messages.stream(**MSG) as stream:  # type: ignore[arg-type]
            events = [strip_ids(e.model_dump()) for e in stream]
            final = strip_ids(stream.get_final_message().model_dump())
        return events, final

    direct = collect(sdk(upstream.url, LAB_API_KEY, gw_pki))
    through = collect(sdk(gw.url, CLIENT_TOKEN))
    assert through == direct
    assert any(e["type"] == "content_block_delta" for e in through[0])


@BOTH_CLIENTS
def test_body_and_headers_forwarded_byte_for_byte(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path, http_client: str
) -> None:
    gw = gateway(authed_config(upstream.url, gw_ca_file, http_client=http_client))
    # Odd spacing, key order, unicode escapes and unknown fields must all survive untouched.
    body = (b'{ "max_tokens":64 ,"model" : "claude-sonnet-4-5-20250929", "future_field":{"x":[1,2.50]},'
            b'"messages":[{"role":"user","content":"caf\\u00e9 \xe2\x98\x95"}],\n"context_management":{"edits":[]}}')
    headers = {
        "x-api-key": CLIENT_TOKEN, "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "x-claude-code-session-id": "sess-1", "x-custom-thing": "kept",
        "connection": "keep-alive, x-drop-me", "x-drop-me": "hop", "proxy-authorization": "Basic eA==",
        "user-agent": "claude-cli/2.1.330 (external, cli)",
    }
    r = httpx.post(gw.url + "/v1/messages?beta=true", content=body, headers=headers)
    assert r.status_code == 200, r.text
    seen = upstream.requests_to("/v1/messages")[-1]
    assert seen.body == body
    assert seen.path == "/v1/messages?beta=true"
    assert seen.header("anthropic-beta") == headers["anthropic-beta"]
    assert seen.header("anthropic-version") == "2023-06-01"
    assert seen.header("x-claude-code-session-id") == "sess-1"
    assert seen.header("x-custom-thing") == "kept"
    assert seen.header("user-agent") == headers["user-agent"]
    for hop in ("x-drop-me", "proxy-authorization"):
        assert seen.header(hop) is None, hop
    assert seen.header("authorization") is None
    assert seen.header("x-api-key") == LAB_API_KEY
    assert r.headers["request-id"].startswith("req_")
    assert len(r.headers.get_list("date")) == 1


@BOTH_CLIENTS
def test_no_headers_invented_for_the_client(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path, http_client: str
) -> None:
    """A client that sends no user-agent, accept or accept-encoding: none reach the upstream
    (an invented accept-encoding could get it a compressed body it never asked for)."""
    gw = gateway(authed_config(upstream.url, gw_ca_file, http_client=http_client))
    body = json.dumps(MSG).encode()
    conn = http.client.HTTPConnection("127.0.0.1", int(gw.url.rsplit(":", 1)[1]), timeout=30)
    conn.putrequest("POST", "/v1/messages", skip_accept_encoding=True)
    for name, value in (("x-api-key", CLIENT_TOKEN), ("content-type", "application/json"),
                        ("anthropic-version", "2023-06-01"), ("content-length", str(len(body)))):
        conn.putheader(name, value)
    conn.endheaders(body)
    assert conn.getresponse().status == 200
    conn.close()
    seen = upstream.requests_to("/v1/messages")[-1]
    for invented in ("user-agent", "accept", "accept-encoding"):
        assert seen.header(invented) is None, invented


def test_gzip_answer_relayed_untouched_and_its_usage_read(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    """Claude Code accepts br and zstd too; the gateway narrows that to what it can inflate,
    relays the compressed bytes untouched, and still records the answer's tokens."""
    upstream.gzip = True
    gw = gateway(authed_config(upstream.url, gw_ca_file))
    with httpx.Client() as client:
        r = client.post(gw.url + "/v1/messages", json=MSG,
                        headers={"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01",
                                 "accept-encoding": "gzip, deflate, br, zstd"})
        raw = r.read()
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    seen = upstream.requests_to("/v1/messages")[-1]
    assert seen.header("accept-encoding") == "gzip, deflate"
    # httpx decoded it; the bytes on the wire must be exactly what upstream sent.
    assert gzip.decompress(seen.response_body) == raw
    expected = (r.json()["usage"]["input_tokens"], r.json()["usage"]["output_tokens"])
    rows: list[tuple[int, int]] = []
    for _ in range(500):  # committed within ~200 ms; a bound for a hung test, not a speed assertion
        if gw.db_path.exists():
            with sqlite3.connect(gw.db_path) as db:
                rows = db.execute("SELECT input_tokens, output_tokens FROM usage").fetchall()
        if rows:
            break
        time.sleep(0.02)
    assert rows == [expected] and expected[1] > 0


@pytest.mark.parametrize(
    ("model", "status", "error_type", "headers"),
    [
        ("fail-403", 403, None, []),
        ("fail-404", 404, "not_found_error", []),
        ("fail-429", 429, "rate_limit_error", ["retry-after", "anthropic-ratelimit-requests-limit"]),
        ("fail-529", 529, "overloaded_error", []),
        ("fail-400", 400, "invalid_request_error", []),
    ],
)
def test_upstream_errors_pass_through_unchanged(
    model: str, status: int, error_type: str | None, headers: list[str],
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    gw = gateway(authed_config(upstream.url, gw_ca_file))
    r = httpx.post(gw.url + "/v1/messages", json={**MSG, "model": model},
                   headers={"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"})
    seen = upstream.requests_to("/v1/messages")[-1]
    assert r.status_code == status
    assert r.content == seen.response_body
    if error_type:
        assert r.json()["error"]["type"] == error_type
    upstream_headers = {k.lower(): v for k, v in seen.response_headers.items()}
    for name in [*headers, "request-id"]:
        assert r.headers[name] == upstream_headers[name]


def test_provider_refusing_the_gateway_key_is_not_relayed_as_the_clients_401(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    # A relayed 401 would make Claude Code tell its user to log in again, but it is the
    # gateway's own provider key that is wrong: 502, not retried, naming the provider.
    gw = gateway(authed_config(upstream.url, gw_ca_file))
    r = httpx.post(gw.url + "/v1/messages", json={**MSG, "model": "fail-401"},
                   headers={"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"})
    assert r.status_code == 502 and r.headers["x-should-retry"] == "false"
    message = r.json()["error"]["message"]
    assert "provider 'anthropic' refused the gateway's key" in message and "/readyz" in message
    assert LAB_API_KEY not in r.text and LAB_API_KEY not in gw.log
    assert len(upstream.requests_to("/v1/messages")) == 1  # disabled at once, not retried
    ready = readyz(gw).json()
    assert ready["status"] == "not ready"
    assert ready["providers"]["anthropic"]["keys"][0]["state"] == "disabled"


@BOTH_CLIENTS
def test_stream_is_relayed_as_it_arrives(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path, http_client: str
) -> None:
    """The first events reach the client while the upstream is still producing the rest."""
    upstream.scenario = "slow"
    upstream.slow_delay = 0.3
    upstream.slow_chunks = 10
    gw = gateway(authed_config(upstream.url, gw_ca_file, http_client=http_client))
    with httpx.stream("POST", gw.url + "/v1/messages", json={**MSG, "stream": True},
                      headers={"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"},
                      timeout=30) as r:
        seen_types: list[str] = []
        for line in r.iter_lines():
            if line.startswith("event: "):
                seen_types.append(line[7:])
            if "ping" in seen_types and "content_block_delta" in seen_types:
                break
        # Unbuffered: we hold a ping and a delta while the upstream has not finished.
        sent_so_far = upstream.requests_to("/v1/messages")[-1].response_body
        assert b"message_stop" not in sent_so_far


def slow_stream_request(gw: Gateway, *, wait_for_start: bool) -> None:
    """Send a streaming request over a raw socket and close it: once the stream has started
    (``wait_for_start``), or at once."""
    body = httpx.Request("POST", "/", json={**MSG, "stream": True}).content
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"anthropic-version: 2023-06-01\r\nx-api-key: {CLIENT_TOKEN}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
        )
        if wait_for_start:
            assert b"message_start" in sock.recv(65536) or b"message_start" in sock.recv(65536)


@BOTH_CLIENTS
@pytest.mark.parametrize("headers_delay", [0.0, 0.3])
def test_client_disconnect_cancels_upstream(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path, headers_delay: float, http_client: str
) -> None:
    """0.0: the client leaves mid-stream. 0.3: it leaves at once, while the upstream is still
    thinking. ``ccgate serve`` hears of the lost connection from the server itself (the
    request's ClientLink), at once: the exchange is cancelled wherever it is, which for a
    client gone at once may be before its request has even gone upstream."""
    upstream.scenario = "slow"
    upstream.headers_delay = headers_delay
    upstream.slow_delay = 0.5
    upstream.slow_chunks = 40
    gw = gateway(authed_config(upstream.url, gw_ca_file, http_client=http_client))
    slow_stream_request(gw, wait_for_start=not headers_delay)
    records = gw.wait_access_records(1)
    assert records[-1]["error"] == "client disconnected"
    if headers_delay:
        assert records[-1]["status"] == 499
        if not upstream.requests_to("/v1/messages"):
            time.sleep(0.5)  # past the upstream's own delay: nothing arrived late either
            assert not upstream.requests_to("/v1/messages")
            return  # never sent: nothing upstream to stop
    gone = upstream.wait_disconnect(timeout=10)
    assert gone.events_sent < 40  # the upstream stopped long before the end


@BOTH_CLIENTS
def test_client_leaving_mid_stream_keeps_the_usage_read_so_far(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path, http_client: str
) -> None:
    """The provider bills the input of a stream the client abandons: the tokens its
    message_start reported reach the usage row and the access line (a budget is spent by
    them), rather than a row with no tokens at all."""
    upstream.scenario = "slow"
    upstream.slow_delay = 0.5
    upstream.slow_chunks = 40
    gw = gateway(authed_config(upstream.url, gw_ca_file, http_client=http_client))
    slow_stream_request(gw, wait_for_start=True)
    record = gw.wait_access_records(1)[-1]
    assert record["error"] == "client disconnected"
    assert record["input_tokens"] and record["input_tokens"] > 0
