"""Full-jitter backoff, retry-after as a floor, and the deadline."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccgate.routing.clock import ManualClock
from ccgate.routing.retry import RetryBudget, RetryPolicy


def test_defaults() -> None:
    p = RetryPolicy()
    assert (p.max_attempts, p.base, p.cap, p.deadline, p.max_wait) == (3, 0.5, 8.0, 60.0, 10.0)


def test_bound_doubles_then_caps() -> None:
    p = RetryPolicy()
    assert [p.backoff_bound(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert p.backoff_bound(10_000) == 8.0


@given(retry=st.integers(0, 200), seed=st.integers(0, 2**32))
def test_full_jitter_stays_within_zero_and_the_bound(retry: int, seed: int) -> None:
    p = RetryPolicy()
    d = p.delay(retry, rng=random.Random(seed))
    assert d is not None
    assert 0.0 <= d <= min(p.cap, p.base * 2.0 ** min(retry, 64))


def test_jitter_actually_spreads() -> None:
    rng = random.Random(7)
    delays = [RetryPolicy().delay(3, rng=rng) for _ in range(1000)]
    assert min(d for d in delays if d is not None) < 0.5
    assert max(d for d in delays if d is not None) > 3.5


def test_seeded_random_is_reproducible() -> None:
    p = RetryPolicy()
    assert p.delay(2, rng=random.Random(1)) == p.delay(2, rng=random.Random(1)) == random.Random(1).uniform(0, 2.0)


@given(retry=st.integers(0, 10), after=st.floats(0, 50), seed=st.integers(0, 2**32))
def test_retry_after_is_a_floor(retry: int, after: float, seed: int) -> None:
    d = RetryPolicy().delay(retry, after, rng=random.Random(seed))
    assert d is not None and d >= after


def test_retry_after_beyond_the_cap_is_still_honoured() -> None:
    assert RetryPolicy().delay(0, 30.0, rng=random.Random(0)) == 30.0


def test_retry_after_beyond_the_deadline_means_no_retry() -> None:
    p = RetryPolicy()
    assert p.delay(0, 30.0, remaining=29.9, rng=random.Random(0)) is None
    assert p.delay(0, 30.0, remaining=30.0, rng=random.Random(0)) == 30.0
    assert p.delay(0, None, remaining=0.0, rng=random.Random(0)) is None  # jitter 0.42 > 0 left


def test_a_backoff_that_ends_past_the_deadline_is_not_made() -> None:
    p = RetryPolicy(base=10.0, cap=10.0)

    class High(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    assert p.delay(0, None, remaining=5.0, rng=High()) is None
    assert p.delay(0, None, remaining=10.0, rng=High()) == 10.0


def test_invalid_policies() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base=-1)


def test_budget_tracks_the_deadline_with_the_clock() -> None:
    clock = ManualClock()
    budget = RetryBudget(RetryPolicy(deadline=10.0), clock, random.Random(3))
    assert budget.remaining() == 10.0 and not budget.expired()
    clock.advance(4)
    assert budget.remaining() == 6.0
    assert budget.delay(0, 6.5) is None
    assert budget.delay(0, 5.0) == 5.0
    d = budget.delay(1)
    assert d is not None and 0 <= d <= 1.0
    clock.advance(6)
    assert not budget.expired() and budget.remaining() == 0.0
    clock.advance(0.001)
    assert budget.expired()
    assert budget.deadline_at == 1010.0
