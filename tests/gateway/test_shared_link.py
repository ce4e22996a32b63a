"""The gateway's wiring to shared state (server/shared_link.py), in-process: two gateways on one
SQLite file share a backend kept in this test's memory (the real backends, Redis and the
workers' hub, have their own tests). Rate limits are counted by the backend, key changes made
through one gateway reach the other at once, and a backend that does not answer is the
configured policy (admit, or 503), counted, never a 500.

``MemoryShared`` is the test double of a backend for the other in-process tests too: its short-
lived records (``kv_*``) are one ``MemoryKV`` on the bus (tests/login/test_shared_records.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ccgate.routing import ManualClock, RateLimiter
from ccgate.routing.ratelimit import Admission
from ccgate.shared import SharedEvent, SharedUnavailable
from ccgate.shared.memory import MemoryKV
from ccgate.store import KeyManager, SQLiteStore
from ccgate.store.budget import BudgetTracker
from ccgate.upstream.mock import Reply
from tests.gateway.inprocess import InProcessGateway
from tests.gateway.test_inprocess import ANSWER, BACKUP_KEY, JSON, KEY, MSG, anthropic

ADMIN_KEY = "shared-link-admin-key-0123456789"


class Bus:
    """One "server": a limiter every member counts in, fan-out of events (each one published is
    kept in ``published``), and short-lived records."""

    def __init__(self) -> None:
        self.limiter = RateLimiter()
        self.kv = MemoryKV()
        self.members: list[MemoryShared] = []
        self.down = False
        self.published: list[SharedEvent] = []

    def sent(self, kind: str) -> list[SharedEvent]:
        return [event for event in self.published if event.kind == kind]


class MemoryShared:
    kind = "memory"

    def __init__(self, bus: Bus, process_id: str) -> None:
        self.bus, self.process_id = bus, process_id
        self.on_event: Callable[[SharedEvent], None] | None = None
        bus.members.append(self)

    async def start(self, on_event: Callable[[SharedEvent], None]) -> None:
        self.on_event = on_event

    async def close(self) -> None:
        self.on_event = None

    async def admit(self, key_id: str, rpm: int | None, tpm: int | None) -> Admission:
        await asyncio.sleep(0)  # a round trip: other requests run meanwhile
        if self.bus.down:
            raise SharedUnavailable("connection refused")
        return self.bus.limiter.admit_sync(key_id, rpm, tpm)

    def record_tokens(self, key_id: str, tokens: int) -> None:
        self.bus.limiter.record_tokens_sync(key_id, tokens)

    def publish(self, event: SharedEvent) -> None:
        self.bus.published.append(event)
        for member in self.bus.members:  # the sender too: the link must ignore its own
            if member.on_event is not None:
                member.on_event(event)

    def healthy(self) -> bool:
        return not self.bus.down

    # Short-lived records: every call is a round trip (other requests run meanwhile).

    async def _trip(self) -> None:
        await asyncio.sleep(0)
        if self.bus.down:
            raise SharedUnavailable("connection refused")

    async def kv_put(self, key: str, value: bytes, ttl: float) -> None:
        await self._trip()
        await self.bus.kv.kv_put(key, value, ttl)

    async def kv_get(self, key: str) -> bytes | None:
        await self._trip()
        return await self.bus.kv.kv_get(key)

    async def kv_take(self, key: str) -> bytes | None:
        await self._trip()
        return await self.bus.kv.kv_take(key)

    async def kv_delete(self, key: str) -> None:
        await self._trip()
        await self.bus.kv.kv_delete(key)

    async def kv_incr(self, key: str, amount: int, ttl: float) -> int:
        await self._trip()
        return await self.bus.kv.kv_incr(key, amount, ttl)


def config(tmp: Path, **server: Any) -> dict[str, Any]:
    return {"providers": [anthropic()], "store": {"path": str(tmp / "ccgate.db")},
            "server": {"admin": {"key": "env:ADMIN"}, **server}}


def issue(tmp: Path, name: str, **limits: int) -> str:
    store = SQLiteStore(tmp / "ccgate.db")
    try:
        return KeyManager(store).create(name, **limits)[1]  # type: ignore[arg-type]
    finally:
        store.close()


def ok(n: int) -> dict[str, list[Reply]]:
    return {"anthropic": [Reply(200, JSON, json.dumps(ANSWER).encode()) for _ in range(n)]}


def two(tmp: Path, bus: Bus, replies: int = 20) -> tuple[InProcessGateway, InProcessGateway]:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    env = {"ADMIN": ADMIN_KEY}
    a = InProcessGateway(tmp / "a", config(tmp), ok(replies), env=env, shared=MemoryShared(bus, "a"))
    b = InProcessGateway(tmp / "b", config(tmp), ok(replies), env=env, shared=MemoryShared(bus, "b"))
    return a, b


async def test_rpm_is_counted_across_processes_exactly(tmp_path: Path) -> None:
    secret = issue(tmp_path, "team", rpm=5)
    a, b = two(tmp_path, Bus())
    async with a, b:
        headers = {"x-api-key": secret}
        answers = await asyncio.gather(*(gw.post("/v1/messages", MSG, headers=headers)
                                         for gw in (a, b) * 6))
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [200] * 5 + [429] * 7
    refused = next(answer for answer in answers if answer.status == 429)
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "5 requests per minute" in refused.json()["error"]["message"]
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"


async def test_a_key_revoked_through_one_process_is_refused_by_the_other_at_once(tmp_path: Path) -> None:
    secret = issue(tmp_path, "carol")
    a, b = two(tmp_path, Bus())
    async with a, b:
        assert (await b.post("/v1/messages", MSG, headers={"x-api-key": secret})).status == 200
        key_id = (await a.request("GET", "/admin/keys", headers={"x-api-key": ADMIN_KEY})).json()["data"][0]["id"]
        revoked = await a.request("POST", f"/admin/keys/{key_id}/revoke", headers={"x-api-key": ADMIN_KEY})
        assert revoked.status == 200, revoked.body
        # b's next request re-reads the keys: the backend told it (no poll interval waited).
        refused = await b.post("/v1/messages", MSG, headers={"x-api-key": secret})
        assert refused.status == 401 and "revoked" in refused.json()["error"]["message"]


async def test_backend_down_admits_by_default_and_is_counted(tmp_path: Path) -> None:
    secret = issue(tmp_path, "team", rpm=1)
    bus = Bus()
    a, b = two(tmp_path, bus)
    async with a, b:
        bus.down = True
        answers = [await a.post("/v1/messages", MSG, headers={"x-api-key": secret}) for _ in range(3)]
        assert [answer.status for answer in answers] == [200, 200, 200]  # fail open: not enforced
        metrics = (await a.request("GET", "/metrics")).body.decode()
        assert 'ccgate_shared_unavailable_total{feature="rate_limits"} 3.0' in metrics


async def test_backend_down_fails_closed_with_503_when_asked(tmp_path: Path) -> None:
    secret = issue(tmp_path, "team", rpm=1)
    bus = Bus()
    a, b = two(tmp_path, bus)
    async with a, b:
        assert a.app.shared is not None
        a.app.shared.fail_open = False
        bus.down = True
        answer = await a.post("/v1/messages", MSG, headers={"x-api-key": secret})
        assert answer.status == 503
        assert answer.json()["error"]["type"] == "api_error"
        assert "not answering" in answer.json()["error"]["message"]
        bus.down = False
        assert (await a.post("/v1/messages", MSG, headers={"x-api-key": secret})).status == 200


# The other facts processes tell each other (server/shared_events.py) --------------------------

def two_keys(tmp: Path, bus: Bus, a_replies: list[Reply], b_replies: list[Reply],
             ) -> tuple[InProcessGateway, InProcessGateway]:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    env = {"ADMIN": ADMIN_KEY, "K1": KEY, "K2": BACKUP_KEY}
    cfg = config(tmp)
    cfg["providers"] = [anthropic(api_keys=["env:K1", "env:K2"])]
    a = InProcessGateway(tmp / "a", cfg, {"anthropic": a_replies}, env=env, shared=MemoryShared(bus, "a"))
    b = InProcessGateway(tmp / "b", cfg, {"anthropic": b_replies}, env=env, shared=MemoryShared(bus, "b"))
    return a, b


def states(gw: InProcessGateway) -> list[object]:
    return [entry["state"] for entry in gw.app.runtime.upstreams["anthropic"].pool.snapshot()]


def answer() -> Reply:
    return Reply(200, JSON, json.dumps(ANSWER).encode())


UNAUTHORIZED = Reply(401, JSON, json.dumps({"type": "error", "error": {
    "type": "authentication_error", "message": "invalid x-api-key"}}).encode())
RATE_LIMITED = Reply(429, {**JSON, "retry-after": "30"}, json.dumps({"type": "error", "error": {
    "type": "rate_limit_error", "message": "slow down"}}).encode())


async def test_an_upstream_key_refused_with_401_in_one_process_is_not_used_by_the_other(tmp_path: Path) -> None:
    secret = issue(tmp_path, "team")
    bus = Bus()
    a, b = two_keys(tmp_path, bus, [UNAUTHORIZED, answer()], [answer(), answer()])
    async with a, b:
        headers = {"x-api-key": secret}
        assert (await a.post("/v1/messages", MSG, headers=headers)).status == 200  # K1: 401, then K2
        assert states(a) == ["disabled", "healthy"]
        assert states(b) == ["disabled", "healthy"]  # told, not learned
        assert [e.data["action"] for e in bus.sent("upstream_key")] == ["disable"]  # b did not echo it
        assert KEY not in json.dumps([e.data for e in bus.published])  # a fingerprint, never the key
        for _ in range(2):
            assert (await b.post("/v1/messages", MSG, headers=headers)).status == 200
        used = [sent.header("x-api-key") for sent in b.transports["anthropic"].sent]
        assert used == [BACKUP_KEY, BACKUP_KEY]


async def test_an_upstream_key_cooled_by_a_429_rests_in_the_other_process_too(tmp_path: Path) -> None:
    secret = issue(tmp_path, "team")
    bus = Bus()
    a, b = two_keys(tmp_path, bus, [RATE_LIMITED, answer()], [])
    async with a, b:
        assert (await a.post("/v1/messages", MSG, headers={"x-api-key": secret})).status == 200
        assert states(b) == ["cooling", "healthy"]
        cooling = b.app.runtime.upstreams["anthropic"].pool.snapshot()[0]
        assert 29 <= float(str(cooling["cooling_seconds"])) <= 30
        b.clock.advance(31)
        assert states(b) == ["healthy", "healthy"]  # the rest ends by itself, as here
        assert len(bus.sent("upstream_key")) == 1


async def test_a_breaker_opened_in_one_process_opens_in_the_other_for_the_same_time(tmp_path: Path) -> None:
    bus = Bus()
    a, b = two(tmp_path, bus)
    async with a, b:
        breaker_a = a.app.runtime.upstreams["anthropic"].breaker
        breaker_b = b.app.runtime.upstreams["anthropic"].breaker
        for _ in range(breaker_a.failure_threshold):
            breaker_a.record_failure()
        assert breaker_a.state.value == "open"
        assert breaker_b.state.value == "open"
        assert breaker_b.retry_in() == breaker_a.retry_in() == breaker_a.open_seconds
        assert [e.data["state"] for e in bus.sent("breaker")] == ["open"]
        b.clock.advance(breaker_a.open_seconds)
        a.clock.advance(breaker_a.open_seconds)
        assert breaker_a.allow()  # a's probe ...
        breaker_a.record_success()  # ... succeeds: closed here and there
        assert breaker_b.state.value == "closed"
        assert [e.data["state"] for e in bus.sent("breaker")] == ["open", "closed"]


async def test_spending_in_one_process_counts_against_the_budget_in_the_other(tmp_path: Path) -> None:
    secret = issue(tmp_path, "team", budget_day=1)
    bus = Bus()
    a, b = two(tmp_path, bus)
    async with a, b:
        assert (await a.post("/v1/messages", MSG, headers={"x-api-key": secret})).status == 200
        assert a.app.recorder is not None and b.app.budgets is not None and a.app.budgets is not None
        await asyncio.to_thread(a.app.recorder.flush, 5)
        key_id = next(iter(a.app.key_cache._by_id)) if a.app.key_cache is not None else ""
        spent_a = a.app.budgets.spent(key_id)[0]
        assert spent_a > 0
        for _ in range(100):  # the writer thread hands the event to the loop
            if b.app.budgets.spent(key_id)[0]:
                break
            await asyncio.sleep(0.01)
        assert b.app.budgets.spent(key_id) == pytest.approx((spent_a, spent_a))
        [event] = bus.sent("spend")
        assert event.data["key_id"] == key_id and event.data["usd"] == pytest.approx(spent_a)


def test_spend_committed_before_a_seed_is_not_counted_twice() -> None:
    clock = ManualClock()
    tracker = BudgetTracker(clock.time)

    class Store:
        def spend_by_key(self, since: float) -> dict[str, float]:
            return {"k": 2.0}

    before = clock.time()
    clock.advance(1)
    tracker.seed(Store())  # type: ignore[arg-type]
    tracker.add_shared("k", 2.0, before)  # already in what the seed read
    tracker.add_shared("k", 0.5, clock.time())
    assert tracker.spent("k") == (2.5, 2.5)


async def test_a_login_token_revoked_in_one_process_is_revoked_in_the_other(tmp_path: Path) -> None:
    bus = Bus()
    a, b = two(tmp_path, bus)
    async with a, b:
        assert a.app.seams.revoked is not None and b.app.seams.revoked is not None
        a.app.seams.revoked.revoke("jti-1", a.clock.time() + 3600)
        assert "jti-1" in b.app.seams.revoked
        assert [e.data["jti"] for e in bus.sent("token_revoked")] == ["jti-1"]


async def test_readyz_says_how_the_shared_state_is_and_details_it_for_the_admin(tmp_path: Path) -> None:
    bus = Bus()
    a, b = two(tmp_path, bus)
    async with a, b:
        plain = (await a.request("GET", "/readyz")).json()
        assert plain["shared"] == "ok"
        bus.down = True
        admin = (await a.request("GET", "/readyz", headers={"x-api-key": ADMIN_KEY})).json()
        assert admin["shared"] == {"backend": "memory", "healthy": False}
        metrics = (await a.request("GET", "/metrics")).body.decode()
        assert 'ccgate_shared_up{backend="memory"} 0.0' in metrics
