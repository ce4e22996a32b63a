"""Per-key requests/tokens per minute: exact, sliding, with Anthropic's headers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.errors import RateLimited, to_envelope
from ccgate.routing.clock import ManualClock
from ccgate.routing.ratelimit import Admission, RateLimiter, rfc3339


def test_exactly_rpm_admitted_in_a_tight_loop() -> None:
    limiter = RateLimiter(ManualClock())
    results = [limiter.admit_sync("alice", 10, None).allowed for _ in range(100)]
    assert results.count(True) == 10 and results[:10] == [True] * 10


def test_keys_are_independent() -> None:
    limiter = RateLimiter(ManualClock())
    assert all(limiter.admit_sync("a", 2, None).allowed for _ in range(2))
    assert not limiter.admit_sync("a", 2, None).allowed
    assert limiter.admit_sync("b", 2, None).allowed


def test_window_slides() -> None:
    clock = ManualClock(start=1000.0)
    limiter = RateLimiter(clock)
    for _ in range(5):
        assert limiter.admit_sync("k", 10, None).allowed
    clock.advance(30)
    for _ in range(5):
        assert limiter.admit_sync("k", 10, None).allowed
    denied = limiter.admit_sync("k", 10, None)
    assert not denied.allowed and denied.limited_by == "requests"
    # the first five expire at the end of their 1 s bucket + 60 s: t=1061
    assert denied.retry_after == pytest.approx(31.0)
    clock.advance(30.5)
    assert not limiter.admit_sync("k", 10, None).allowed
    clock.advance(0.5)
    assert [limiter.admit_sync("k", 10, None).allowed for _ in range(6)] == [True] * 5 + [False]


def test_no_double_burst_at_a_minute_boundary() -> None:
    clock = ManualClock(start=59.5)
    limiter = RateLimiter(clock)
    assert sum(limiter.admit_sync("k", 10, None).allowed for _ in range(10)) == 10
    clock.advance(1.0)  # a fixed per-minute window would reset here
    assert sum(limiter.admit_sync("k", 10, None).allowed for _ in range(10)) == 0


@settings(max_examples=200)
@given(st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=300),
       st.integers(1, 20))
def test_never_more_than_rpm_in_any_60_seconds(gaps: list[float], rpm: int) -> None:
    clock = ManualClock(start=0.0)
    limiter = RateLimiter(clock)
    admitted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        if limiter.admit_sync("k", rpm, None).allowed:
            admitted.append(clock.monotonic())
    for i, t in enumerate(admitted):
        in_span = [u for u in admitted[i:] if u < t + 60.0]
        assert len(in_span) <= rpm


@given(st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), min_size=1, max_size=200))
def test_denial_retry_after_is_honest(gaps: list[float]) -> None:
    """Waiting the advertised retry_after always gets the next request in."""
    clock = ManualClock(start=0.0)
    limiter = RateLimiter(clock)
    for gap in gaps:
        clock.advance(gap)
        a = limiter.admit_sync("k", 3, None)
        if not a.allowed:
            assert a.retry_after is not None and a.retry_after > 0
            clock.advance(a.retry_after)
            assert limiter.admit_sync("k", 3, None).allowed


def test_tpm_admits_while_the_window_total_is_below_the_limit() -> None:
    clock = ManualClock(start=0.0)
    limiter = RateLimiter(clock)
    assert limiter.admit_sync("k", None, 1000).allowed
    limiter.record_tokens_sync("k", 900)
    a = limiter.admit_sync("k", None, 1000)
    assert a.allowed and a.tokens_remaining == 100
    limiter.record_tokens_sync("k", 300)  # over the limit: a burst admitted together can overshoot
    clock.advance(10)
    limiter.record_tokens_sync("k", 50)
    d = limiter.admit_sync("k", None, 1000)
    assert not d.allowed and d.limited_by == "tokens" and d.tokens_remaining == 0
    # t=0 bucket (1200) expires at 61: then 50 < 1000
    assert d.retry_after == pytest.approx(51.0)
    clock.advance(51)
    assert limiter.admit_sync("k", None, 1000).allowed


def test_tokens_and_requests_together_wait_for_both() -> None:
    clock = ManualClock(start=0.0)
    limiter = RateLimiter(clock)
    assert limiter.admit_sync("k", 1, 100).allowed
    limiter.record_tokens_sync("k", 100)
    clock.advance(20)
    limiter.record_tokens_sync("k", 100)
    d = limiter.admit_sync("k", 1, 100)
    assert not d.allowed and d.limited_by == "tokens" and d.retry_after == pytest.approx(61.0)
    limiter.record_tokens_sync("k", 0)
    limiter.record_tokens_sync("k", -5)


def test_no_limits_is_always_allowed_with_no_headers() -> None:
    a = RateLimiter(ManualClock()).admit_sync("k", None, None)
    assert a.allowed and a.headers() == []


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        RateLimiter(ManualClock()).admit_sync("k", 0, None)
    with pytest.raises(ValueError):
        RateLimiter(ManualClock(), resolution=0)


def test_headers_when_allowed() -> None:
    clock = ManualClock(start=0.0)  # wall time 2026-01-01T00:00:00Z
    limiter = RateLimiter(clock)
    clock.advance(0.25)
    limiter.record_tokens_sync("k", 40)
    a = limiter.admit_sync("k", 10, 1000)
    assert a.headers() == [
        ("anthropic-ratelimit-requests-limit", "10"),
        ("anthropic-ratelimit-requests-remaining", "9"),
        ("anthropic-ratelimit-requests-reset", "2026-01-01T00:01:01Z"),
        ("anthropic-ratelimit-tokens-limit", "1000"),
        ("anthropic-ratelimit-tokens-remaining", "960"),
        ("anthropic-ratelimit-tokens-reset", "2026-01-01T00:01:01Z"),
    ]


def test_denied_admission_becomes_a_429_rate_limit_error() -> None:
    clock = ManualClock(start=0.0)
    limiter = RateLimiter(clock)
    limiter.admit_sync("alice", 1, None)
    clock.advance(0.5)
    d = limiter.admit_sync("alice", 1, None)
    assert not d.allowed and d.retry_after == pytest.approx(60.5)
    err = d.error("key 'alice'")
    assert isinstance(err, RateLimited)
    assert err.message == "rate limit of 1 requests per minute exceeded for key 'alice'; retry after 61 s"
    status, headers, body = to_envelope(err, "req_1")
    assert status == 429 and b'"type":"rate_limit_error"' in body
    h = dict(headers)
    assert h[b"retry-after"] == b"61"
    assert h[b"x-should-retry"] == b"true"
    assert h[b"anthropic-ratelimit-requests-remaining"] == b"0"
    assert h[b"anthropic-ratelimit-requests-reset"] == b"2026-01-01T00:01:01Z"


def test_token_error_message() -> None:
    a = Admission(False, 2.2, "tokens", tokens_limit=500, tokens_remaining=0, tokens_reset=0.0)
    assert a.error().message == "rate limit of 500 tokens per minute exceeded for this key; retry after 3 s"


def test_rfc3339_rounds_up() -> None:
    assert rfc3339(1_767_225_600.0) == "2026-01-01T00:00:00Z"
    assert rfc3339(1_767_225_600.1) == "2026-01-01T00:00:01Z"


def test_memory_is_bounded() -> None:
    clock = ManualClock(start=0.0)
    limiter = RateLimiter(clock)
    for _ in range(10_000):
        clock.advance(0.01)
        limiter.admit_sync("k", 1_000_000, None)
        limiter.record_tokens_sync("k", 3)
    logs = limiter._keys["k"]
    assert len(logs.requests.buckets) <= 62 and len(logs.tokens.buckets) <= 62
