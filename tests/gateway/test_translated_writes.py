"""A translated stream's writes (server/translated.py): the head and ``message_start`` leave with
the provider's first events, not on their own, and a short answer is one body message whole;
pings and errors still go out when nothing else does. In-process (tests/gateway/inprocess.py),
counting the ASGI messages the client side receives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ccgate.upstream.mock import Pause, Reply
from tests.gateway.inprocess import Answer, InProcessGateway
from tests.gateway.test_inprocess import CLIENT, MSG, SSE, chunk, openai

ROUTE: dict[str, Any] = {"providers": [openai()], "models": [{"match": "claude-*", "to": "local/qwen3"}]}
DONE = b"data: [DONE]\n\n"


def _bodies(answer: Answer) -> list[bytes]:
    return [m.get("body", b"") for m in answer.messages if m["type"] == "http.response.body"]


async def _stream(tmp_path: Path, pieces: list[Any], config: dict[str, Any] = ROUTE) -> Answer:
    async with InProcessGateway(tmp_path, config, {"local": [Reply(200, SSE, pieces)]}) as gw:
        return await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)


async def test_a_short_answer_is_one_body_message_whole(tmp_path: Path) -> None:
    answer = await _stream(tmp_path, [chunk({"role": "assistant", "content": "Hi"}) + chunk({}, "stop") + DONE])
    assert [m["type"] for m in answer.messages] == ["http.response.start", "http.response.body"]
    assert not answer.messages[-1].get("more_body", False)
    names = [e for e, _ in answer.events()]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "content_block_delta" in names


async def test_message_start_waits_for_the_first_events_not_for_the_whole_answer(tmp_path: Path) -> None:
    pieces = [chunk({"content": "Hel"}), Pause(0.05), chunk({"content": "lo"}, "stop"), DONE]
    answer = await _stream(tmp_path, pieces)
    first, *rest = _bodies(answer)
    assert first.startswith(b"event: message_start") and b'"text":"Hel"' in first
    assert rest and b'"text":"lo"' in b"".join(rest)
    assert answer.complete


async def test_a_silent_provider_still_gets_the_client_its_head_and_a_ping(tmp_path: Path) -> None:
    config = {**ROUTE, "server": {"ping_interval": 0.02}}
    answer = await _stream(tmp_path, [Pause(0.1), chunk({"content": "Hi"}, "stop"), DONE], config)
    first = _bodies(answer)[0]
    assert first.startswith(b"event: message_start") and b"event: ping" in first and b"Hi" not in first
    assert [e for e, _ in answer.events()][-1] == "message_stop"
