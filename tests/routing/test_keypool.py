"""Key pool: round robin over healthy keys, cooldown, disable, all resting, BYOK."""

from __future__ import annotations

import random

import pytest

from ccgate.config.secrets import Secret
from ccgate.routing.clock import ManualClock
from ccgate.routing.keypool import KeyEvent, KeyLease, KeyPool, KeyState, NoKey
from ccgate.routing.outcome import SUCCESS, classify

KEYS = [Secret("sk-ant-api03-aaaaaaaaaaaa-0000", "env:K0"), Secret("sk-ant-api03-bbbbbbbbbbbb-1111", "env:K1"),
        Secret("sk-ant-api03-cccccccccccc-2222", "env:K2")]
RATE_429 = classify(429, None, {"retry-after": "20"})
AUTH_401 = classify(401, None, {}, b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}')


def make(keys: list[Secret] = KEYS, **kw: object) -> tuple[KeyPool, ManualClock, list[KeyEvent]]:
    clock = ManualClock()
    events: list[KeyEvent] = []
    pool = KeyPool(list(keys), clock, name="anthropic", on_change=events.append, **kw)  # type: ignore[arg-type]
    return pool, clock, events


def take(pool: KeyPool) -> KeyLease:
    lease = pool.acquire()
    assert isinstance(lease, KeyLease)
    return lease


def test_round_robin() -> None:
    pool, _, _ = make()
    assert [take(pool).index for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_lease_headers() -> None:
    pool, _, _ = make()
    lease = take(pool)
    assert lease.headers() == {"x-api-key": KEYS[0].value}
    assert lease.headers("bearer") == {"authorization": f"Bearer {KEYS[0].value}"}
    assert lease.masked == "sk-ant-...0000"
    assert KEYS[0].value not in repr(lease)


def test_429_cools_the_key_for_retry_after_and_it_comes_back() -> None:
    pool, clock, events = make()
    lease = take(pool)  # key 0
    pool.report(lease, RATE_429)
    assert [take(pool).index for _ in range(4)] == [1, 2, 1, 2]
    clock.advance(20)
    assert sorted(take(pool).index for _ in range(3)) == [0, 1, 2]
    assert [(e.index, e.old, e.new) for e in events] == [
        (0, KeyState.HEALTHY, KeyState.COOLING), (0, KeyState.COOLING, KeyState.HEALTHY)]
    assert events[0].key == "sk-ant-...0000" and events[0].pool == "anthropic"


def test_a_shorter_cooldown_does_not_cut_a_longer_one() -> None:
    pool, clock, _ = make(KEYS[:1])
    lease = take(pool)
    pool.report(lease, RATE_429)
    pool.report(lease, classify(429, None, {"retry-after": "1"}))
    clock.advance(5)
    assert isinstance(pool.acquire(), NoKey)


def test_401_disables_the_key_for_good() -> None:
    pool, clock, events = make()
    pool.report(take(pool), AUTH_401)
    clock.advance(10_000)
    assert {take(pool).index for _ in range(10)} == {1, 2}
    assert pool.snapshot()[0]["state"] == "disabled"
    assert pool.snapshot()[0]["reason"] == "401 authentication_error: invalid x-api-key"
    assert events[-1].new is KeyState.DISABLED
    pool.report(KeyLease(0, KEYS[0], pool), SUCCESS)  # a late success does not revive it
    assert pool.snapshot()[0]["state"] == "disabled"
    pool.enable(0)
    assert {take(pool).index for _ in range(3)} == {0, 1, 2}


def test_all_cooling_says_when_the_first_frees_up() -> None:
    pool, clock, _ = make(KEYS[:2])
    pool.report(take(pool), classify(429, None, {"retry-after": "30"}))
    pool.report(take(pool), classify(429, None, {"retry-after": "12"}))
    got = pool.acquire()
    assert isinstance(got, NoKey)
    assert got.free_at == clock.monotonic() + 12
    assert "429" in got.reason
    assert pool.peek() == got
    clock.advance(12)
    assert take(pool).index == 1
    assert pool.peek() is None


def test_all_disabled_has_no_free_time() -> None:
    pool, _, _ = make(KEYS[:2])
    pool.report(take(pool), AUTH_401)
    pool.report(take(pool), AUTH_401)
    got = pool.acquire()
    assert isinstance(got, NoKey) and got.free_at is None
    assert "disabled" in got.reason
    assert not pool.usable()


def test_cooling_then_disabled_stays_disabled() -> None:
    pool, clock, _ = make(KEYS[:1])
    lease = take(pool)
    pool.report(lease, RATE_429)
    pool.report(lease, AUTH_401)
    pool.report(lease, RATE_429)
    clock.advance(100)
    assert pool.snapshot()[0]["state"] == "disabled"


def test_snapshot_has_no_secret() -> None:
    pool, clock, _ = make()
    pool.report(take(pool), RATE_429)
    take(pool)
    clock.advance(5)
    snap = pool.snapshot()
    assert snap[0] == {"index": 0, "source": "env:K0", "state": "cooling",
                       "requests": 1, "failures": 1, "reason": "429", "cooling_seconds": 15.0}
    assert snap[1] == {"index": 1, "source": "env:K1", "state": "healthy",
                       "requests": 1, "failures": 0}
    text = repr(snap)
    assert all(k.value not in text and k.value[-4:] not in text for k in KEYS)  # not even a tail


def test_reason_quoting_the_key_is_masked() -> None:
    pool, _, _ = make()
    lease = take(pool)
    body = ('{"error":{"message":"key ' + KEYS[0].value + ' revoked"}}').encode()
    pool.report(lease, classify(401, None, {}, body))
    assert KEYS[0].value not in repr(pool.snapshot())


def test_byok_pool_passes_the_client_credential() -> None:
    pool, _, events = make([])
    assert pool.byok and len(pool) == 0 and pool.usable()
    lease = take(pool)
    assert lease.byok and lease.index == -1 and lease.headers() == {}
    assert lease.masked == "client credential"
    pool.report(lease, AUTH_401)
    pool.report(lease, RATE_429)
    assert take(pool).byok and pool.peek() is None
    assert pool.snapshot() == [] and events == []


def test_lease_from_another_pool_is_ignored() -> None:
    pool, _, _ = make()
    other, _, _ = make()
    pool.report(take(other), AUTH_401)
    assert all(s["state"] == "healthy" for s in pool.snapshot())


def test_random_strategy_only_picks_healthy_keys() -> None:
    pool, _, _ = make(strategy="random", rng=random.Random(5))
    pool.disable(1, "manual")
    picks = [take(pool).index for _ in range(200)]
    assert set(picks) == {0, 2}
    assert 60 < picks.count(0) < 140


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError):
        KeyPool(KEYS, strategy="least_busy")  # type: ignore[arg-type]
