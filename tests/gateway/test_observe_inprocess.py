"""Time to first token and token counters, in-process (scripted providers): the clock stops at
the provider's first bytes, not at what the gateway writes by itself (a translated stream's
message_start, its pings), and tokens are counted by kind for a translated answer too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ccgate.upstream.mock import Pause, Reply
from tests.gateway.inprocess import InProcessGateway
from tests.observe.scrape import value

SSE = {"content-type": "text/event-stream"}
MSG = {"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
PAUSE = 0.3


def _openai(name: str = "local") -> dict[str, Any]:
    return {"name": name, "kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
            "api_keys": ["sk-local-0123456789"]}


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "model": "qwen3",
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def test_translated_stream_time_to_first_token_ignores_our_own_bytes(tmp_path: Path) -> None:
    config = {"server": {"ping_interval": 0.05}, "providers": [_openai()],
              "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    # A ping interrupts the provider's read, which ends the scripted Pause it was in: six pauses,
    # each cut at the ping interval at the earliest, keep the provider silent for >= 0.3 s.
    reply = Reply(200, SSE, [*[Pause(0.1)] * 6, _chunk({"role": "assistant", "content": "Hi"}),
                             _chunk({}, "stop", {"prompt_tokens": 11, "completion_tokens": 2}),
                             b"data: [DONE]\n\n"])
    async with InProcessGateway(tmp_path, config, {"local": [reply]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True})
        text = gw.app.metrics.render().decode()
    names = [e for e, _ in answer.events()]
    assert names[0] == "message_start" and "ping" in names  # sent during the pause
    assert value(text, "ccgate_time_to_first_token_seconds_count", provider="local") == 1
    assert value(text, "ccgate_time_to_first_token_seconds_sum", provider="local") >= PAUSE
    assert value(text, "ccgate_tokens_total", kind="input", model="claude-x", provider="local") == 11
    assert value(text, "ccgate_tokens_total", kind="output", model="claude-x", provider="local") == 2


async def test_passthrough_stream_time_to_first_token_and_cache_tokens(tmp_path: Path) -> None:
    config = {"providers": [{"name": "anthropic", "base_url": "http://127.0.0.1:9",
                             "api_keys": ["sk-ant-0123456789"]}]}
    usage = {"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": 700,
             "cache_creation_input_tokens": 40}
    reply = Reply(200, SSE, [Pause(PAUSE), _event("message_start", {
        "type": "message_start", "message": {"id": "m", "model": "claude-x", "usage": usage}}),
        _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                 "usage": {"output_tokens": 9}}),
        _event("message_stop", {"type": "message_stop"})])
    fast = Reply(200, {"content-type": "application/json"}, json.dumps(
        {"id": "m", "type": "message", "model": "claude-x", "content": [], "usage": usage}).encode())
    async with InProcessGateway(tmp_path, config, {"anthropic": [reply, fast]}) as gw:
        await gw.post("/v1/messages", {**MSG, "stream": True})
        await gw.post("/v1/messages", MSG)  # not streamed: no time to first token
        text = gw.app.metrics.render().decode()
    assert value(text, "ccgate_time_to_first_token_seconds_count", provider="anthropic") == 1
    assert value(text, "ccgate_time_to_first_token_seconds_sum", provider="anthropic") >= PAUSE
    labels = {"model": "claude-x", "provider": "anthropic"}
    assert value(text, "ccgate_tokens_total", kind="output", **labels) == 9 + 1
    assert value(text, "ccgate_tokens_total", kind="cache_read", **labels) == 1400
    assert value(text, "ccgate_tokens_total", kind="cache_write", **labels) == 80
    assert value(text, "ccgate_upstream_attempts_total", provider="anthropic", outcome="success") == 2
