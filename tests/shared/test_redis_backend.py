"""The Redis backend (shared/redis.py) against a real redis-server: rate limits exact under
concurrency from two processes' worth of clients and equal to the local limiter's numbers,
tokens, events between instances, one-time records taken once, and an outage: bounded
``SharedUnavailable`` while Redis is down, recovery (subscriber included) once it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import astuple

import pytest

from ccgate.routing import ManualClock, RateLimiter
from ccgate.routing.ratelimit import Admission
from ccgate.shared import SharedEvent, SharedUnavailable
from ccgate.shared.redis import RedisOptions, RedisShared
from tests.lab.redis_server import RedisServer
from tests.shared.kv_contract import CHECKS, Check

pytestmark = pytest.mark.lab


def backend(server: RedisServer, name: str, *, timeout: float = 2.0,
            now: Callable[[], float] | None = None) -> RedisShared:
    return RedisShared(RedisOptions(server.url, timeout=timeout, prefix="t:"), name, now=now)


class Inbox:
    def __init__(self) -> None:
        self.events: list[SharedEvent] = []
        self.arrived = asyncio.Event()

    def __call__(self, event: SharedEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    async def wait_for(self, kind: str, timeout: float = 10.0) -> SharedEvent:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if event.kind == kind:
                        return event
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[RedisShared, RedisShared, Inbox, Inbox]]:
    a, b = backend(redis_server, "a"), backend(redis_server, "b")
    inbox_a, inbox_b = Inbox(), Inbox()
    await a.start(inbox_a)
    await b.start(inbox_b)
    yield a, b, inbox_a, inbox_b
    await a.close()
    await b.close()


async def test_forty_concurrent_admits_from_two_instances_admit_exactly_rpm(pair: tuple) -> None:
    a, b, _, _ = pair
    results = await asyncio.gather(*(gw.admit("k1", 10, None) for gw in (a, b) * 20))
    assert sum(r.allowed for r in results) == 10
    refused = [r for r in results if not r.allowed]
    assert all(r.limited_by == "requests" and r.requests_remaining == 0 for r in refused)
    assert all(r.retry_after is not None and 0 < r.retry_after <= 61 for r in refused)


async def test_tokens_recorded_by_one_instance_limit_the_other(pair: tuple) -> None:
    a, b, _, _ = pair
    assert (await a.admit("k2", None, 100)).allowed
    a.record_tokens("k2", 60)
    a.record_tokens("k2", 50)  # 110 >= 100 once sent (batched, in the background)
    async with asyncio.timeout(5):
        while (await b.admit("k2", None, 100)).allowed:
            await asyncio.sleep(0.02)
    refused = await b.admit("k2", None, 100)
    assert refused.limited_by == "tokens" and refused.tokens_remaining == 0
    assert a.stats.tokens_dropped == 0


async def test_admissions_equal_the_local_limiters_on_the_same_clock(redis_server: RedisServer) -> None:
    """Same sequence, same clock: every number of every Admission is the local limiter's."""
    clock = ManualClock(start=1_800_000_000.25, epoch=1_800_000_000.25)  # time() == monotonic()
    local = RateLimiter(clock)
    remote = backend(redis_server, "c", now=clock.monotonic)
    await remote.start(Inbox())
    try:
        steps = [(0.0, 0), (0.3, 40), (0.5, 0), (1.1, 30), (0.2, 0), (20.0, 50), (0.0, 0), (30.0, 0),
                 (9.5, 0), (0.6, 10), (1.0, 0), (58.0, 0), (3.0, 0)]
        for advance, tokens in steps:
            clock.advance(advance)
            want = local.admit_sync("k3", 3, 100)
            got = await remote.admit("k3", 3, 100)
            assert _same(got, want), (advance, got, want)
            assert got.headers() == want.headers()
            if tokens:
                local.record_tokens_sync("k3", tokens)
                remote.record_tokens("k3", tokens)
                await _drained(remote)
    finally:
        await remote.close()


def _same(got: Admission, want: Admission) -> bool:
    """Field by field; floats to the microsecond (the script's replies are "%.6f")."""
    for g, w in zip(astuple(got), astuple(want), strict=True):
        if isinstance(g, float) and isinstance(w, float):
            if abs(g - w) > 1e-5:
                return False
        elif g != w:
            return False
    return True


async def _drained(remote: RedisShared) -> None:
    async with asyncio.timeout(5):
        while not remote._tokens.empty():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the batch in flight


async def test_events_reach_the_other_instance_and_not_the_sender(pair: tuple) -> None:
    a, b, inbox_a, inbox_b = pair
    a.publish(SharedEvent("upstream_key", {"provider": "anthropic", "key": "ab12", "action": "disable"}, "a"))
    event = await inbox_b.wait_for("upstream_key")
    assert event.data == {"provider": "anthropic", "key": "ab12", "action": "disable"}
    assert event.origin == "a"
    await asyncio.sleep(0.1)
    assert inbox_a.events == []
    assert a.stats.published == 1 and b.stats.received == 1


async def test_a_one_time_record_taken_by_two_racing_instances_goes_to_exactly_one(pair: tuple) -> None:
    a, b, _, _ = pair
    for round_ in range(20):
        await a.kv_put(f"code{round_}", b"grant", ttl=30)
        taken = await asyncio.gather(a.kv_take(f"code{round_}"), b.kv_take(f"code{round_}"))
        assert sorted(taken, key=lambda v: v is None) == [b"grant", None]
    assert await b.kv_get("code0") is None


async def test_kv_records_expire_and_count(pair: tuple) -> None:
    a, b, _, _ = pair
    await a.kv_put("s", b"v", ttl=0.2)
    assert await b.kv_get("s") == b"v"
    assert [await a.kv_incr("n", 1, ttl=60), await b.kv_incr("n", 2, ttl=60)] == [1, 3]
    await b.kv_delete("n")
    assert await a.kv_incr("n", 5, ttl=60) == 5
    await asyncio.sleep(0.3)
    assert await b.kv_get("s") is None


async def test_redis_down_is_shared_unavailable_within_the_timeout_then_recovers(
        redis_server: RedisServer) -> None:
    a, b = backend(redis_server, "a", timeout=0.3), backend(redis_server, "b", timeout=0.3)
    inbox_b = Inbox()
    await a.start(Inbox())
    await b.start(inbox_b)
    try:
        assert (await a.admit("k4", 5, None)).allowed
        await asyncio.gather(*(a.kv_get(f"idle{i}") for i in range(10)))  # connections left idle
        redis_server.stop()
        for operation in (lambda: a.admit("k4", 5, None), lambda: a.kv_get("x"), lambda: a.kv_incr("y", 1, 5)):
            started = time.monotonic()
            with pytest.raises(SharedUnavailable) as raised:
                await operation()
            assert time.monotonic() - started < 0.3 + 0.5  # the timeout, plus scheduling slack
            assert "127.0.0.1" not in str(raised.value)  # no address in what callers may log
        assert not a.healthy()
        a.publish(SharedEvent("keys_changed", {}, "a"))  # never raises: dropped and counted
        await asyncio.sleep(0.5)
        assert a.stats.dropped >= 1
        redis_server.start()  # same port, empty (no persistence)
        async with asyncio.timeout(15):
            while True:
                try:
                    admission = await a.admit("k4", 5, None)
                    break
                except SharedUnavailable:
                    await asyncio.sleep(0.1)
        assert admission.allowed
        async with asyncio.timeout(15):  # healthy again once its subscriber is back too
            while not a.healthy():
                await asyncio.sleep(0.05)
        # No connection from before the outage fails a request after it.
        await asyncio.gather(*(a.kv_get(f"after{i}") for i in range(20)))
        # b's subscriber reconnected: it says so with a keys_changed of its own ...
        await inbox_b.wait_for("keys_changed")
        inbox_b.events.clear()
        # ... and events flow again (the publisher may need a moment to reconnect too).
        async with asyncio.timeout(15):
            while not any(e.kind == "breaker" for e in inbox_b.events):
                a.publish(SharedEvent("breaker", {"target": "p", "state": "open", "seconds": 5}, "a"))
                await asyncio.sleep(0.2)
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_the_kv_contract(check: Check, redis_server: RedisServer) -> None:
    """What every short-lived-records backend must do (tests/shared/kv_contract.py), on Redis'
    own clock: waits are real."""
    kv = backend(redis_server, "contract", timeout=2.0)
    await kv.start(Inbox())
    try:
        await check(kv, asyncio.sleep)
    finally:
        await kv.close()
