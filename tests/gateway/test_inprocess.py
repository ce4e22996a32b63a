"""Dispatch, retries, fallbacks, relays and error mapping, in-process: ``Gateway(scope,
receive, send)`` with scripted providers and a manual clock (tests/gateway/inprocess.py).
No sockets, no sleeping: the network contract itself is covered by the lab tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ccgate.errors import UpstreamTimeout, UpstreamUnreachable
from ccgate.routing.breaker import BreakerState
from ccgate.upstream.mock import Pause, Reply
from tests.gateway.inprocess import InProcessGateway

KEY = "sk-ant-provider-key-0123456789"
BACKUP_KEY = "sk-backup-provider-key-0123456789"
MSG: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 16,
                       "messages": [{"role": "user", "content": "hi"}]}
CLIENT = {"x-api-key": "sk-client-own-key", "anthropic-version": "2023-06-01",
          "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
ANSWER = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
          "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
          "usage": {"input_tokens": 5, "output_tokens": 2}}
JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}


def anthropic(name: str = "anthropic", **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "anthropic", "base_url": f"https://{name}.test", "api_keys": [KEY], **extra}


def openai(name: str = "local", **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "openai-compatible", "base_url": f"https://{name}.test/v1",
            "api_keys": [BACKUP_KEY], "auth_header": "bearer", **extra}


def overloaded() -> Reply:
    return Reply(529, JSON, json.dumps({"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}).encode())


def access_records(gw: InProcessGateway, log: Path) -> list[dict[str, Any]]:
    gw.app.access_log.flush()
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def test_passthrough_relays_bytes_and_swaps_the_credential(tmp_path: Path) -> None:
    body = json.dumps(ANSWER).encode()
    config = {"providers": [anthropic()]}
    async with InProcessGateway(tmp_path, config, {"anthropic": [Reply(200, JSON, body)]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=CLIENT, query=b"beta=true")
    assert answer.status == 200 and answer.body == body and answer.complete
    sent = gw.transports["anthropic"].sent[0]
    assert sent.path == "/v1/messages?beta=true"
    assert json.loads(sent.body) == MSG
    assert sent.header("x-api-key") == KEY  # the client's own key never goes upstream
    assert sent.header("anthropic-beta") == CLIENT["anthropic-beta"]
    assert gw.transports["anthropic"].responses[0].released


async def test_overloaded_is_retried_after_a_backoff_on_the_manual_clock(tmp_path: Path) -> None:
    body = json.dumps(ANSWER).encode()
    config = {"providers": [anthropic()], "log": {"access": True, "file": str(tmp_path / "access.log")}}
    script = {"anthropic": [overloaded(), overloaded(), Reply(200, JSON, body)]}
    async with InProcessGateway(tmp_path, config, script) as gw:
        start = gw.clock.monotonic()
        answer = await gw.post("/v1/messages", MSG, headers=CLIENT)
        records = access_records(gw, tmp_path / "access.log")
    assert answer.status == 200 and answer.body == body
    assert len(gw.transports["anthropic"].sent) == 3
    assert len(gw.slept) == 2 and gw.clock.monotonic() - start == sum(gw.slept)
    (record,) = records
    assert record["status"] == 200 and "529" in record["attempts"]
    # Error bodies of failed attempts were read and their connections closed, not reused.
    assert [r.closed for r in gw.transports["anthropic"].responses] == [True, True, False]


async def test_when_retries_are_spent_the_providers_own_answer_is_relayed(tmp_path: Path) -> None:
    config = {"providers": [anthropic()], "routing": {"retries": {"max_attempts": 2}}}
    async with InProcessGateway(tmp_path, config, {"anthropic": [overloaded(), overloaded()]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=CLIENT)
    assert answer.status == 529
    assert answer.body == overloaded().body  # unchanged: Claude Code parses its wording
    assert answer.headers["content-length"] == str(len(answer.body))


async def test_unreachable_primary_falls_back_with_the_fallback_model(tmp_path: Path) -> None:
    config = {
        "providers": [anthropic(), anthropic("backup")],
        "models": [{"match": "claude-*", "to": "anthropic", "fallbacks": ["backup/claude-haiku-4-5"]}],
        "routing": {"retries": {"max_attempts": 1}},
    }
    dns = UpstreamUnreachable("DNS lookup failed for provider 'anthropic'", hop="dns")
    script = {"anthropic": [dns], "backup": [Reply(200, JSON, json.dumps(ANSWER).encode())]}
    async with InProcessGateway(tmp_path, config, script) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=CLIENT)
    assert answer.status == 200
    assert json.loads(gw.transports["backup"].sent[0].body)["model"] == "claude-haiku-4-5"


async def test_transport_failure_everywhere_is_an_envelope_naming_the_hop(tmp_path: Path) -> None:
    config = {"providers": [anthropic()], "routing": {"retries": {"max_attempts": 2}}}
    timeout = UpstreamTimeout("timed out connecting to provider 'anthropic' (anthropic.test:443)",
                              hop="connect")
    async with InProcessGateway(tmp_path, config, {"anthropic": [timeout, timeout]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=CLIENT)
    assert answer.status == 504
    envelope = answer.json()
    assert envelope["type"] == "error" and envelope["error"]["type"] == "timeout_error"
    assert "timed out connecting" in envelope["error"]["message"]
    assert envelope["request_id"] == answer.headers["request-id"]


async def test_provider_refusing_the_gateway_key_is_not_relayed_as_401(tmp_path: Path) -> None:
    config = {"providers": [anthropic()]}
    refused = Reply(401, JSON, json.dumps({"type": "error", "error": {
        "type": "authentication_error", "message": "invalid x-api-key"}}).encode())
    async with InProcessGateway(tmp_path, config, {"anthropic": [refused]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=CLIENT)
    assert answer.status == 502 and answer.headers["x-should-retry"] == "false"
    assert KEY not in answer.body.decode()


async def test_stream_broken_after_start_ends_in_band_and_counts_against_the_breaker(
    tmp_path: Path,
) -> None:
    config = {"providers": [anthropic()], "routing": {"breaker": {"failure_threshold": 1}}}
    start = b'event: message_start\ndata: {"type":"message_start"}\n\n'
    broken = UpstreamUnreachable("provider 'anthropic' closed the connection", hop="upstream")
    async with InProcessGateway(tmp_path, config, {"anthropic": [Reply(200, SSE, [start, broken])]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)
        assert gw.app.runtime.upstreams["anthropic"].breaker.state is BreakerState.OPEN
    assert answer.status == 200 and answer.complete
    assert answer.body.startswith(start)
    assert answer.events()[-1][0] == "error"
    assert gw.transports["anthropic"].responses[0].closed


async def test_json_broken_mid_body_is_a_clean_502(tmp_path: Path) -> None:
    config = {"providers": [anthropic()], "routing": {"retries": {"max_attempts": 1}}}
    broken = UpstreamUnreachable("provider 'anthropic' closed the connection", hop="upstream")
    reply = Reply(200, {**JSON, "content-length": "500"}, [b'{"id": "msg_1", ', broken])
    async with InProcessGateway(tmp_path, config, {"anthropic": [reply]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=CLIENT)
    assert answer.status == 502 and answer.json()["error"]["type"] == "api_error"


async def test_forward_beta_false_drops_the_beta_header(tmp_path: Path) -> None:
    provider = {**anthropic("compat"), "kind": "anthropic-compatible", "quirks": {"forward_beta": False}}
    async with InProcessGateway(tmp_path, {"providers": [provider]},
                                {"compat": [Reply(200, JSON, json.dumps(ANSWER).encode())]}) as gw:
        await gw.post("/v1/messages", MSG, headers=CLIENT)
    sent = gw.transports["compat"].sent[0]
    assert sent.header("anthropic-beta") is None
    assert sent.header("anthropic-version") == "2023-06-01"


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {"id": "c1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(data)}\n\n".encode()


async def test_translated_stream_goes_through_the_pipeline(tmp_path: Path) -> None:
    usage = b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}\n\n'
    pieces: list[Any] = [chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}, "stop"),
                         usage, b"data: [DONE]\n\n"]
    # Split the bytes mid-line: the relay only moves bytes, the pipeline frames them.
    raw = b"".join(pieces)
    config = {"providers": [openai()], "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    async with InProcessGateway(tmp_path, config, {"local": [Reply(200, SSE, [raw[:7], raw[7:50], raw[50:]])]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
    events = answer.events()
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
    text = "".join(d["delta"].get("text", "") for e, d in events if e == "content_block_delta")
    assert text == "Hello"
    assert next(d for e, d in events if e == "message_delta")["usage"]["output_tokens"] == 3
    sent = gw.transports["local"].sent[0]
    assert sent.path == "/chat/completions" and sent.header("authorization") == f"Bearer {BACKUP_KEY}"
    assert gw.transports["local"].responses[0].released
    # The events of the read that finished the stream and the stream's end go in one message.
    last = answer.messages[-1]
    assert last["more_body"] is False and last["body"].rstrip().endswith(b'{"type":"message_stop"}')


async def test_translated_stream_with_a_malformed_chunk_ends_with_an_error_event(tmp_path: Path) -> None:
    config = {"providers": [openai()], "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    reply = Reply(200, SSE, [chunk({"content": "Hi"}), b"data: {not json\n\n", chunk({"content": "x"})])
    async with InProcessGateway(tmp_path, config, {"local": [reply]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)
    name, data = answer.events()[-1]
    assert name == "error" and "malformed stream chunk" in data["error"]["message"]
    assert gw.transports["local"].responses[0].closed


async def test_translated_stream_cut_before_done_is_an_error_not_end_turn(tmp_path: Path) -> None:
    config = {"providers": [openai()], "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    async with InProcessGateway(tmp_path, config, {"local": [Reply(200, SSE, [chunk({"content": "Hi"})])]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)
    names = [e for e, _ in answer.events()]
    assert names[-1] == "error" and "message_stop" not in names


async def test_translated_silence_sends_pings(tmp_path: Path) -> None:
    config = {"server": {"ping_interval": 0.02}, "providers": [openai()],
              "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    reply = Reply(200, SSE, [chunk({"content": "Hi"}), Pause(0.15), chunk({}, "stop"), b"data: [DONE]\n\n"])
    async with InProcessGateway(tmp_path, config, {"local": [reply]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)
    names = [e for e, _ in answer.events()]
    assert "ping" in names and names[-1] == "message_stop"


async def test_translated_upstream_error_becomes_an_anthropic_error(tmp_path: Path) -> None:
    config = {"providers": [openai()], "models": [{"match": "claude-*", "to": "local/qwen3"}],
              "routing": {"retries": {"max_attempts": 1}}}
    bad = Reply(400, JSON, json.dumps({"error": {"message": f"bad request for key {BACKUP_KEY}",
                                                 "type": "invalid_request_error"}}).encode())
    async with InProcessGateway(tmp_path, config, {"local": [bad]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=CLIENT)
    assert answer.status == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert BACKUP_KEY not in answer.body.decode()  # the provider echoed our key: redacted


async def test_translated_200_that_is_not_a_completion_is_a_502(tmp_path: Path) -> None:
    config = {"providers": [openai()], "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    async with InProcessGateway(tmp_path, config, {"local": [Reply(200, JSON, b"<html>blocked</html>")]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=CLIENT)
    assert answer.status == 502 and "not a chat completion" in answer.json()["error"]["message"]


async def test_client_gone_mid_stream_closes_the_upstream(tmp_path: Path) -> None:
    config = {"providers": [anthropic()], "log": {"access": True, "file": str(tmp_path / "access.log")}}
    start = b'event: message_start\ndata: {"type":"message_start"}\n\n'
    reply = Reply(200, SSE, [start, Pause(5.0), b"event: ping\ndata: {}\n\n"])
    async with InProcessGateway(tmp_path, config, {"anthropic": [reply]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT, disconnect_after=0.1)
        (record,) = access_records(gw, tmp_path / "access.log")
    assert answer.status == 200 and not answer.complete
    assert gw.transports["anthropic"].responses[0].closed
    assert record["error"] == "client disconnected" and record["bytes_out"] == len(start)
