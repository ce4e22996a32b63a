"""A stream does not keep its request alive (issue 13, scale): once the answer starts to be
relayed nothing is retried, so the client's body (a Claude Code request is ~100 KiB and grows
with the conversation) and every copy made of it are dropped, while the stream may last
minutes. At 10,000 streams a held 100 KiB request is a gigabyte.

Measured with tracemalloc while the relay waits for the provider's next chunk: the memory
traced then, against before the request, must be far below the body's size."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from ccgate.server.asgi import Message
from ccgate.upstream.mock import Pause, Reply
from tests.gateway.inprocess import InProcessGateway

KEY = "sk-ant-memory-test-key-0000000000000001"
SSE = {"content-type": "text/event-stream"}
BODY_BYTES = 2 * 1024 * 1024
_START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
          b'"role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":5,'
          b'"output_tokens":1}}}\n\n')
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_OAI_FIRST = b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
_OAI_LAST = (b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},'
             b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


def _request_message() -> Message:
    # Built here and handed over: nothing in the test keeps a reference to the body. Many short
    # text blocks, as a conversation has (the token estimate remembers long strings process-wide,
    # bounded: translate/tokens.py; that is not what this test is about).
    blocks = [{"type": "text", "text": f"{i:08d}" + "x" * 192} for i in range(BODY_BYTES // 200)]
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                       "messages": [{"role": "user", "content": blocks}]}).encode()
    assert len(body) > BODY_BYTES
    return {"type": "http.request", "body": body, "more_body": False}


async def _held_while_streaming(gw: InProcessGateway, provider: str, *, big_headers: bool = False) -> int:
    """Bytes traced while the stream is open (the provider is pausing), over those before the
    request was made. ``big_headers``: a small body, and headers the size the body had."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    incoming: list[Message] = [_request_message() if not big_headers else _small_request_message()]
    size = len(incoming[0]["body"])
    extra = _big_headers() if big_headers else []
    scope = {"type": "http", "method": "POST", "path": "/v1/messages", "query_string": b"",
             "headers": [(b"x-api-key", b"client"), (b"anthropic-version", b"2023-06-01"),
                         (b"content-length", str(size).encode()), *extra]}
    del extra
    messages: list[Message] = []
    done = asyncio.Event()

    async def receive() -> Message:
        if incoming:
            return incoming.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    task = asyncio.create_task(gw.app(scope, receive, send))
    transport = gw.transports[provider]
    while not any(m["type"] == "http.response.body" and m.get("body") for m in messages):
        await asyncio.sleep(0.01)  # the stream has started and the provider now pauses
    transport.sent.clear()  # the scripted transport's own log of what it was sent
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    await asyncio.wait_for(task, 10)
    assert done.is_set()
    return held


def _small_request_message() -> Message:
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    return {"type": "http.request", "body": body, "more_body": False}


def _big_headers() -> list[tuple[bytes, bytes]]:
    # Built here and handed over, as uvicorn builds them: BODY_BYTES of header values.
    return [(b"x-extra-%d" % i, b"%08d" % i + b"v" * 1016) for i in range(BODY_BYTES // 1024)]


@pytest.fixture
def traced() -> Any:
    tracemalloc.start()
    yield
    tracemalloc.stop()


async def test_a_passthrough_stream_does_not_hold_its_request(tmp_path: Path, traced: Any) -> None:
    config = {"providers": [{"name": "anthropic", "kind": "anthropic", "base_url": "https://anthropic.test",
                             "api_keys": [KEY]}]}
    script = {"anthropic": [Reply(200, SSE, [_START, Pause(0.3), _STOP])]}
    async with InProcessGateway(tmp_path, config, script) as gw:
        held = await _held_while_streaming(gw, "anthropic")
    assert held < BODY_BYTES / 8, f"{held} bytes held during the stream"


async def test_a_translated_stream_does_not_hold_its_request(tmp_path: Path, traced: Any) -> None:
    config = {"providers": [{"name": "local", "kind": "openai-compatible", "base_url": "https://local.test/v1",
                             "api_keys": [KEY], "auth_header": "bearer"}],
              "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    script = {"local": [Reply(200, SSE, [_OAI_FIRST, Pause(0.3), _OAI_LAST])]}
    async with InProcessGateway(tmp_path, config, script) as gw:
        held = await _held_while_streaming(gw, "local")
    assert held < BODY_BYTES / 8, f"{held} bytes held during the stream"


async def test_a_stream_does_not_hold_its_request_headers(tmp_path: Path, traced: Any) -> None:
    # uvicorn's scope keeps the request's header list for the whole request; a Claude Code
    # request has ~25 headers (~4 KB), 10,000 streams 40 MB. Once the answer is being relayed
    # nothing reads them again, so they are dropped with the body.
    config = {"providers": [{"name": "anthropic", "kind": "anthropic", "base_url": "https://anthropic.test",
                             "api_keys": [KEY]}]}
    script = {"anthropic": [Reply(200, SSE, [_START, Pause(0.3), _STOP])]}
    async with InProcessGateway(tmp_path, config, script) as gw:
        held = await _held_while_streaming(gw, "anthropic", big_headers=True)
    assert held < BODY_BYTES / 8, f"{held} bytes held during the stream"
