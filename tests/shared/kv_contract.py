"""What every ``ccgate.shared.KV`` must do, as checks any backend's tests can run.

``MemoryKV`` runs them on a manual clock; the Redis and hub backends run them on theirs with
real waits. A backend's test module does::

    from tests.shared.kv_contract import CHECKS, Wait

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    async def test_kv_contract(check, kv):          # kv: a started backend
        await check(kv, wait)                        # wait(seconds): let that much time pass

``wait`` moves the backend's clock (or sleeps); TTLs here are multiples of ``UNIT`` seconds,
so a real backend's wait is short. Keys carry a random prefix, so a shared server can run the
checks in parallel with anything else.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from ccgate.shared import KV

Wait = Callable[[float], Awaitable[None]]
Check = Callable[[KV, Wait], Awaitable[None]]
UNIT = 0.2  # seconds: long enough for a round trip to a local server, short enough to wait for


def _key(name: str) -> str:
    return f"contract:{uuid.uuid4().hex[:12]}:{name}"


async def put_get_replace_and_delete(kv: KV, wait: Wait) -> None:
    key = _key("k")
    assert await kv.kv_get(key) is None
    await kv.kv_put(key, b"one", 10 * UNIT)
    assert await kv.kv_get(key) == b"one"
    assert await kv.kv_get(key) == b"one"  # reading does not consume
    await kv.kv_put(key, b"two", 10 * UNIT)
    assert await kv.kv_get(key) == b"two"
    await kv.kv_delete(key)
    assert await kv.kv_get(key) is None
    await kv.kv_delete(key)  # deleting what is not there is not an error


async def values_are_bytes_verbatim(kv: KV, wait: Wait) -> None:
    key = _key("bin")
    value = bytes(range(256)) + b"\x00\r\n{}"
    await kv.kv_put(key, value, 10 * UNIT)
    assert await kv.kv_get(key) == value
    other = _key("bin2")
    assert await kv.kv_get(other) is None  # keys are independent


async def records_expire_after_their_ttl(kv: KV, wait: Wait) -> None:
    short, long = _key("short"), _key("long")
    await kv.kv_put(short, b"s", 2 * UNIT)
    await kv.kv_put(long, b"l", 20 * UNIT)
    await wait(UNIT)
    assert await kv.kv_get(short) == b"s"
    await wait(2 * UNIT)
    assert await kv.kv_get(short) is None
    assert await kv.kv_take(short) is None
    assert await kv.kv_get(long) == b"l"


async def put_restarts_the_ttl(kv: KV, wait: Wait) -> None:
    key = _key("renew")
    await kv.kv_put(key, b"a", 3 * UNIT)
    await wait(2 * UNIT)
    await kv.kv_put(key, b"b", 3 * UNIT)
    await wait(2 * UNIT)
    assert await kv.kv_get(key) == b"b"  # 4 units after the first put, 2 after the second


async def take_is_one_time(kv: KV, wait: Wait) -> None:
    key = _key("code")
    await kv.kv_put(key, b"secret", 10 * UNIT)
    assert await kv.kv_take(key) == b"secret"
    assert await kv.kv_take(key) is None
    assert await kv.kv_get(key) is None
    assert await kv.kv_take(_key("never")) is None


async def racing_takes_give_the_value_to_one(kv: KV, wait: Wait) -> None:
    for _ in range(5):
        key = _key("race")
        await kv.kv_put(key, b"once", 10 * UNIT)
        got = await asyncio.gather(*(kv.kv_take(key) for _ in range(20)))
        assert got.count(b"once") == 1 and got.count(None) == 19


async def incr_counts_and_the_first_increment_starts_the_ttl(kv: KV, wait: Wait) -> None:
    key = _key("n")
    assert await kv.kv_incr(key, 1, 3 * UNIT) == 1
    assert await kv.kv_incr(key, 4, 3 * UNIT) == 5
    await wait(2 * UNIT)
    assert await kv.kv_incr(key, 1, 3 * UNIT) == 6  # a later increment does not push the deadline
    await wait(2 * UNIT)
    assert await kv.kv_incr(key, 1, 3 * UNIT) == 1  # the window ended: counting starts again
    assert await kv.kv_get(key) == b"1"  # a counter reads as its decimal digits


async def racing_increments_are_all_counted(kv: KV, wait: Wait) -> None:
    key = _key("many")
    got = await asyncio.gather(*(kv.kv_incr(key, 1, 10 * UNIT) for _ in range(50)))
    assert sorted(got) == list(range(1, 51))


CHECKS: list[Check] = [
    put_get_replace_and_delete, values_are_bytes_verbatim, records_expire_after_their_ttl,
    put_restarts_the_ttl, take_is_one_time, racing_takes_give_the_value_to_one,
    incr_counts_and_the_first_increment_starts_the_ttl, racing_increments_are_all_counted,
]
