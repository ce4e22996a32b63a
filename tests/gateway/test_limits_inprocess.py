"""Limits the application enforces (issue 13), in-process: the concurrency limit's 529, the
telemetry endpoint's small cap, the translated answer's size bound, and pings keyed on what the
client receives. The socket-level limits are in test_connection_limits.py (lab)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ccgate.server.app import EVENT_LOG_MAX_BYTES
from ccgate.server.translated import COMPLETION_LIMIT
from ccgate.upstream.mock import Pause, Reply
from tests.gateway.inprocess import InProcessGateway
from tests.gateway.test_inprocess import CLIENT, MSG, SSE, anthropic, chunk, openai

JSON = {"content-type": "application/json"}
START = b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":1}}}\n\n'
STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


async def test_over_max_concurrent_requests_is_529_overloaded_with_retry_after(tmp_path: Path) -> None:
    config = {"server": {"limits": {"max_concurrent_requests": 1}}, "providers": [anthropic()]}
    slow = Reply(200, SSE, [START, Pause(0.3), STOP])
    async with InProcessGateway(tmp_path, config, {"anthropic": [slow]}) as gw:
        first = asyncio.create_task(gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT))
        while not gw.transports["anthropic"].sent:  # the first one is being answered
            await asyncio.sleep(0.005)
        second = await gw.post("/v1/messages", MSG, headers=CLIENT)
        health = await gw.request("GET", "/healthz")  # monitoring is never refused
        answered = await first
        metrics = (await gw.request("GET", "/metrics")).body.decode()
    assert second.status == 529
    assert second.headers["retry-after"] == "5" and second.headers["x-should-retry"] == "true"
    error = second.json()["error"]
    assert error["type"] == "overloaded_error"
    assert "server.limits.max_concurrent_requests" in error["message"]
    assert health.status == 200
    assert answered.status == 200 and answered.body.endswith(STOP)
    assert len(gw.transports["anthropic"].sent) == 1  # the refused one went nowhere
    assert 'ccgate_client_refused_total{reason="overloaded"} 1.0' in metrics
    assert "ccgate_requests_in_flight 1.0" in metrics  # the scrape itself


async def test_event_logging_is_capped_small(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, {"providers": [anthropic()]}) as gw:
        small = await gw.request("POST", "/api/event_logging/batch", b"{" + b" " * 10_000 + b"}")
        big = await gw.request("POST", "/api/event_logging/batch", b"x" * (EVENT_LOG_MAX_BYTES + 1))
    assert small.status == 204
    assert big.status == 413 and big.json()["error"]["type"] == "request_too_large"
    assert str(EVENT_LOG_MAX_BYTES) in big.json()["error"]["message"]
    assert EVENT_LOG_MAX_BYTES <= 1024 * 1024


def _huge_completion() -> bytes:
    text = "x" * (COMPLETION_LIMIT + 10)
    return json.dumps({"id": "c", "object": "chat.completion", "choices": [{
        "index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}).encode()


async def test_a_translated_answer_over_the_limit_is_a_502_naming_it(tmp_path: Path) -> None:
    config = {"providers": [openai()], "models": [{"match": "claude-*", "to": "local/qwen3"}],
              "routing": {"retries": {"max_attempts": 1}}}
    body = _huge_completion()
    pieces: list[Any] = [body[i:i + 1024 * 1024] for i in range(0, len(body), 1024 * 1024)]
    sized, unsized = Reply(200, JSON, body), Reply(200, JSON, [*pieces, Pause(0)])  # no length
    async with InProcessGateway(tmp_path, config, {"local": [sized, unsized]}) as gw:
        answers = [await gw.post("/v1/messages", MSG, headers=CLIENT) for _ in range(2)]
    for answer in answers:
        assert answer.status == 502, answer.body[:300]
        assert str(COMPLETION_LIMIT) in answer.json()["error"]["message"]
    responses = gw.transports["local"].responses
    assert all(r.closed for r in responses)  # abandoned, not returned to the pool
    assert responses[1]._pieces, "the unsized body was not read past the limit"


async def test_pings_are_keyed_on_what_the_client_receives(tmp_path: Path) -> None:
    """An upstream that sends only comments (keep-alives) and chunks without content: bytes
    arrive all the time, but the client would get nothing. It gets pings."""
    config = {"server": {"ping_interval": 0.05}, "providers": [openai()],
              "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    empty = b'data: {"id":"c1","object":"chat.completion.chunk","choices":[]}\n\n'
    noise: list[Any] = []
    for _ in range(12):
        noise += [b": keep-alive\n\n", Pause(0.02), empty, Pause(0.02)]
    reply = Reply(200, SSE, [chunk({"role": "assistant", "content": "Hi"}), *noise,
                             chunk({}, "stop"), b"data: [DONE]\n\n"])
    async with InProcessGateway(tmp_path, config, {"local": [reply]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)
    names = [e for e, _ in answer.events()]
    assert names.count("ping") >= 2, names
    assert names[-1] == "message_stop"


async def test_pool_waits_are_wired_to_the_metrics(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, {"providers": [anthropic()]}) as gw:
        hook = gw.transports["anthropic"].on_pool_wait
        assert hook is not None
        hook("anthropic", 0.5, False)
        hook("anthropic", 10.0, True)
        metrics = (await gw.request("GET", "/metrics")).body.decode()
    assert 'ccgate_upstream_pool_wait_seconds_count{provider="anthropic"} 2.0' in metrics
    assert 'ccgate_upstream_pool_timeouts_total{provider="anthropic"} 1.0' in metrics
