"""Claude subscriptions through the gateway, in-process: the gateway key in ``x-ccgate-key``,
the client's own ``Authorization`` (an OAuth token) to Anthropic byte for byte, never to any
other provider, and ``x-ccgate-key`` never upstream (docs/keys.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ccgate.store import open_store
from ccgate.upstream.mock import Reply
from tests.gateway.inprocess import InProcessGateway
from tests.gateway.test_inprocess import ANSWER, BACKUP_KEY, JSON, KEY, MSG, anthropic, openai

GATEWAY_TOKEN = "ccgate-test-client-token-0123456789"
OAUTH = "Bearer sk-ant-oat01-stand-in-oauth-token-0123456789"
BETA = "oauth-2025-04-20,claude-code-20250219,interleaved-thinking-2025-05-14"
SUBSCRIBER = {"x-ccgate-key": GATEWAY_TOKEN, "authorization": OAUTH, "anthropic-beta": BETA,
              "anthropic-version": "2023-06-01"}
AUTHED: dict[str, Any] = {"server": {"auth": {"tokens": [{"name": "tester", "token": GATEWAY_TOKEN}]}}}
OK = json.dumps(ANSWER).encode()


def unauthorized() -> Reply:
    return Reply(401, JSON, json.dumps({"type": "error", "error": {
        "type": "authentication_error", "message": "OAuth token has expired"}}).encode())


async def test_oauth_and_betas_reach_anthropic_unchanged(tmp_path: Path) -> None:
    config = {**AUTHED, "providers": [anthropic()]}
    async with InProcessGateway(tmp_path, config, {"anthropic": [Reply(200, JSON, OK)]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=SUBSCRIBER, query=b"beta=true")
    assert answer.status == 200 and answer.body == OK
    (sent,) = gw.transports["anthropic"].sent
    assert sent.header("authorization") == OAUTH
    assert sent.header("anthropic-beta") == BETA
    assert sent.header("x-api-key") is None  # the gateway's key is not added
    assert sent.header("x-ccgate-key") is None
    assert all(GATEWAY_TOKEN not in value for _, value in sent.headers)


async def test_refused_oauth_does_not_take_the_gateway_key_out(tmp_path: Path) -> None:
    config = {**AUTHED, "providers": [anthropic()]}
    script = {"anthropic": [unauthorized(), Reply(200, JSON, OK)]}
    async with InProcessGateway(tmp_path, config, script) as gw:
        refused = await gw.post("/v1/messages", MSG, headers=SUBSCRIBER)
        # A client on the gateway's key still gets through: the key was not disabled.
        plain = await gw.post("/v1/messages", MSG, headers={"authorization": f"Bearer {GATEWAY_TOKEN}"})
    assert refused.status == 401 and b"OAuth token has expired" in refused.body
    assert plain.status == 200
    first, second = gw.transports["anthropic"].sent
    assert first.header("authorization") == OAUTH
    assert second.header("x-api-key") == KEY and second.header("authorization") is None


async def test_wrong_gateway_key_is_refused_before_anything_goes_upstream(tmp_path: Path) -> None:
    config = {**AUTHED, "providers": [anthropic()]}
    # x-ccgate-key is the credential checked, even beside a valid token in Authorization.
    headers = {**SUBSCRIBER, "x-ccgate-key": "wrong-key-0000000000",
               "authorization": f"Bearer {GATEWAY_TOKEN}"}
    async with InProcessGateway(tmp_path, config, {}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=headers)
    assert answer.status == 401 and not gw.transports["anthropic"].sent
    assert "wrong-key" not in answer.body.decode()


async def test_translated_provider_never_gets_the_oauth_token(tmp_path: Path) -> None:
    chat = {"id": "c1", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    config = {**AUTHED, "providers": [openai()]}
    async with InProcessGateway(tmp_path, config, {"local": [Reply(200, JSON, json.dumps(chat).encode())]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=SUBSCRIBER)
    assert answer.status == 200
    (sent,) = gw.transports["local"].sent
    assert sent.header("authorization") == f"Bearer {BACKUP_KEY}"
    assert not any("sk-ant-oat" in value or GATEWAY_TOKEN in value for _, value in sent.headers)


async def test_anthropic_compatible_provider_gets_its_own_key(tmp_path: Path) -> None:
    compatible = {"name": "compat", "kind": "anthropic-compatible", "base_url": "https://compat.test",
                  "api_keys": [BACKUP_KEY]}
    config = {**AUTHED, "providers": [compatible]}
    async with InProcessGateway(tmp_path, config, {"compat": [Reply(200, JSON, OK)]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=SUBSCRIBER)
    assert answer.status == 200
    (sent,) = gw.transports["compat"].sent
    assert sent.header("x-api-key") == BACKUP_KEY
    assert sent.header("authorization") is None and sent.header("x-ccgate-key") is None


async def test_keyless_third_party_is_refused_rather_than_sent_the_token(tmp_path: Path) -> None:
    # Without client auth, a keyless (bring-your-own-key) provider would get the client's
    # credential; with x-ccgate-key that credential is meant for Anthropic only.
    compatible = {"name": "compat", "kind": "anthropic-compatible", "base_url": "https://compat.test"}
    async with InProcessGateway(tmp_path, {"providers": [compatible]}, {}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=SUBSCRIBER)
    assert answer.status == 500 and "x-ccgate-key" in answer.body.decode()
    assert not gw.transports["compat"].sent


async def test_without_client_auth_the_header_still_marks_the_credential_as_own(tmp_path: Path) -> None:
    headers = {**SUBSCRIBER, "x-ccgate-key": "ccgate-local"}
    async with InProcessGateway(tmp_path, {"providers": [anthropic()]}, {"anthropic": [Reply(200, JSON, OK)]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers=headers)
    assert answer.status == 200
    (sent,) = gw.transports["anthropic"].sent
    assert sent.header("authorization") == OAUTH and sent.header("x-ccgate-key") is None
    assert sent.header("x-api-key") is None


async def test_gateway_key_alone_uses_the_provider_key(tmp_path: Path) -> None:
    config = {**AUTHED, "providers": [anthropic()]}
    async with InProcessGateway(tmp_path, config, {"anthropic": [Reply(200, JSON, OK)]}) as gw:
        answer = await gw.post("/v1/messages", MSG, headers={"x-ccgate-key": GATEWAY_TOKEN})
    assert answer.status == 200
    (sent,) = gw.transports["anthropic"].sent
    assert sent.header("x-api-key") == KEY and sent.header("x-ccgate-key") is None


async def test_usage_is_attributed_to_the_gateway_key(tmp_path: Path) -> None:
    db = tmp_path / "usage.db"
    config = {**AUTHED, "providers": [anthropic()], "store": {"enabled": True, "path": str(db)}}
    async with InProcessGateway(tmp_path, config, {"anthropic": [Reply(200, JSON, OK)]}) as gw:
        assert (await gw.post("/v1/messages", MSG, headers=SUBSCRIBER)).status == 200
    store = open_store(str(db))
    try:
        groups = store.usage_summary(since=None, by="key")
    finally:
        store.close()
    assert [(g.group, g.requests, g.input_tokens, g.output_tokens) for g in groups] == [
        ("config:tester", 1, 5, 2)]
