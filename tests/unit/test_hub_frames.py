"""The hub's protocol without I/O (shared/frames.py) and its state (shared/hub.HubState):
frames survive any chunking, bad input is a FrameError, admission and the short-lived records
behave as the SharedState protocol says."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccgate.routing import ManualClock, RateLimiter
from ccgate.routing.ratelimit import Admission
from ccgate.shared.frames import (
    MAX_FRAME,
    Admit,
    Event,
    FrameError,
    FrameReader,
    Hello,
    Kv,
    Publish,
    Reply,
    encode,
)
from ccgate.shared.hub import KV_MAX_VALUE, HubState

MESSAGES = [
    Hello("tok", "123-abc", 0),
    Admit(1, "key_1", 10, None),
    Publish("keys_changed", {"a": [1, 2], "b": None}, "123-abc"),
    Kv(2, "put", "console:s1", b"\x00\xffbytes", 30.0),
    Reply(1, [True, None, None, 10, 9, 1.5, None, None, None]),
    Event("breaker", {"target": "p", "state": "open"}, "9-x"),
]


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=60))
def test_any_chunking_gives_the_same_messages(cuts: list[int]) -> None:
    stream = b"".join(encode(m) for m in MESSAGES)
    reader, got, at = FrameReader(), [], 0
    for size in cuts:
        got += reader.feed(stream[at:at + size])
        at += size
    got += reader.feed(stream[at:])
    assert got == MESSAGES


def test_an_oversized_or_undecodable_frame_is_refused() -> None:
    with pytest.raises(FrameError, match="over the"):
        FrameReader().feed((MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(FrameError, match="undecodable"):
        FrameReader().feed(b"\x00\x00\x00\x03abc")


def test_hub_state_admits_exactly_rpm_and_rebuilds_the_admission() -> None:
    clock = ManualClock()
    state = HubState(RateLimiter(clock), clock.monotonic)
    answers = [Admission(*state.admit("k", 3, None)) for _ in range(5)]
    assert [a.allowed for a in answers] == [True, True, True, False, False]
    assert answers[3].limited_by == "requests" and answers[3].requests_remaining == 0
    assert answers[3].retry_after is not None and 60 <= answers[3].retry_after <= 61


def test_kv_take_is_once_incr_counts_and_records_expire() -> None:
    clock = ManualClock()
    state = HubState(RateLimiter(clock), clock.monotonic)
    state.kv(Kv(1, "put", "code", b"v", 10.0))
    assert state.kv(Kv(2, "take", "code")) == b"v"
    assert state.kv(Kv(3, "take", "code")) is None
    assert state.kv(Kv(4, "incr", "n", amount=2, ttl=5.0)) == 2
    clock.advance(3)
    assert state.kv(Kv(5, "incr", "n", amount=1, ttl=5.0)) == 3  # the first increment set the ttl
    clock.advance(2.5)
    assert state.kv(Kv(6, "get", "n")) is None
    state.kv(Kv(7, "put", "s", b"x", 1.0))
    clock.advance(30)  # past the sweep: expired records are dropped, not only hidden
    state.kv(Kv(8, "get", "other"))
    assert len(state) == 0
    with pytest.raises(ValueError, match="over"):
        state.kv(Kv(9, "put", "big", b"x" * (KV_MAX_VALUE + 1), 1.0))
