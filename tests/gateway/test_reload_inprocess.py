"""Config reload, model discovery aliases and the config admin API, in-process
(tests/gateway/inprocess.py): the real ``Gateway`` with scripted providers, no sockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ccgate.config.load import load_config
from ccgate.errors import ConfigError, UpstreamUnreachable
from ccgate.routing import KeyState
from ccgate.server import reload as reload_module
from ccgate.server.openapi import openapi_document
from ccgate.upstream.mock import Pause, Reply
from tests.gateway.inprocess import InProcessGateway
from tests.gateway.test_inprocess import ANSWER, BACKUP_KEY, CLIENT, JSON, MSG, SSE, anthropic, openai
from tests.store.test_admin import conforms

ADMIN_KEY = "admin-key-for-reload-tests-0123456789"
MODELS = {"object": "list", "data": [{"id": "qwen3:8b", "object": "model", "owned_by": "library"},
                                     {"id": "vendor/model", "object": "model", "name": "Vendor: Model",
                                      "context_length": 131072}]}
COMPLETION = {"id": "c1", "object": "chat.completion", "model": "qwen3:8b",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


def ok(n: int = 1) -> list[Reply]:
    return [Reply(200, JSON, json.dumps(ANSWER).encode()) for _ in range(n)]


async def test_reload_swaps_providers_for_new_requests_and_closes_the_old(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, {"providers": [anthropic()]}, {"anthropic": ok()}) as gw:
        assert (await gw.post("/v1/messages", MSG, headers=CLIENT)).status == 200
        old = gw.transports["anthropic"]
        gw.write_config({"providers": [anthropic("other")]}, {"other": ok()})
        outcome = await gw.app.reload("test")
        assert outcome.reloaded and outcome.providers == {"other": "added", "anthropic": "removed"}
        assert (await gw.post("/v1/messages", MSG, headers=CLIENT)).status == 200
        for _ in range(5):
            await asyncio.sleep(0)  # the retirement runs in the background
        assert len(gw.transports["other"].sent) == 1 and gw.transports["other"].started
        assert not old.started  # no request held the old runtime: closed at once


async def test_a_stream_in_flight_finishes_on_the_old_provider(tmp_path: Path) -> None:
    start = b'event: message_start\ndata: {"type":"message_start"}\n\n'
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    slow = Reply(200, SSE, [start, Pause(0.2), stop])
    async with InProcessGateway(tmp_path, {"providers": [anthropic()]}, {"anthropic": [slow]}) as gw:
        old = gw.transports["anthropic"]
        stream = asyncio.create_task(gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT))
        while not old.sent:
            await asyncio.sleep(0.01)
        # The same provider, changed (its URL): a fresh transport for the requests after the reload.
        gw.write_config({"providers": [anthropic(base_url="https://moved.test")]}, {"anthropic": ok()})
        outcome = await gw.app.reload("test")
        assert outcome.providers == {"anthropic": "changed"}
        assert (await gw.post("/v1/messages", MSG, headers=CLIENT)).status == 200
        assert gw.transports["anthropic"] is not old and old.started  # still streaming
        answer = await stream
        assert answer.status == 200 and answer.body == start + stop and answer.complete
        for _ in range(10):
            await asyncio.sleep(0)
        assert not old.started  # closed once its last request was done
        assert len(old.sent) == 1 and len(gw.transports["anthropic"].sent) == 1


async def test_a_bad_config_is_refused_and_the_old_one_keeps_serving(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, {"providers": [anthropic()]}, {"anthropic": ok(2)}) as gw:
        gw.write_config({"providers": [anthropic()], "models": [{"match": "*", "to": "nowhere"}]})
        with pytest.raises(ConfigError) as check:  # what `ccgate config check` says
            load_config(str(gw.path), {})
        outcome = await gw.app.reload("test")
        assert not outcome.reloaded and outcome.message == f"config error: {check.value}"
        assert (await gw.post("/v1/messages", MSG, headers=CLIENT)).status == 200
        gw.path.write_text("providers: [")
        assert "invalid YAML" in (await gw.app.reload("test")).message
        assert (await gw.post("/v1/messages", MSG, headers=CLIENT)).status == 200
        assert gw.transports["anthropic"].started and len(gw.all_transports) == 1


async def test_unchanged_providers_keep_their_state_and_changed_ones_start_fresh(tmp_path: Path) -> None:
    config = {"providers": [anthropic(), openai()]}
    async with InProcessGateway(tmp_path, config) as gw:
        gw.app.runtime.upstreams["anthropic"].pool.disable(0, "401 from the provider")
        gw.app.runtime.upstreams["local"].pool.disable(0, "401 from the provider")
        before = gw.app.runtime
        # The same anthropic provider; local gets a new key.
        gw.write_config({"providers": [anthropic(), openai(api_keys=["sk-new-local-key-0123456789"])]})
        outcome = await gw.app.reload("test")
        after = gw.app.runtime
        assert outcome.providers == {"anthropic": "kept", "local": "changed"}
        assert after.upstreams["anthropic"] is before.upstreams["anthropic"]
        assert after.transports["anthropic"] is before.transports["anthropic"]
        assert not after.upstreams["anthropic"].usable()  # still disabled: nothing changed
        assert after.upstreams["local"].pool.snapshot()[0]["state"] == KeyState.HEALTHY
        # Routing settings of the breaker apply to every provider: all start fresh.
        gw.write_config({"providers": [anthropic(), openai()], "routing": {"breaker": {"failure_threshold": 2}}})
        assert set((await gw.app.reload("test")).providers.values()) == {"changed"}
        assert gw.app.runtime.upstreams["anthropic"].usable()


async def test_settings_read_at_start_are_reported_not_applied(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, {"providers": [anthropic()]}) as gw:
        gw.write_config({"server": {"port": 4999}, "providers": [anthropic()]})
        outcome = await gw.app.reload("test")
    assert outcome.reloaded and outcome.restart_needed == ["server.port"]
    assert "next restart: server.port" in outcome.message


async def test_the_watch_reloads_when_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reload_module, "WATCH_INTERVAL", 0.02)
    config = {"server": {"watch_config": True}, "providers": [anthropic()]}
    async with InProcessGateway(tmp_path, config) as gw:
        gw.write_config({**config, "providers": [anthropic("other")]})
        for _ in range(200):
            if gw.app.reloader.last is not None:
                break
            await asyncio.sleep(0.02)
        assert gw.app.reloader.last is not None and gw.app.reloader.last.trigger == "config file changed"
        assert [p.name for p in gw.app.runtime.config.providers] == ["other"]
        # A bad file is refused once, not retried on every tick.
        gw.path.write_text("providers: [")
        for _ in range(200):
            if not gw.app.reloader.last.reloaded:
                break
            await asyncio.sleep(0.02)
        refused = gw.app.reloader.last
        await asyncio.sleep(0.1)
        assert gw.app.reloader.last is refused and not refused.reloaded


# Model discovery ------------------------------------------------------------------------------


def models_reply(body: dict[str, Any] = MODELS) -> Reply:
    return Reply(200, JSON, json.dumps(body).encode())


async def test_models_lists_discovered_models_under_aliases_claude_code_keeps(tmp_path: Path) -> None:
    config = {"providers": [openai()], "models": [{"match": "*", "to": "local/default-model"}]}
    completion = Reply(200, JSON, json.dumps(COMPLETION).encode())
    async with InProcessGateway(tmp_path, config, {"local": [models_reply(), completion]}) as gw:
        listing = await gw.request("GET", "/v1/models", headers=CLIENT, query=b"limit=1000")
        ids = [m["id"] for m in listing.json()["data"]]
        assert ids == ["claude-via-local/qwen3:8b", "claude-via-local/vendor/model"]
        # Claude Code's discovery filter (2.1.223+): ids containing "claude" or "anthropic".
        assert all("claude" in i or "anthropic" in i for i in ids)
        names = {m["id"]: m["display_name"] for m in listing.json()["data"]}
        assert names["claude-via-local/vendor/model"] == "Vendor: Model (local)"
        assert listing.json()["data"][1]["max_input_tokens"] == 131072
        answer = await gw.post("/v1/messages", {**MSG, "model": "claude-via-local/qwen3:8b"}, headers=CLIENT)
    assert answer.status == 200 and answer.json()["content"][0]["text"] == "hi"
    models_call, chat = gw.transports["local"].sent
    assert models_call.path == "/models" and models_call.header("authorization") == f"Bearer {BACKUP_KEY}"
    # The alias beats the catch-all rule, and the real model id goes upstream.
    assert chat.path == "/chat/completions" and json.loads(chat.body)["model"] == "qwen3:8b"


async def test_models_are_cached_and_a_failure_serves_the_last_list(tmp_path: Path) -> None:
    broken = UpstreamUnreachable("provider 'local': connection refused", hop="tcp")
    async with InProcessGateway(tmp_path, {"providers": [openai()]}, {"local": [models_reply(), broken]}) as gw:
        first = await gw.request("GET", "/v1/models", headers=CLIENT)
        again = await gw.request("GET", "/v1/models", headers=CLIENT)
        assert len(gw.transports["local"].sent) == 1 and again.body == first.body  # cached
        gw.clock.advance(61)
        stale = await gw.request("GET", "/v1/models", headers=CLIENT)
        assert len(gw.transports["local"].sent) == 2 and stale.body == first.body  # last good list
        assert gw.app.runtime.providers["local"].catalog.error is not None


async def test_models_without_discovery_lists_the_exact_routes(tmp_path: Path) -> None:
    html = Reply(200, {"content-type": "text/html"}, b"<html>proxy login</html>")
    config = {"providers": [openai()], "models": [{"match": "claude-local", "to": "local/qwen3:8b"}]}
    async with InProcessGateway(tmp_path, config, {"local": [html]}) as gw:
        listing = await gw.request("GET", "/v1/models", headers=CLIENT)
    assert [m["id"] for m in listing.json()["data"]] == ["claude-local"]


# The config admin API ---------------------------------------------------------------------------


def admin_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"store": {"path": str(tmp_path / "ccgate.db")}, "server": {"admin": {"key": "env:ADMIN"}}, **extra}


async def test_admin_reload_and_routes(tmp_path: Path) -> None:
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    config = admin_config(tmp_path, providers=[anthropic(), openai()],
                          models=[{"match": "claude-*haiku*", "to": "local/qwen3:8b", "fallbacks": ["anthropic"]}])
    async with InProcessGateway(tmp_path, config, env={"ADMIN": ADMIN_KEY}) as gw:
        assert (await gw.request("POST", "/admin/config/reload")).status == 401
        routes = (await gw.request("GET", "/admin/routes", headers=auth)).json()
        assert routes["default_provider"] == "anthropic"
        assert routes["routes"] == [{"match": "claude-*haiku*", "to": {"provider": "local", "model": "qwen3:8b"},
                                     "fallbacks": [{"provider": "anthropic", "model": None}],
                                     "display_name": None, "max_tokens": None, "context_window": None}]
        assert [p["alias_prefix"] for p in routes["providers"]] == [None, "claude-via-local/"]

        gw.write_config(admin_config(tmp_path, providers=[anthropic()]))
        reloaded = await gw.request("POST", "/admin/config/reload", headers=auth)
        assert reloaded.status == 200 and reloaded.json()["reloaded"] is True
        assert reloaded.json()["providers"] == {"anthropic": "kept", "local": "removed"}
        assert (await gw.request("GET", "/admin/routes", headers=auth)).json()["routes"] == []

        gw.write_config(admin_config(tmp_path, providers=[anthropic()], models=[{"match": "x", "to": "gone"}]))
        refused = await gw.request("POST", "/admin/config/reload", headers=auth)
        assert refused.status == 422 and refused.json()["type"] == "error"
        message = refused.json()["error"]["message"]
        assert message.startswith("config error: ") and "unknown provider 'gone'" in message
        assert "still serving the previous config" in message
        routes_now = await gw.request("GET", "/admin/routes", headers=auth)

    # Every answer is what the OpenAPI document says.
    doc = openapi_document("test")
    for answer, path, method in ((reloaded, "/admin/config/reload", "post"), (refused, "/admin/config/reload", "post"),
                                 (routes_now, "/admin/routes", "get")):
        schema = doc["paths"][path][method]["responses"][str(answer.status)]["content"]["application/json"]["schema"]
        conforms(answer.json(), schema, doc["components"]["schemas"])


async def test_a_reload_can_change_the_admin_key(tmp_path: Path) -> None:
    new_key = "a-new-admin-key-0123456789abcdef"
    async with InProcessGateway(tmp_path, admin_config(tmp_path, providers=[anthropic()]),
                                env={"ADMIN": ADMIN_KEY, "NEW": new_key}) as gw:
        config = admin_config(tmp_path, providers=[anthropic()])
        config["server"]["admin"]["key"] = "env:NEW"
        gw.write_config(config)
        assert (await gw.app.reload("test")).reloaded
        assert (await gw.request("GET", "/admin/routes", headers={"x-api-key": ADMIN_KEY})).status == 401
        assert (await gw.request("GET", "/admin/routes", headers={"x-api-key": new_key})).status == 200
        config["server"]["admin"]["key"] = "too-short"
        gw.write_config(config)
        refused = await gw.app.reload("test")
        assert not refused.reloaded and "at least 16" in refused.message
        assert (await gw.request("GET", "/admin/routes", headers={"x-api-key": new_key})).status == 200


async def test_admin_providers_connect_list_models_and_remove_with_reloads(tmp_path: Path) -> None:
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with InProcessGateway(tmp_path, admin_config(tmp_path, providers=[anthropic()]),
                                env={"ADMIN": ADMIN_KEY}) as gw:
        bad = await gw.post("/admin/providers", {"base_url": "ftp://x", "kind": "openai-compatible"}, headers=auth)
        assert bad.status == 400 and bad.json()["type"] == "error"
        before = gw.path.read_bytes()
        assert (await gw.post("/admin/providers", {"nmae": "typo"}, headers=auth)).status == 400
        assert gw.path.read_bytes() == before  # bad input changes nothing on disk

        body = {"base_url": "https://newp.test/v1", "kind": "openai-compatible", "name": "newp",
                "key": "sk-newp-secret-0123456789", "models": ["qwen3:8b"], "test": False}
        added = await gw.post("/admin/providers", body, headers=auth)
        assert added.status == 201, added.body
        assert added.json()["saved"] and added.json()["reload"]["providers"]["newp"] == "added"
        assert "sk-newp-secret" not in gw.path.read_text()  # the key went to a secrets file
        assert [p.name for p in gw.app.runtime.config.providers] == ["anthropic", "newp"]
        listed = (await gw.request("GET", "/admin/providers", headers=auth)).json()["data"]
        assert [p["name"] for p in listed] == ["anthropic", "newp"] and "sk-newp" not in json.dumps(listed)
        assert (await gw.request("GET", "/admin/providers/nobody/models", headers=auth)).status == 404

        removed = await gw.request("DELETE", "/admin/providers/newp", headers=auth)
        assert removed.status == 200 and removed.json()["reload"]["providers"]["newp"] == "removed"
        assert [p.name for p in gw.app.runtime.config.providers] == ["anthropic"]
