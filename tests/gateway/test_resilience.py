"""Retries, key pools, circuit breakers and fallbacks, end to end (issue #5).

A real ``ccgate serve`` in front of scripted upstreams (tests/lab/scripted.py) that fail on cue:
529, 429 with ``retry-after``, a reset before the headers and after the first byte, slow
headers past ``timeouts.read``, 400/404, 401 on one key of two, a provider that is always
overloaded (its breaker opens and a fallback serves), an OpenAI-compatible fallback, and the
real Squid in the path. What each upstream saw (count, order, the key each request carried) is
read back from the lab; nothing here asserts on the wall clock (the one timing check is a
lower bound on the lab's own receive timestamps).

Backoffs are made tiny through ``routing.retries`` so the suite stays fast:

    providers: [{name: primary, kind: anthropic, base_url: http://127.0.0.1:PORT,
                 api_keys: [KEY_A, KEY_B]}]
    routing: {retries: {max_attempts: 3, base: 0.01, cap: 0.05}}
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.gateway.conftest import CLIENT_TOKEN, OPS_ADMIN_KEY, GatewayFactory, readyz
from tests.gateway.harness import Gateway
from tests.lab.scripted import (
    AnthropicText,
    Callback,
    Chunks,
    OpenAIText,
    ResetAfterFirstByte,
    ResetBeforeHeaders,
    ScriptedRequest,
    ScriptedUpstream,
    SlowHeaders,
    Status,
    anthropic_sse,
)
from tests.lab.squid import SquidProxy

pytestmark = pytest.mark.lab

MakeUpstream = Callable[..., ScriptedUpstream]
KEY_A = "sk-ant-lab-resilience-key-A-000000000001"
KEY_B = "sk-ant-lab-resilience-key-B-000000000002"
OPENAI_KEY = "sk-lab-openai-fallback-key-000000000003"
MSG: dict[str, Any] = {"model": "claude-opus-4-8", "max_tokens": 32,
                       "messages": [{"role": "user", "content": "hello"}]}
HEADERS = {"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"}
FAST_RETRIES = {"max_attempts": 3, "base": 0.01, "cap": 0.05}


def provider(up: ScriptedUpstream, name: str = "primary", keys: tuple[str, ...] = (KEY_A,),
             **extra: Any) -> dict[str, Any]:
    """A passthrough Anthropic provider on a scripted upstream (plain HTTP, root URL)."""
    return {"name": name, "kind": "anthropic", "base_url": up.http_url, "api_keys": list(keys), **extra}


def config(*providers: dict[str, Any], retries: dict[str, Any] | None = None,
           breaker: dict[str, Any] | None = None, models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    routing: dict[str, Any] = {"retries": {**FAST_RETRIES, **(retries or {})}}
    if breaker:
        routing["breaker"] = breaker
    out: dict[str, Any] = {"server": {"auth": {"tokens": [CLIENT_TOKEN]}, "admin": {"key": OPS_ADMIN_KEY}},
                           "providers": list(providers),
                           "routing": routing}
    if models:
        out["models"] = models
    return out


def post(gw: Gateway, body: dict[str, Any] | None = None, timeout: float = 20.0) -> httpx.Response:
    return httpx.post(gw.url + "/v1/messages", json=body or MSG, headers=HEADERS, timeout=timeout)


def messages(up: ScriptedUpstream) -> list[ScriptedRequest]:
    """Requests to the Messages API (not /readyz probes, which go to ``HEAD /``)."""
    return up.requests_to("/v1/messages")


def message_record(gw: Gateway, n: int = 1, timeout: float = 5.0) -> dict[str, Any]:
    """The n-th access-log line for POST /v1/messages (1-based), waiting for it."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in gw.access_records() if r["path"] == "/v1/messages"]
        if len(found) >= n:
            return found[n - 1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no access-log line #{n} for /v1/messages:\n{gw.log}")
        time.sleep(0.02)


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in raw.decode().replace("\r\n", "\n").split("\n\n"):
        lines = [ln for ln in frame.split("\n") if ln and not ln.startswith(":")]
        if lines:
            fields = dict(ln.split(":", 1) for ln in lines)
            out.append((fields["event"].strip(), json.loads(fields["data"])))
    return out


def assert_no_upstream_keys_in_log(gw: Gateway) -> None:
    for secret in (KEY_A, KEY_B, OPENAI_KEY, CLIENT_TOKEN):
        assert secret not in gw.log


# --- retries on one provider ----------------------------------------------------------------
def test_529_then_success_is_retried_and_logged(scripted_upstream: MakeUpstream, gateway: GatewayFactory) -> None:
    up = scripted_upstream(Status.overloaded(), AnthropicText("recovered"), name="primary")
    gw = gateway(config(provider(up)))
    r = post(gw)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "recovered"
    seen = messages(up)
    assert [q.status for q in seen] == [529, 200]
    assert all(q.header("x-api-key") == KEY_A for q in seen)
    record = message_record(gw)
    assert record["status"] == 200 and record["upstream"] == "primary"
    assert record["attempts"] == "primary#0 529, primary#0 200", record
    assert_no_upstream_keys_in_log(gw)


def test_429_on_key_a_goes_to_key_b_at_once(scripted_upstream: MakeUpstream, gateway: GatewayFactory) -> None:
    # retry-after 30: were the gateway to sit it out, the client (timeout 10 s) would give up.
    up = scripted_upstream(Status.rate_limited(30, anthropic=True), AnthropicText("from key B"),
                           name="primary")
    gw = gateway(config(provider(up, keys=(KEY_A, KEY_B))))
    r = post(gw, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "from key B"
    seen = messages(up)
    assert [(q.status, q.header("x-api-key")) for q in seen] == [(429, KEY_A), (200, KEY_B)]
    assert message_record(gw)["attempts"] == "primary#0 429, primary#1 200"
    # Key A rests for its retry-after: the next request skips it instead of meeting another 429.
    assert post(gw, timeout=10).status_code == 200
    assert messages(up)[-1].header("x-api-key") == KEY_B
    keys = readyz(gw).json()["providers"]["primary"]["keys"]
    assert [k["state"] for k in keys] == ["cooling", "healthy"]
    assert_no_upstream_keys_in_log(gw)


def test_429_on_the_only_key_waits_for_retry_after(scripted_upstream: MakeUpstream,
                                                   gateway: GatewayFactory) -> None:
    up = scripted_upstream(Status.rate_limited(1, anthropic=True), AnthropicText("after the wait"),
                           name="primary")
    gw = gateway(config(provider(up)))
    r = post(gw)
    assert r.status_code == 200, r.text
    first, second = messages(up)
    assert (first.status, second.status) == (429, 200)
    # The lab's own receive times: the retry came no sooner than retry-after allowed.
    assert second.received_at - first.received_at >= 1.0
    assert message_record(gw)["attempts"] == "primary#0 429, primary#0 200"


def test_retries_spent_relay_the_last_answer_unchanged(scripted_upstream: MakeUpstream,
                                                        gateway: GatewayFactory) -> None:
    up = scripted_upstream(default=Status.overloaded(), name="primary")
    gw = gateway(config(provider(up)))
    r = post(gw)
    assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
    seen = messages(up)
    assert len(seen) == FAST_RETRIES["max_attempts"]
    assert r.content == seen[-1].response_body
    assert message_record(gw)["attempts"] == ", ".join(["primary#0 529"] * 3)


def test_reset_before_headers_is_retried(scripted_upstream: MakeUpstream, gateway: GatewayFactory) -> None:
    up = scripted_upstream(ResetBeforeHeaders(), AnthropicText("second try"), name="primary")
    gw = gateway(config(provider(up)))
    r = post(gw)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "second try"
    assert [q.status for q in messages(up)] == [0, 200]  # 0: reset, nothing was sent
    attempts = message_record(gw)["attempts"]
    assert attempts.startswith("primary#0 ") and attempts.endswith(", primary#0 200"), attempts


def test_reset_after_first_byte_is_not_retried(scripted_upstream: MakeUpstream, gateway: GatewayFactory) -> None:
    # Were it retried, the default (a complete answer) would be played on the second request.
    up = scripted_upstream(ResetAfterFirstByte(), default=AnthropicText("must not be seen"),
                           name="primary")
    gw = gateway(config(provider(up)))
    r = post(gw, {**MSG, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in sse_events(r.content)]
    assert names[0] == "message_start" and names[-1] == "error", names
    assert "message_stop" not in names and b"must not be seen" not in r.content
    error = sse_events(r.content)[-1][1]
    assert error["type"] == "error" and error["error"]["message"]
    record = message_record(gw)
    assert len(messages(up)) == 1, record
    assert "attempts" not in record and record["upstream"] == "primary"  # one attempt: no trail
    # The break still counts against the provider's health.
    breaker = readyz(gw).json()["providers"]["primary"]["breaker"]
    assert breaker["recent_failures"] == 1, breaker


_START = anthropic_sse({"type": "message_start", "message": {
    "id": "msg_silent", "type": "message", "role": "assistant", "model": "claude-opus-4-8", "content": [],
    "stop_reason": None, "usage": {"input_tokens": 7, "output_tokens": 1}}})
_DELTA = anthropic_sse({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": "tick"}})
_STOP = anthropic_sse({"type": "message_stop"})


def test_stream_silent_mid_body_past_read_timeout_ends_in_band(scripted_upstream: MakeUpstream,
                                                               gateway: GatewayFactory) -> None:
    # The read timeout between a stream's chunks is one sweep per transport (upstream/transport.py
    # ReadWatch), not aiohttp's timer per chunk: it must still end a stream gone silent.
    # (After the first chunk aiohttp's own timer is off; the second one proves it.)
    up = scripted_upstream(Chunks([_START, 0.2, _DELTA, 30.0, _STOP]), name="primary")
    gw = gateway(config(provider(up, timeouts={"read": 0.5}), retries={"max_attempts": 1}))
    started = time.monotonic()
    r = post(gw, {**MSG, "stream": True})
    took = time.monotonic() - started
    assert r.status_code == 200, r.text
    names = [name for name, _ in sse_events(r.content)]
    assert names == ["message_start", "content_block_delta", "error"], names
    error = sse_events(r.content)[-1][1]["error"]
    assert "timed out" in error["message"], error
    assert 0.7 <= took < 3.0, took  # the deadline, plus at most a quarter of it (and the request)
    record = message_record(gw)
    assert record["status"] == 200 and "timed out" in record.get("error", ""), record


def test_stream_with_chunks_closer_than_read_timeout_outlives_it(scripted_upstream: MakeUpstream,
                                                                 gateway: GatewayFactory) -> None:
    # 1.6 s of stream, a chunk every 0.2 s, read timeout 0.5 s: only silence counts, not length.
    up = scripted_upstream(Chunks([_START, *[x for _ in range(8) for x in (0.2, _DELTA)], _STOP]),
                           name="primary")
    gw = gateway(config(provider(up, timeouts={"read": 0.5})))
    r = post(gw, {**MSG, "stream": True})
    names = [name for name, _ in sse_events(r.content)]
    assert names == ["message_start", *["content_block_delta"] * 8, "message_stop"], names


def test_slow_headers_time_out_on_every_attempt_then_504(scripted_upstream: MakeUpstream,
                                                         gateway: GatewayFactory) -> None:
    up = scripted_upstream(default=SlowHeaders(5.0), name="primary")
    gw = gateway(config(provider(up, timeouts={"read": 0.5}), retries={"max_attempts": 2}))
    r = post(gw)
    assert r.status_code == 504, r.text
    body = r.json()
    assert body["error"]["type"] == "timeout_error"
    assert "timed out waiting" in body["error"]["message"]  # the read hop: no answer in time
    assert r.headers["x-should-retry"] == "true"
    assert len(messages(up)) == 2  # max_attempts
    record = message_record(gw)
    assert record["status"] == 504 and record["attempts"].count("primary#0") == 2, record
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'ccgate_upstream_errors_total{hop="read",provider="primary"} 1.0' in metrics, metrics


def test_client_errors_are_relayed_unchanged_and_never_retried(scripted_upstream: MakeUpstream,
                                                               gateway: GatewayFactory) -> None:
    up = scripted_upstream(
        Status.anthropic_error(400, "invalid_request_error", "messages: field required"),
        Status.anthropic_error(404, "not_found_error", "model: claude-nope"),
        default=AnthropicText("a retry would get this"), name="primary")
    gw = gateway(config(provider(up)))
    for expected in (400, 404):
        before = len(messages(up))
        r = post(gw)
        assert r.status_code == expected, r.text
        assert r.content == messages(up)[-1].response_body  # byte for byte
        assert len(messages(up)) == before + 1  # exactly one upstream request
    assert [q.status for q in messages(up)] == [400, 404]


def test_x_should_retry_false_stops_retries_of_a_529(scripted_upstream: MakeUpstream,
                                                     gateway: GatewayFactory) -> None:
    refused = Status.anthropic_error(529, "overloaded_error", "Overloaded", {"x-should-retry": "false"})
    up = scripted_upstream(refused, default=AnthropicText("a retry would get this"), name="primary")
    gw = gateway(config(provider(up)))
    r = post(gw)
    assert r.status_code == 529 and r.headers["x-should-retry"] == "false"
    assert r.content == messages(up)[0].response_body
    assert len(messages(up)) == 1


def test_401_on_key_a_disables_it_and_key_b_answers_the_same_request(
    scripted_upstream: MakeUpstream, gateway: GatewayFactory,
) -> None:
    up = scripted_upstream(Status.anthropic_error(401, "authentication_error", "invalid x-api-key"),
                           AnthropicText("key B works"), name="primary")
    gw = gateway(config(provider(up, keys=(KEY_A, KEY_B))))
    r = post(gw)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "key B works"
    assert [(q.status, q.header("x-api-key")) for q in messages(up)] == [(401, KEY_A), (200, KEY_B)]
    # Key A stays out: later requests never carry it again.
    for _ in range(3):
        assert post(gw).status_code == 200
    assert {q.header("x-api-key") for q in messages(up)[2:]} == {KEY_B}
    ready = readyz(gw)
    keys = ready.json()["providers"]["primary"]["keys"]
    assert [k["state"] for k in keys] == ["disabled", "healthy"]
    assert "401" in keys[0]["reason"]
    assert ready.status_code == 200  # key B still serves
    assert KEY_A not in ready.text and KEY_B not in ready.text
    assert_no_upstream_keys_in_log(gw)


# --- breakers and fallbacks ------------------------------------------------------------------
def test_breaker_opens_and_requests_go_straight_to_the_fallback(
    scripted_upstream: MakeUpstream, gateway: GatewayFactory,
) -> None:
    primary = scripted_upstream(default=Status.overloaded(), name="primary")
    backup = scripted_upstream(default=AnthropicText("from the backup"), name="backup")
    gw = gateway(config(
        provider(primary), provider(backup, name="backup", keys=(KEY_B,)),
        retries={"max_attempts": 2},
        breaker={"failure_threshold": 2, "open_seconds": 300},
        models=[{"match": "*", "to": "primary", "fallbacks": ["backup"]}],
    ))
    r = post(gw)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "from the backup"
    assert len(messages(primary)) == 2 and len(messages(backup)) == 1
    record = message_record(gw)
    assert record["upstream"] == "backup"
    assert record["attempts"] == "primary#0 529, primary#0 529, backup#0 200", record
    # The breaker is open: the primary is not touched any more.
    for n in range(2, 5):
        r = post(gw)
        assert r.status_code == 200 and r.json()["content"][0]["text"] == "from the backup"
        record = message_record(gw, n)
        assert record["upstream"] == "backup" and "attempts" not in record, record  # straight there
    assert len(messages(primary)) == 2 and len(messages(backup)) == 4
    assert messages(backup)[-1].header("x-api-key") == KEY_B
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'ccgate_breaker_state{provider="primary"} 2.0' in metrics, metrics
    ready = readyz(gw).json()["providers"]
    assert ready["primary"]["breaker"]["state"] == "open"
    assert ready["primary"]["usable"] is False
    assert ready["backup"]["breaker"]["state"] == "closed"
    assert len(messages(primary)) == 2  # /readyz probes with HEAD /, never the Messages API


def test_open_breaker_lets_one_probe_through_and_closes_on_success(
    scripted_upstream: MakeUpstream, gateway: GatewayFactory,
) -> None:
    healthy = threading.Event()

    def primary_answer(req: ScriptedRequest) -> Any:
        return AnthropicText("primary is back") if healthy.is_set() else Status.overloaded()

    primary = scripted_upstream(default=Callback(primary_answer), name="primary")
    backup = scripted_upstream(default=AnthropicText("from the backup"), name="backup")
    gw = gateway(config(
        provider(primary), provider(backup, name="backup", keys=(KEY_B,)),
        retries={"max_attempts": 2},
        breaker={"failure_threshold": 2, "open_seconds": 1},
        models=[{"match": "*", "to": "primary", "fallbacks": ["backup"]}],
    ))
    assert post(gw).json()["content"][0]["text"] == "from the backup"  # opens the breaker
    assert 'ccgate_breaker_state{provider="primary"} 2.0' in httpx.get(gw.url + "/metrics").text
    healthy.set()
    # While open, the backup answers; once open_seconds pass, one probe reaches the primary.
    deadline = time.monotonic() + 15
    while (text := post(gw).json()["content"][0]["text"]) == "from the backup":
        assert time.monotonic() < deadline, "the primary never got its half-open probe"
        time.sleep(0.1)
    assert text == "primary is back"
    assert 'ccgate_breaker_state{provider="primary"} 0.0' in httpx.get(gw.url + "/metrics").text
    assert post(gw).json()["content"][0]["text"] == "primary is back"  # closed: primary first again
    assert [q.status for q in messages(primary)] == [529, 529, 200, 200]


def test_fallback_to_an_openai_compatible_provider(scripted_upstream: MakeUpstream,
                                                   gateway: GatewayFactory) -> None:
    primary = scripted_upstream(default=Status.overloaded(), name="primary")
    openai = scripted_upstream(default=OpenAIText("translated fallback answer", chunks=4), name="openai")
    gw = gateway(config(
        provider(primary),
        {"name": "openai", "kind": "openai-compatible", "base_url": openai.openai_base_url,
         "api_keys": [OPENAI_KEY]},
        retries={"max_attempts": 2},
        models=[{"match": "claude-*", "to": "primary", "fallbacks": ["openai/qwen3-coder"]}],
    ))
    client = anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_TOKEN, max_retries=0, timeout=20)
    message = client.messages.create(**MSG)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == "translated fallback answer"
    assert message.model == MSG["model"]
    assert message.usage.input_tokens == 21 and message.usage.output_tokens == 9
    with client.messages.stream(**MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "translated fallback answer" and final.stop_reason == "end_turn"
    sent = openai.requests_to("/chat/completions")
    assert len(sent) == 2 and all(q.json["model"] == "qwen3-coder" for q in sent)
    assert all(q.header("authorization") == f"Bearer {OPENAI_KEY}" for q in sent)
    assert [q.status for q in messages(primary)] == [529] * 4
    assert message_record(gw, 1)["attempts"] == "primary#0 529, primary#0 529, openai#0 200"
    assert_no_upstream_keys_in_log(gw)


# --- the real Squid in the path --------------------------------------------------------------
def test_retries_through_squid(scripted_upstream: MakeUpstream, squid_proxy: SquidProxy,
                               gateway: GatewayFactory, lab_ca_file: Path) -> None:
    """529, then a reset before the headers, then an answer, all through a CONNECT tunnel of
    the real Squid (open mode; its hosts file maps api.anthropic.com to 127.0.0.1)."""
    up = scripted_upstream(Status.overloaded(), ResetBeforeHeaders(), AnthropicText("via squid"),
                           tls=True, name="primary")
    mark = squid_proxy.access_mark()
    gw = gateway(config(provider(up, base_url=f"https://api.anthropic.com:{up.https_port}",
                                 proxy=squid_proxy.url, tls={"ca_file": str(lab_ca_file)})))
    r = post(gw)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "via squid"
    assert [q.status for q in messages(up)] == [529, 0, 200]
    assert all(q.header("host") == f"api.anthropic.com:{up.https_port}" for q in messages(up))
    attempts = message_record(gw)["attempts"]
    assert attempts.startswith("primary#0 529, primary#0 ") and attempts.endswith(", primary#0 200")
    # The reset tunnel is closed (and logged by Squid) at once; the others when the pool closes.
    gw.stop()
    assert "CONNECT api.anthropic.com" in squid_proxy.wait_access("api.anthropic.com", since=mark)
