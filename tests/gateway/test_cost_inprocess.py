"""Cost and budgets through the whole gateway, in-process: the usage row of a request carries
its cost (priced in the writer thread, 5-minute and 1-hour cache writes apart), and a key
whose budget is spent is refused before any provider is tried, with Anthropic's error shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ccgate.store import KeyManager, SQLiteStore
from ccgate.upstream.mock import Reply
from tests.gateway.inprocess import InProcessGateway
from tests.gateway.test_inprocess import JSON, MSG, SSE, anthropic, openai

# An Anthropic stream whose usage has every kind of token, the cache writes split by TTL.
START_USAGE = {"input_tokens": 1000, "output_tokens": 1, "cache_read_input_tokens": 20_000,
               "cache_creation_input_tokens": 4000,
               "cache_creation": {"ephemeral_5m_input_tokens": 3000, "ephemeral_1h_input_tokens": 1000}}
# Sonnet 4.5: 3 in, 15 out, 0.30 cache read, 3.75 5m write, 6 1h write (USD per million).
STREAM_COST = (1000 * 3 + 500 * 15 + 20_000 * 0.3 + 3000 * 3.75 + 1000 * 6) / 1e6


def stream_reply() -> Reply:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": None, "usage": START_USAGE}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 500}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()
    return Reply(200, SSE, body)


def json_reply(usage: dict[str, int]) -> Reply:
    return Reply(200, JSON, json.dumps({
        "id": "msg_2", "type": "message", "role": "assistant", "model": "x",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": usage}).encode())


def config(tmp: Path, **extra: Any) -> dict[str, Any]:
    return {"providers": [anthropic()], "store": {"path": str(tmp / "ccgate.db")}, **extra}


def issue(tmp: Path, **budgets: float) -> str:
    store = SQLiteStore(tmp / "ccgate.db")
    try:
        return KeyManager(store).create("alice", **budgets)[1]  # type: ignore[arg-type]
    finally:
        store.close()


def rows(tmp: Path) -> list[dict[str, Any]]:
    import sqlite3
    conn = sqlite3.connect(tmp / "ccgate.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM usage ORDER BY id")]
    finally:
        conn.close()


async def test_usage_row_carries_the_cost_with_1h_cache_writes_priced_apart(tmp_path: Path) -> None:
    secret = issue(tmp_path)
    async with InProcessGateway(tmp_path, config(tmp_path), {"anthropic": [stream_reply()]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True}, headers={"x-api-key": secret})
        assert answer.status == 200
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
    [row] = rows(tmp_path)
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (1000, 500, 20_000)
    assert (row["cache_creation_tokens"], row["cache_write_1h_tokens"]) == (4000, 1000)
    assert row["cost_usd"] == pytest.approx(STREAM_COST)


async def test_a_rewritten_route_prices_the_model_the_provider_was_sent(tmp_path: Path) -> None:
    cfg = config(tmp_path, models=[{"match": "cheap", "to": "anthropic/claude-haiku-4-5-20251001"}])
    script = {"anthropic": [json_reply({"input_tokens": 2_000_000, "output_tokens": 0})]}
    async with InProcessGateway(tmp_path, cfg, script) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "model": "cheap"}, headers={"x-api-key": "sk-own"})
        assert answer.status == 200
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
    [row] = rows(tmp_path)
    assert row["model"] == "cheap" and row["cost_usd"] == pytest.approx(2.0)  # Haiku 4.5: $1 / M input


async def test_unpriced_provider_records_null_cost_until_config_prices_it(tmp_path: Path) -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    cfg = config(tmp_path, providers=[openai()], models=[{"match": "*", "to": "local/qwen"}])
    reply = Reply(200, JSON, json.dumps({"id": "c1", "object": "chat.completion", "model": "qwen", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}}).encode())
    async with InProcessGateway(tmp_path, cfg, {"local": [reply]}) as gw:
        assert (await gw.post("/v1/messages", MSG, headers={"x-api-key": "sk-own"})).status == 200
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
    priced = {**cfg, "prices": {"local/qwen": {"input": 0.5, "output": 2.0}}}
    async with InProcessGateway(tmp_path, priced, {"local": [reply]}) as gw:
        assert (await gw.post("/v1/messages", MSG, headers={"x-api-key": "sk-own"})).status == 200
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
    first, second = rows(tmp_path)
    assert first["input_tokens"] == usage["input_tokens"] and first["cost_usd"] is None
    assert second["cost_usd"] == pytest.approx(2.5)


async def test_spent_daily_budget_is_refused_with_a_429_that_is_not_retried(tmp_path: Path) -> None:
    secret = issue(tmp_path, budget_day=0.03, budget_month=10.0)
    script = {"anthropic": [stream_reply(), stream_reply()]}
    async with InProcessGateway(tmp_path, config(tmp_path), script) as gw:
        first = await gw.post("/v1/messages", {**MSG, "stream": True}, headers={"x-api-key": secret})
        assert first.status == 200  # under budget when it started; it may overshoot
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
        refused = await gw.post("/v1/messages", MSG, headers={"x-api-key": secret})
        assert len(gw.transports["anthropic"].sent) == 1  # no provider was tried
    assert refused.status == 429
    body = refused.json()
    assert body["type"] == "error" and body["request_id"].startswith("req_")
    assert body["error"]["type"] == "rate_limit_error"
    message = body["error"]["message"]
    assert "'alice'" in message and "daily budget" in message and "$0.03" in message
    assert "resets at " in message and "T00:00:00Z" in message
    assert refused.headers["x-should-retry"] == "false"
    assert 0 < int(refused.headers["retry-after"]) <= 86400
    assert secret not in refused.body.decode()
    # key names are not metric labels unless server.metrics.key_names
    assert 'ccgate_budget_refused_total{client="-",window="daily"} 1.0' in gw.app.metrics.render().decode()


async def test_a_restarted_gateway_seeds_spending_from_the_store(tmp_path: Path) -> None:
    secret = issue(tmp_path, budget_month=0.01)
    async with InProcessGateway(tmp_path, config(tmp_path), {"anthropic": [stream_reply()]}) as gw:
        assert (await gw.post("/v1/messages", MSG, headers={"x-api-key": secret})).status == 200
    # A new process: nothing counted in memory yet, the store says the month's budget is gone.
    async with InProcessGateway(tmp_path, config(tmp_path), {"anthropic": [stream_reply()]}) as gw:
        assert gw.app.budgets is not None and gw.app.budgets.spent(rows(tmp_path)[0]["key_id"])[1] > 0.01
        refused = await gw.post("/v1/messages", MSG, headers={"x-api-key": secret})
        assert not gw.transports["anthropic"].sent
    assert refused.status == 429 and "monthly budget" in refused.json()["error"]["message"]


async def test_raising_the_budget_lets_the_key_through_again(tmp_path: Path) -> None:
    secret = issue(tmp_path, budget_day=0.01)
    script = {"anthropic": [stream_reply(), stream_reply()]}
    async with InProcessGateway(tmp_path, config(tmp_path), script) as gw:
        assert (await gw.post("/v1/messages", MSG, headers={"x-api-key": secret})).status == 200
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
        assert (await gw.post("/v1/messages", MSG, headers={"x-api-key": secret})).status == 429
        assert gw.app.store is not None and gw.app.key_cache is not None
        gw.app.key_cache.apply(KeyManager(gw.app.store).set_budget("alice", day=None))
        assert (await gw.post("/v1/messages", MSG, headers={"x-api-key": secret})).status == 200
