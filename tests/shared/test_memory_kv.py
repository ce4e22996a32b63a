"""``MemoryKV`` (ccgate.shared.memory): the backend contract on a manual clock, and its bound."""

from __future__ import annotations

import pytest

from ccgate.routing import ManualClock
from ccgate.shared import KV
from ccgate.shared.memory import MemoryKV
from tests.shared.kv_contract import CHECKS, Check


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_the_kv_contract(check: Check) -> None:
    clock = ManualClock()
    kv: KV = MemoryKV(clock=clock.monotonic)

    async def wait(seconds: float) -> None:
        clock.advance(seconds)

    await check(kv, wait)


async def test_a_full_table_drops_expired_records_then_the_soonest_expiring() -> None:
    clock = ManualClock()
    kv = MemoryKV(max_entries=10, clock=clock.monotonic)
    for i in range(5):
        await kv.kv_put(f"old{i}", b"x", 1)
    for i in range(5):
        await kv.kv_put(f"keep{i}", b"x", 100 + i)
    clock.advance(2)
    await kv.kv_put("new", b"x", 50)  # full: the five expired ones are swept, nothing live lost
    assert len(kv) == 6 and all([await kv.kv_get(f"keep{i}") == b"x" for i in range(5)])
    for i in range(4):
        await kv.kv_put(f"more{i}", b"x", 200)
    await kv.kv_put("last", b"x", 300)  # full of live records: the closest to expiring goes
    assert len(kv) == 10
    assert await kv.kv_get("new") is None and await kv.kv_get("last") == b"x"
    assert await kv.kv_get("keep0") == b"x"


async def test_a_zero_ttl_keeps_nothing_and_a_non_counter_cannot_be_incremented() -> None:
    kv = MemoryKV(clock=ManualClock().monotonic)
    await kv.kv_put("k", b"v", 0)
    assert await kv.kv_get("k") is None
    await kv.kv_put("text", b"not a number", 10)
    with pytest.raises(ValueError, match="not a counter"):
        await kv.kv_incr("text", 1, 10)
