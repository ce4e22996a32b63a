"""What the official SDKs rely on, through the in-process gateway (issue 13, "Real clients"):
``models.retrieve()``, ``models.list()`` auto-paging, ``_request_id`` on translated answers,
thinking blocks only when thinking was asked for, and message ids that never repeat.

The real ``anthropic`` SDK talks to the real ``Gateway`` over httpx's ASGI transport (no
socket); providers are scripted (tests/gateway/inprocess.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from ccgate.upstream.mock import Reply
from tests.gateway.inprocess import InProcessGateway
from tests.gateway.test_inprocess import CLIENT, JSON, MSG, SSE, openai
from tests.gateway.test_inprocess import anthropic as anthropic_provider

OPENAI_MODELS = {"object": "list", "data": [{"id": "qwen3:8b", "object": "model"},
                                            {"id": "vendor/model", "object": "model", "name": "Vendor: Model"}]}
REASONED = {"id": "chatcmpl-same", "object": "chat.completion", "model": "qwen3:8b",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "4", "reasoning_content": "2+2=4"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def routes(n: int) -> list[dict[str, Any]]:
    return [{"match": f"claude-m-{i:02d}", "to": "anthropic"} for i in range(n)]


@asynccontextmanager
async def sdk(gw: InProcessGateway) -> AsyncIterator[anthropic.AsyncAnthropic]:
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=gw.app), base_url="http://gateway.test")
    client = anthropic.AsyncAnthropic(base_url="http://gateway.test", api_key="sk-client-own-key",
                                      http_client=http, max_retries=0)
    try:
        yield client
    finally:
        await client.close()


def reasoned(n: int = 1) -> list[Reply]:
    return [Reply(200, JSON, json.dumps(REASONED).encode()) for _ in range(n)]


# models.list() paging ----------------------------------------------------------------------------


async def test_sdk_auto_paging_walks_every_page_of_the_local_list(tmp_path: Path) -> None:
    config = {"providers": [anthropic_provider()], "models": routes(45)}
    async with InProcessGateway(tmp_path, config) as gw, sdk(gw) as client:
        first = await client.models.list()  # Anthropic's default page: 20
        assert len(first.data) == 20 and first.has_more and first.last_id == "claude-m-19"
        ids = [m.id async for m in await client.models.list(limit=7)]
        assert ids == [f"claude-m-{i:02d}" for i in range(45)]
        back = await client.models.list(before_id="claude-m-10", limit=4)
        assert [m.id for m in back.data] == ["claude-m-06", "claude-m-07", "claude-m-08", "claude-m-09"]
        assert back.has_more and back.first_id == "claude-m-06"
        walked_back = [m.id async for m in await client.models.list(before_id="claude-m-10", limit=4)]
        assert sorted(walked_back) == [f"claude-m-{i:02d}" for i in range(10)]


@pytest.mark.parametrize(("query", "ids", "has_more"), [
    (b"limit=2", ["claude-m-00", "claude-m-01"], True),
    (b"limit=2&after_id=claude-m-02", ["claude-m-03", "claude-m-04"], False),
    (b"limit=3&after_id=claude-m-04", [], False),
    (b"limit=2&before_id=claude-m-01", ["claude-m-00"], False),
    (b"limit=1000", [f"claude-m-{i:02d}" for i in range(5)], False),
    (b"after_id=gone", [], False),  # the id went away between two pages: an empty last page
    (b"beta=true", [f"claude-m-{i:02d}" for i in range(5)], False),
])
async def test_model_list_pages_as_anthropic_does(tmp_path: Path, query: bytes, ids: list[str],
                                                  has_more: bool) -> None:
    config = {"providers": [anthropic_provider()], "models": routes(5)}
    async with InProcessGateway(tmp_path, config) as gw:
        page = (await gw.request("GET", "/v1/models", headers=CLIENT, query=query)).json()
    assert [m["id"] for m in page["data"]] == ids and page["has_more"] is has_more
    assert page["first_id"] == (ids[0] if ids else None) and page["last_id"] == (ids[-1] if ids else None)


@pytest.mark.parametrize("query", [b"limit=0", b"limit=1001", b"limit=-1", b"limit=ten",
                                   b"after_id=a&before_id=b"])
async def test_bad_paging_parameters_are_a_400_naming_them(tmp_path: Path, query: bytes) -> None:
    config = {"providers": [anthropic_provider()], "models": routes(3)}
    async with InProcessGateway(tmp_path, config) as gw:
        answer = await gw.request("GET", "/v1/models", headers=CLIENT, query=query)
    assert answer.status == 400 and answer.json()["error"]["type"] == "invalid_request_error"
    assert ("limit" in answer.json()["error"]["message"]) != ("before_id" in answer.json()["error"]["message"])


# models.retrieve() -------------------------------------------------------------------------------


async def test_sdk_retrieve_answers_local_models_and_alias_ids_with_slashes(tmp_path: Path) -> None:
    config = {"providers": [openai()], "models": [{"match": "claude-local", "to": "local/qwen3:8b",
                                                   "display_name": "Local Qwen", "context_window": 32768}]}
    scripts = {"local": [Reply(200, JSON, json.dumps(OPENAI_MODELS).encode())]}
    async with InProcessGateway(tmp_path, config, scripts) as gw, sdk(gw) as client:
        local = await client.models.retrieve("claude-local")
        alias = await client.models.retrieve("claude-via-local/vendor/model")
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client.models.retrieve("gpt-unknown")
    assert (local.id, local.display_name, local.type) == ("claude-local", "Local Qwen", "model")
    assert alias.id == "claude-via-local/vendor/model" and alias.display_name == "Vendor: Model (local)"
    assert missing.value.body == {"type": "error", "request_id": missing.value.request_id,
                                  "error": {"type": "not_found_error", "message": "model: gpt-unknown"}}
    assert [s.path for s in gw.transports["local"].sent] == ["/models"]  # nothing else went upstream


async def test_retrieve_on_a_passthrough_route_is_relayed_to_the_provider(tmp_path: Path) -> None:
    info = {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5",
            "created_at": "2025-09-29T00:00:00Z"}
    missing = {"type": "error", "error": {"type": "not_found_error", "message": "model: nope"}}
    scripts = {"anthropic": [Reply(200, JSON, json.dumps(info).encode()),
                             Reply(404, JSON, json.dumps(missing).encode())]}
    async with InProcessGateway(tmp_path, {"providers": [anthropic_provider()]}, scripts) as gw, \
            sdk(gw) as client:
        model = await client.models.retrieve("claude-sonnet-4-5")
        with pytest.raises(anthropic.NotFoundError):
            await client.models.retrieve("nope")
    assert model.id == "claude-sonnet-4-5" and model.display_name == "Claude Sonnet 4.5"
    sent = gw.transports["anthropic"].sent
    assert [s.path for s in sent] == ["/v1/models/claude-sonnet-4-5", "/v1/models/nope"]
    assert sent[0].header("x-api-key") != "sk-client-own-key"  # the provider's key, not the client's


async def test_retrieve_needs_the_client_credential_like_the_list(tmp_path: Path) -> None:
    config = {"providers": [anthropic_provider()], "models": routes(1),
              "server": {"auth": {"tokens": ["env:GATEWAY_TOKEN"]}}}
    env = {"GATEWAY_TOKEN": "gw-token-0123456789abcdef"}
    async with InProcessGateway(tmp_path, config, env=env) as gw:
        anonymous = await gw.request("GET", "/v1/models/claude-m-00")
        allowed = await gw.request("GET", "/v1/models/claude-m-00", headers={"x-api-key": env["GATEWAY_TOKEN"]})
        wrong_method = await gw.request("POST", "/v1/models/claude-m-00", headers={"x-api-key": env["GATEWAY_TOKEN"]})
    assert anonymous.status == 401 and allowed.status == 200 and allowed.json()["id"] == "claude-m-00"
    assert wrong_method.status == 404


# Translated answers ------------------------------------------------------------------------------


async def test_translated_answers_carry_a_request_id_the_sdk_exposes(tmp_path: Path) -> None:
    sse = (b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
           b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    scripts = {"local": [*reasoned(), Reply(200, SSE, sse)]}
    async with InProcessGateway(tmp_path, {"providers": [openai()]}, scripts) as gw, sdk(gw) as client:
        message = await client.messages.create(**MSG)
        stream = await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)
        count = await gw.post("/v1/messages/count_tokens", {"model": "m", "messages": MSG["messages"]},
                              headers=CLIENT)
    assert message._request_id is not None and message._request_id.startswith("req_ccgate_")
    assert stream.status == 200 and stream.headers["request-id"].startswith("req_ccgate_")
    assert count.status == 200 and count.headers["request-id"].startswith("req_ccgate_")
    assert len({message._request_id, stream.headers["request-id"], count.headers["request-id"]}) == 3


async def test_reasoning_is_thinking_only_when_the_request_enabled_thinking(tmp_path: Path) -> None:
    sse = (b'data: {"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}\n\n'
           b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"4"},"finish_reason":"stop"}]}\n\n'
           b"data: [DONE]\n\n")
    scripts = {"local": [*reasoned(2), Reply(200, SSE, sse), Reply(200, SSE, sse)]}
    async with InProcessGateway(tmp_path, {"providers": [openai()]}, scripts) as gw:
        plain = (await gw.post("/v1/messages", MSG, headers=CLIENT)).json()
        asked = (await gw.post("/v1/messages", {**MSG, **THINKING}, headers=CLIENT)).json()
        plain_stream = (await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)).events()
        adaptive_stream = (await gw.post("/v1/messages", {**MSG, "stream": True, "thinking": {"type": "adaptive"}},
                                         headers=CLIENT)).events()
    assert [b["type"] for b in plain["content"]] == ["text"]
    assert [b["type"] for b in asked["content"]] == ["thinking", "text"]
    assert asked["content"][0]["signature"].startswith("ccgate:v1:")

    def blocks(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
        return [d["content_block"]["type"] for e, d in events if e == "content_block_start"]

    assert blocks(plain_stream) == ["text"] and blocks(adaptive_stream) == ["thinking", "text"]


async def test_translated_message_ids_never_repeat_when_the_upstream_repeats_its_id(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, {"providers": [openai()]}, {"local": reasoned(3)}) as gw:
        ids = [(await gw.post("/v1/messages", MSG, headers=CLIENT)).json()["id"] for _ in range(3)]
    assert len(set(ids)) == 3 and all(i.startswith("msg_ccgate_") for i in ids)
