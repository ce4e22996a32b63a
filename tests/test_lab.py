"""Proofs that each part of the shared test lab works for real (fast: a few seconds)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
from aiohttp_socks import ProxyConnector

from tests.lab.certs import LabPKI
from tests.lab.claude_cli import run_claude
from tests.lab.fake_anthropic import LAB_API_KEY, REGION_BLOCK_BODY, FakeAnthropic
from tests.lab.probe import basic_proxy_auth, connect_probe
from tests.lab.sdk import async_sdk_client, sdk_client
from tests.lab.socks import DanteSocks, MicroSocks
from tests.lab.squid import SquidProxy

pytestmark = pytest.mark.lab

# The root conftest.py is expected to load the lab plugin; loading it here too is harmless
# (pytest registers a plugin once) and keeps this file self-sufficient.
pytest_plugins = ["tests.lab.fixtures"]

USER_MSG: list[Any] = [{"role": "user", "content": "hi"}]


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(fields["data"])
        assert data["type"] == fields["event"]
        out.append((fields["event"], data))
    return out


def assert_grammar(events: list[tuple[str, dict[str, Any]]]) -> None:
    names = [n for n, _ in events if n != "ping"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    open_idx: int | None = None
    next_idx = 0
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_idx is None and data["index"] == next_idx
            open_idx = next_idx
        elif name == "content_block_delta":
            assert data["index"] == open_idx
        elif name == "content_block_stop":
            assert data["index"] == open_idx
            open_idx, next_idx = None, next_idx + 1
    assert open_idx is None and next_idx > 0


# --- fake upstream through the official SDK over TLS -----------------------------------------
def test_sdk_non_streaming_tls(fake_anthropic: FakeAnthropic, lab_pki: LabPKI) -> None:
    client = sdk_client(fake_anthropic.url, verify=lab_pki.client_context())
    raw = client.messages.with_raw_response.create(
        model="claude-opus-4-8", max_tokens=50, messages=USER_MSG)
    msg = raw.parse()
    assert msg.content[0].type == "text" and msg.content[0].text == fake_anthropic.text
    assert raw.headers["request-id"].startswith("req_")
    rec = fake_anthropic.last
    assert rec.method == "POST" and rec.path == "/v1/messages"
    assert rec.header("x-api-key") == LAB_API_KEY and rec.header("anthropic-version")
    assert rec.json()["messages"] == USER_MSG


@pytest.mark.parametrize("scenario,stop,types", [
    ("text", "end_turn", ["text"]),
    ("tool_use", "tool_use", ["text", "tool_use"]),
    ("thinking", "end_turn", ["thinking", "text"]),
])
async def test_sdk_streaming_grammar(fake_anthropic: FakeAnthropic, lab_pki: LabPKI,
                                     scenario: str, stop: str, types: list[str]) -> None:
    client = async_sdk_client(fake_anthropic.url, verify=lab_pki.client_context())
    async with client.messages.stream(model=f"scenario-{scenario}", max_tokens=2048,
                                      messages=USER_MSG) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == stop and [b.type for b in final.content] == types
    if scenario == "tool_use":
        assert final.content[1].input == {"location": "Paris"}  # type: ignore[union-attr]
    if scenario == "thinking":
        assert final.content[0].signature  # type: ignore[union-attr]
    events = sse_events(fake_anthropic.last.response_body)
    assert_grammar(events)
    assert ("ping", {"type": "ping"}) in events
    deltas = {d["delta"]["type"] for n, d in events if n == "content_block_delta"}
    expected = {"text": {"text_delta"}, "tool_use": {"text_delta", "input_json_delta"},
                "thinking": {"thinking_delta", "signature_delta", "text_delta"}}[scenario]
    assert deltas == expected


@pytest.mark.parametrize("model,exc,status,etype", [
    ("fail-401", anthropic.AuthenticationError, 401, "authentication_error"),
    ("no-such-model", anthropic.NotFoundError, 404, "not_found_error"),
    ("fail-429", anthropic.RateLimitError, 429, "rate_limit_error"),
    ("fail-529", anthropic.APIStatusError, 529, "overloaded_error"),
])
def test_sdk_errors(fake_anthropic: FakeAnthropic, lab_pki: LabPKI, model: str,
                    exc: type[anthropic.APIStatusError], status: int, etype: str) -> None:
    client = sdk_client(fake_anthropic.url, verify=lab_pki.client_context())
    with pytest.raises(exc) as info:
        client.messages.create(model=model, max_tokens=10, messages=USER_MSG)
    err = info.value
    assert err.status_code == status
    body: Any = err.body
    assert body["type"] == "error" and body["error"]["type"] == etype
    assert body["request_id"] == err.response.headers["request-id"]
    if status == 429:
        assert err.response.headers["retry-after"] == "1"
        assert err.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_bearer_key_and_region_block(fake_anthropic: FakeAnthropic, lab_pki: LabPKI) -> None:
    bearer = anthropic.Anthropic(
        base_url=fake_anthropic.url, api_key=LAB_API_KEY, max_retries=0,
        http_client=anthropic.DefaultHttpxClient(verify=lab_pki.client_context(),
                                                 trust_env=False))
    with pytest.raises(anthropic.AuthenticationError, match="OAuth authentication is currently"):
        bearer.messages.create(model="claude-opus-4-8", max_tokens=10, messages=USER_MSG)
    fake_anthropic.scenario = "region_block"
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk_client(fake_anthropic.url, verify=lab_pki.client_context()).models.list()
    assert fake_anthropic.last.response_body == REGION_BLOCK_BODY


@pytest.mark.parametrize("leaf_name", ["interceptor_server", "expired"])
def test_untrusted_and_expired_leaves_fail_tls(
        fake_anthropic_factory: Callable[..., FakeAnthropic], lab_pki: LabPKI,
        leaf_name: str) -> None:
    server = fake_anthropic_factory(leaf=getattr(lab_pki, leaf_name))
    client = sdk_client(server.url, verify=lab_pki.client_context())
    with pytest.raises(anthropic.APIConnectionError):
        client.models.list()
    assert server.requests == []
    plain = sdk_client(server.http_url)  # the same server also speaks plain HTTP
    assert plain.models.list().data


async def test_models_count_tokens_hello_gzip(fake_anthropic: FakeAnthropic,
                                              lab_pki: LabPKI) -> None:
    client = sdk_client(fake_anthropic.url, verify=lab_pki.client_context())
    assert all(m.id.startswith("claude") for m in client.models.list(limit=1000).data)
    assert client.messages.count_tokens(model="claude-opus-4-8",
                                        messages=USER_MSG).input_tokens > 0
    fake_anthropic.gzip = True
    async with aiohttp.ClientSession(auto_decompress=False) as session, session.get(
        fake_anthropic.url + "/api/hello", ssl=lab_pki.client_context()
    ) as resp:
        assert resp.status == 200 and resp.headers["content-encoding"] == "gzip"
        assert await resp.read() == fake_anthropic.last.response_body


async def test_slow_stream_records_disconnect(fake_anthropic: FakeAnthropic,
                                              lab_pki: LabPKI) -> None:
    fake_anthropic.scenario, fake_anthropic.slow_delay = "slow", 0.2
    client = async_sdk_client(fake_anthropic.url, verify=lab_pki.client_context())
    async with client.messages.stream(model="claude-opus-4-8", max_tokens=10,
                                      messages=USER_MSG) as stream:
        seen = [ev.type async for ev in _take(stream, 5)]
    assert seen[0] == "message_start"
    closed_at = time.monotonic()
    gone = fake_anthropic.wait_disconnect(timeout=3)
    assert gone.path == "/v1/messages" and gone.at - closed_at < 1.0
    assert b"event: ping" in fake_anthropic.last.response_body


async def _take(stream: Any, n: int) -> Any:
    i = 0
    async for ev in stream:
        yield ev
        i += 1
        if i >= n:
            return


# --- squid -----------------------------------------------------------------------------------
async def _get_via_proxy(url: str, proxy: str, pki: LabPKI,
                         proxy_headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession(trust_env=False) as session, session.get(
        url, proxy=proxy, proxy_headers=proxy_headers, ssl=pki.client_context()
    ) as resp:
        return resp.status, await resp.text()


async def test_squid_open_connect(squid_proxy: SquidProxy, fake_anthropic: FakeAnthropic,
                                  lab_pki: LabPKI) -> None:
    url = fake_anthropic.host_url("api.anthropic.com") + "/api/hello"
    assert await _get_via_proxy(url, squid_proxy.url, lab_pki) == (200, '{"message":"hello"}')
    line = squid_proxy.wait_access(f"CONNECT api.anthropic.com:{fake_anthropic.tls_port}")
    assert "TCP_TUNNEL/200" in line
    client = sdk_client(fake_anthropic.host_url(), verify=lab_pki.client_context(),
                        proxy=squid_proxy.url)
    msg = client.messages.create(model="claude-opus-4-8", max_tokens=5, messages=USER_MSG)
    assert msg.content[0].type == "text"


def test_squid_unknown_name_fails_fast(squid_proxy: SquidProxy) -> None:
    start = time.monotonic()
    reply = connect_probe(squid_proxy.port, "nothing-here.invalid", 443)
    assert reply.status >= 500 and reply.header("X-Squid-Error")
    assert time.monotonic() - start < 5


async def test_squid_basic_auth(squid_auth_proxy: SquidProxy, fake_anthropic: FakeAnthropic,
                                lab_pki: LabPKI) -> None:
    px = squid_auth_proxy
    host, port = "api.anthropic.com", fake_anthropic.tls_port
    reply = connect_probe(px.port, host, port)
    assert reply.status == 407
    assert reply.values("Proxy-Authenticate") == ['Basic realm="ccgate lab proxy"']
    bad = connect_probe(px.port, host, port,
                        proxy_authorization=basic_proxy_auth(px.username, "wrong"))
    assert bad.status == 407
    good = connect_probe(px.port, host, port,
                         proxy_authorization=basic_proxy_auth(px.username, px.password))
    assert good.status == 200
    # percent-encoded credentials in the proxy URL (password has @ : / %), through the SDK
    assert "%40" in px.url_with_auth() and px.password not in px.url_with_auth()
    client = sdk_client(fake_anthropic.host_url(), verify=lab_pki.client_context(),
                        proxy=px.url_with_auth())
    assert client.models.list().data
    auth = basic_proxy_auth(px.username, px.password)
    status, _ = await _get_via_proxy(fake_anthropic.host_url() + "/api/hello", px.url,
                                     lab_pki, {"Proxy-Authorization": auth})
    assert status == 200


def test_squid_deny_and_ntlm(squid_deny_proxy: SquidProxy, squid_ntlm_proxy: SquidProxy,
                             fake_anthropic: FakeAnthropic) -> None:
    denied = connect_probe(squid_deny_proxy.port, "api.anthropic.com", fake_anthropic.tls_port)
    assert denied.status == 403
    assert denied.header("X-Squid-Error") == "ERR_ACCESS_DENIED 0"
    allowed = connect_probe(squid_deny_proxy.port, "localhost", fake_anthropic.tls_port)
    assert allowed.status == 200
    ntlm = connect_probe(squid_ntlm_proxy.port, "api.anthropic.com", fake_anthropic.tls_port,
                         proxy_authorization=basic_proxy_auth("user", "pass"))
    assert ntlm.status == 407 and ntlm.values("Proxy-Authenticate") == ["NTLM"]


# --- SOCKS -----------------------------------------------------------------------------------
async def _get_via_socks(url: str, proxy_url: str, pki: LabPKI) -> int:
    rdns = proxy_url.startswith("socks5h://")  # aiohttp_socks spells socks5h as rdns=True
    connector = ProxyConnector.from_url(proxy_url.replace("socks5h://", "socks5://", 1),
                                        rdns=rdns)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(
        url, ssl=pki.client_context()
    ) as resp:
        await resp.read()
        return resp.status


async def test_socks5_dante(socks_proxy: DanteSocks, fake_anthropic: FakeAnthropic,
                            lab_pki: LabPKI) -> None:
    assert await _get_via_socks(fake_anthropic.url + "/api/hello", socks_proxy.url,
                                lab_pki) == 200
    host = "api.anthropic.com" if socks_proxy.resolves_lab_hosts else "localhost"
    url = fake_anthropic.host_url(host) + "/api/hello"
    assert await _get_via_socks(url, socks_proxy.url_remote_dns, lab_pki) == 200
    assert fake_anthropic.last.header("host") == f"{host}:{fake_anthropic.tls_port}"


async def test_socks5_microsocks_auth(socks_auth_proxy: MicroSocks,
                                      fake_anthropic: FakeAnthropic, lab_pki: LabPKI) -> None:
    url = fake_anthropic.url + "/api/hello"
    assert await _get_via_socks(url, socks_auth_proxy.url_with_auth(), lab_pki) == 200
    with pytest.raises(Exception, match=r"(?i)auth"):
        await _get_via_socks(url, socks_auth_proxy.url, lab_pki)


# --- Claude Code CLI -------------------------------------------------------------------------
def test_claude_cli_prints_streamed_answer(claude_bin: Path,
                                           fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.text = "Lab answer: the fake upstream streamed this."
    result = run_claude("Say something.", base_url=fake_anthropic.http_url,
                        api_key=LAB_API_KEY, timeout=60, max_retries=0)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == fake_anthropic.text
    posts = fake_anthropic.requests_to("/v1/messages")
    assert posts and all(r.path == "/v1/messages?beta=true" for r in posts)
    rec = posts[0]
    assert rec.json()["stream"] is True
    assert rec.header("x-api-key") == LAB_API_KEY and rec.header("authorization") is None
    assert rec.header("anthropic-version") == "2023-06-01"
    assert "claude-code-20250219" in (rec.header("anthropic-beta") or "")
    assert (rec.header("user-agent") or "").startswith("claude-cli/2.1.330")
