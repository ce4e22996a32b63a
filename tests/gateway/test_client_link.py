"""The gateway on its own server's ``ClientLink`` (scope["extensions"]["ccgate.link"]), in-process.

Under ``ccgate serve`` a stream's chunks go out through the link (no ASGI message per chunk)
and the client's disconnect arrives as ``on_lost`` (no watcher task). These drive the real
app with a link that records what it is given, so the relay's contract is checked on that
path too: the bytes exactly as the provider sent them, usage read exactly, the disconnect
closing the upstream. The link itself against uvicorn's own framing is in
tests/unit/test_protocol.py; the whole thing over sockets in tests/gateway/test_passthrough.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ccgate.server.asgi import Message
from ccgate.server.response import LINK
from ccgate.upstream.mock import Pause, Reply
from tests.gateway.inprocess import Answer, InProcessGateway

KEY = "sk-ant-provider-key-0123456789"
CLIENT = {"x-api-key": "sk-client-own-key", "anthropic-version": "2023-06-01"}
MSG: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 16, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}
SSE = {"content-type": "text/event-stream"}
START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
         b'"role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":25,'
         b'"cache_read_input_tokens":7,"output_tokens":1}}}\n\n')
DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi \\"usage\\""}}\n\n'
END = (b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
       b'"usage":{"output_tokens":42}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')


class RecordingLink:
    """A link that takes every body piece (or none: ``takes=False``), and can be lost."""

    def __init__(self, messages: list[Message], takes: bool = True) -> None:
        self.messages, self.takes = messages, takes
        self.written: list[bytes] = []
        self.whole: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = []
        self.gone = False
        self.on_lost: Callable[[], None] | None = None

    def write_body(self, data: bytes) -> bool:
        if not self.takes:
            return False
        self.written.append(data)
        self.messages.append({"type": "http.response.body", "body": data, "more_body": True})
        return True

    def write_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
        if not self.takes:
            return False
        self.whole.append((status, headers, body))
        self.messages.append({"type": "http.response.start", "status": status, "headers": headers})
        self.messages.append({"type": "http.response.body", "body": body, "more_body": False})
        return True

    def lost(self) -> None:
        self.gone = True
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            callback()


async def _post(gw: InProcessGateway, link: RecordingLink | None, messages: list[Message],
                lose_after: float | None = None) -> Answer:
    raw = json.dumps(MSG).encode()
    headers = [(k.encode(), v.encode()) for k, v in CLIENT.items()]
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/messages", "query_string": b"",
                             "headers": [*headers, (b"content-length", str(len(raw)).encode())]}
    if link is not None:
        scope["extensions"] = {LINK: link}
    incoming: list[Message] = [{"type": "http.request", "body": raw, "more_body": False}]
    done = asyncio.Event()

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await done.wait()  # with a link nobody should be listening here
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    if lose_after is not None:
        assert link is not None
        asyncio.get_running_loop().call_later(lose_after, link.lost)
    await asyncio.wait_for(gw.app(scope, receive, send), 10)
    return Answer.of(messages)


def _config(tmp_path: Path) -> dict[str, Any]:
    return {"providers": [{"name": "anthropic", "kind": "anthropic", "base_url": "https://anthropic.test",
                           "api_keys": [KEY]}],
            "log": {"access": True, "file": str(tmp_path / "access.log")}}


def _records(gw: InProcessGateway, tmp_path: Path) -> list[dict[str, Any]]:
    gw.app.access_log.flush()
    return [json.loads(line) for line in (tmp_path / "access.log").read_text().splitlines() if line.startswith("{")]


async def test_a_stream_through_the_link_is_byte_exact_and_its_usage_exact(tmp_path: Path) -> None:
    pieces = [START, DELTA, DELTA[:30], DELTA[30:], END[:50], END[50:]]  # lines cut anywhere
    messages: list[Message] = []
    link = RecordingLink(messages)
    async with InProcessGateway(tmp_path, _config(tmp_path), {"anthropic": [Reply(200, SSE, pieces)]}) as gw:
        answer = await _post(gw, link, messages)
        (record,) = _records(gw, tmp_path)
    assert answer.status == 200 and answer.complete and answer.body == b"".join(pieces)
    assert link.written == pieces  # every chunk through the link, only the end through send
    bodies = [m for m in messages if m["type"] == "http.response.body"]
    assert len(bodies) == len(pieces) + 1 and bodies[-1] == {"type": "http.response.body", "body": b"",
                                                               "more_body": False}
    assert (record["input_tokens"], record["output_tokens"], record["cache_read_tokens"]) == (25, 42, 7)
    assert record["bytes_out"] == len(answer.body) and record["status"] == 200
    assert gw.transports["anthropic"].responses[0].released
    assert link.on_lost is None  # nothing left registered once the exchange is over


async def test_a_whole_answer_through_the_link_is_the_providers_and_its_usage_exact(tmp_path: Path) -> None:
    body = (b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],'
            b'"stop_reason":"end_turn","usage":{"input_tokens":11,"output_tokens":5,"cache_read_input_tokens":3}}')
    for takes in (True, False):
        messages: list[Message] = []
        link = RecordingLink(messages, takes=takes)
        reply = Reply(200, {"content-type": "application/json", "request-id": "req_up_1"}, body)
        async with InProcessGateway(tmp_path, _config(tmp_path), {"anthropic": [reply]}) as gw:
            answer = await _post(gw, link, messages)
            record = _records(gw, tmp_path)[-1]
        assert answer.status == 200 and answer.complete and answer.body == body
        assert answer.headers["content-length"] == str(len(body))
        assert [s for s, _, _ in link.whole] == ([200] if takes else [])  # head and body in one call
        assert (record["input_tokens"], record["output_tokens"], record["cache_read_tokens"]) == (11, 5, 3)
        assert record["bytes_out"] == len(body) and record["upstream_request_id"] == "req_up_1"
        assert gw.transports["anthropic"].responses[0].released


async def test_a_link_that_declines_leaves_the_chunks_to_send(tmp_path: Path) -> None:
    pieces = [START, DELTA, END]
    messages: list[Message] = []
    link = RecordingLink(messages, takes=False)
    async with InProcessGateway(tmp_path, _config(tmp_path), {"anthropic": [Reply(200, SSE, pieces)]}) as gw:
        answer = await _post(gw, link, messages)
        (record,) = _records(gw, tmp_path)
    assert answer.body == b"".join(pieces) and answer.complete and not link.written
    assert (record["input_tokens"], record["output_tokens"]) == (25, 42)


async def test_a_lost_link_cancels_the_stream_and_closes_the_upstream(tmp_path: Path) -> None:
    messages: list[Message] = []
    link = RecordingLink(messages)
    reply = Reply(200, SSE, [START, Pause(5.0), DELTA, END])
    async with InProcessGateway(tmp_path, _config(tmp_path), {"anthropic": [reply]}) as gw:
        answer = await _post(gw, link, messages, lose_after=0.1)
        (record,) = _records(gw, tmp_path)
    assert answer.status == 200 and not answer.complete and answer.body == START
    assert gw.transports["anthropic"].responses[0].closed
    assert record["error"] == "client disconnected" and record["bytes_out"] == len(START)


async def test_a_client_gone_before_the_exchange_is_not_served(tmp_path: Path) -> None:
    messages: list[Message] = []
    link = RecordingLink(messages)
    link.gone = True  # the connection was lost while the request was being read
    reply = Reply(200, SSE, [Pause(5.0), START, END])
    async with InProcessGateway(tmp_path, _config(tmp_path), {"anthropic": [reply]}) as gw:
        answer = await _post(gw, link, messages)
        (record,) = _records(gw, tmp_path)
    assert not answer.complete and not link.written
    assert record["error"] == "client disconnected"
    assert all(r.closed for r in gw.transports["anthropic"].responses)


async def test_a_translated_stream_through_the_link_is_what_send_would_carry(tmp_path: Path) -> None:
    config = {"providers": [{"name": "local", "kind": "openai-compatible", "base_url": "https://local.test/v1",
                             "api_keys": [KEY], "auth_header": "bearer"}],
              "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    chunks = [b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n',
              b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n',
              b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
              b'"usage":{"prompt_tokens":9,"completion_tokens":3}}\n\ndata: [DONE]\n\n']
    answers = []
    for with_link in (False, True):
        messages: list[Message] = []
        link = RecordingLink(messages) if with_link else None
        async with InProcessGateway(tmp_path, config, {"local": [Reply(200, SSE, list(chunks))]}) as gw:
            answers.append(await _post(gw, link, messages))
        if link is not None:
            assert link.written  # the events went through the link
    plain, linked = answers
    assert linked.complete and linked.status == 200
    strip = [(e, {k: v for k, v in d.items() if k != "message"}) for e, d in linked.events()]
    assert strip == [(e, {k: v for k, v in d.items() if k != "message"}) for e, d in plain.events()]
    text = "".join(d["delta"].get("text", "") for e, d in linked.events() if e == "content_block_delta")
    assert text == "Hello"
