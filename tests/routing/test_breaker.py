"""Circuit breaker: closed -> open -> half-open (one probe) -> closed or open again."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccgate.routing.breaker import Breaker, BreakerState
from ccgate.routing.clock import ManualClock

S = BreakerState


def make(**kw: object) -> tuple[Breaker, ManualClock, list[tuple[str, S, S]]]:
    clock = ManualClock()
    events: list[tuple[str, S, S]] = []
    breaker = Breaker("anthropic", clock=clock, on_change=lambda *e: events.append(e), **kw)  # type: ignore[arg-type]
    return breaker, clock, events


def trip(b: Breaker, n: int = 5) -> None:
    for _ in range(n):
        b.record_failure()


def test_opens_after_threshold_consecutive_failures() -> None:
    b, _, events = make()
    trip(b, 4)
    assert b.state is S.CLOSED and b.allow()
    b.record_failure()
    assert b.state is S.OPEN and not b.allow() and not b.available()
    assert events == [("anthropic", S.CLOSED, S.OPEN)]


def test_a_success_resets_the_run() -> None:
    b, _, _ = make()
    trip(b, 4)
    b.record_success()
    trip(b, 4)
    assert b.state is S.CLOSED


def test_failures_older_than_the_window_do_not_count() -> None:
    b, clock, _ = make(window=60.0)
    trip(b, 4)
    clock.advance(61)
    b.record_failure()
    assert b.state is S.CLOSED
    trip(b, 3)
    assert b.state is S.CLOSED
    b.record_failure()
    assert b.state is S.OPEN


def test_half_open_lets_exactly_one_probe_through() -> None:
    b, clock, events = make(open_seconds=30.0)
    trip(b)
    clock.advance(29.9)
    assert not b.allow() and b.retry_in() == pytest.approx(0.1)
    clock.advance(0.1)
    assert b.state is S.HALF_OPEN and b.retry_in() == 0.0
    assert b.available()
    assert b.allow()  # the probe
    assert not b.allow() and not b.available()  # everyone else waits for it
    assert [b.allow() for _ in range(50)].count(True) == 0
    b.record_success()
    assert b.state is S.CLOSED and b.allow() and b.allow()
    assert events == [("anthropic", S.CLOSED, S.OPEN), ("anthropic", S.OPEN, S.HALF_OPEN),
                      ("anthropic", S.HALF_OPEN, S.CLOSED)]


def test_failed_probe_reopens_for_twice_as_long_up_to_the_max() -> None:
    b, clock, _ = make(open_seconds=30.0, max_open_seconds=100.0)
    trip(b)
    periods = []
    for _ in range(4):
        clock.advance(b.retry_in())
        assert b.allow()
        b.record_failure()
        assert b.state is S.OPEN
        periods.append(b.retry_in())
    assert periods == [60.0, 100.0, 100.0, 100.0]
    clock.advance(100)
    assert b.allow()
    b.record_success()
    trip(b)
    assert b.retry_in() == 30.0  # closing resets the period


def test_released_probe_frees_the_slot() -> None:
    b, clock, _ = make()
    trip(b)
    clock.advance(30)
    assert b.allow()
    b.release_probe()
    assert b.state is S.HALF_OPEN and b.allow()


def test_probe_that_never_reports_frees_the_slot_after_probe_timeout() -> None:
    b, clock, _ = make(probe_timeout=120.0)
    trip(b)
    clock.advance(30)
    assert b.allow()
    clock.advance(119)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()


def test_failures_while_open_do_not_extend_it() -> None:
    b, clock, _ = make()
    trip(b)
    clock.advance(10)
    trip(b, 10)
    assert b.retry_in() == 20.0


def test_snapshot() -> None:
    b, clock, _ = make()
    b.record_failure()
    assert b.snapshot() == {"state": "closed", "recent_failures": 1}
    trip(b, 4)
    assert b.snapshot() == {"state": "open", "recent_failures": 0, "retry_in_seconds": 30.0}
    clock.advance(30)
    b.allow()
    assert b.snapshot() == {"state": "half_open", "recent_failures": 0, "probe_in_flight": True}


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        Breaker(failure_threshold=0)
    with pytest.raises(ValueError):
        Breaker(open_seconds=0)


@given(st.lists(st.sampled_from(["ok", "fail", "tick", "allow"]), max_size=200))
def test_never_more_than_one_probe_in_flight(ops: list[str]) -> None:
    b, clock, _ = make(open_seconds=5.0, failure_threshold=2)
    in_flight_probes = 0
    for op in ops:
        if op == "tick":
            clock.advance(3)
        elif op == "allow":
            half = b.state is S.HALF_OPEN
            if b.allow() and half:
                in_flight_probes += 1
                assert in_flight_probes == 1
        else:
            if b.state is S.HALF_OPEN:
                in_flight_probes = 0
            b.record_success() if op == "ok" else b.record_failure()
