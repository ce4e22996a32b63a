"""The attempt planner, driven the way the server's loop drives it, with a fake clock."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.config.secrets import Secret
from ccgate.errors import (
    InternalError,
    RateLimited,
    UpstreamOverloaded,
    UpstreamRefusedGateway,
    UpstreamUnreachable,
)
from ccgate.routing.breaker import Breaker, BreakerState
from ccgate.routing.clock import ManualClock
from ccgate.routing.keypool import KeyPool, KeyState
from ccgate.routing.outcome import SUCCESS, Outcome, OutcomeKind, classify
from ccgate.routing.plan import Attempt, Candidate, GiveUp, Planner, Upstream, Wait
from ccgate.routing.retry import RetryPolicy

OVERLOADED = classify(529, None, {}, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
UNAVAILABLE = classify(503, None, {})
BAD_REQUEST = classify(400, None, {"x-should-retry": "false"}, b'{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}')
AUTH = classify(401, None, {}, b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}')
REGION = classify(403, None, {}, b'{"error":{"type":"forbidden","message":"Request not allowed"}}')
REFUSED = classify(None, UpstreamUnreachable("cannot connect to provider", hop="tcp"), {})


def rate(seconds: float) -> Outcome:
    return classify(429, None, {"retry-after": str(seconds)})


class World:
    """Providers with keys and breakers on one fake clock."""

    def __init__(self, **keys: int) -> None:
        self.clock = ManualClock()
        self.up: dict[str, Upstream] = {}
        for name, n in keys.items():
            secrets = [Secret(f"{name}-key-{i}-xxxxxxxxxxxx") for i in range(n)]
            self.up[name] = Upstream(name, KeyPool(secrets, self.clock, name=name),
                                     Breaker(name, clock=self.clock))

    def planner(self, *names: str, policy: RetryPolicy | None = None, seed: int = 1) -> Planner[str]:
        cands = [Candidate(self.up[n], f"target:{n}") for n in names]
        return Planner(cands, policy, clock=self.clock, rng=random.Random(seed))

    def run(self, planner: Planner[str], answer: Callable[[Attempt[str]], Outcome],
            spend: float = 0.0) -> tuple[Attempt[str] | GiveUp, list[object]]:
        """The server's loop, minus I/O. Returns the successful attempt or the GiveUp, and the steps."""
        steps: list[object] = []
        for _ in range(100):
            step = planner.next_step()
            steps.append(step)
            if isinstance(step, Wait):
                assert step.seconds > 0
                self.clock.advance(step.seconds)
                continue
            if isinstance(step, GiveUp):
                return step, steps
            self.clock.advance(spend)
            outcome = answer(step)
            planner.report(step, outcome)
            if outcome.ok:
                return step, steps
        raise AssertionError("planner did not finish")


def script(**per_provider: list[Outcome]) -> Callable[[Attempt[str]], Outcome]:
    queues = {k: list(v) for k, v in per_provider.items()}
    return lambda a: queues[a.provider].pop(0) if queues.get(a.provider) else SUCCESS


def attempts(steps: list[object]) -> list[tuple[str, int]]:
    return [(s.provider, s.lease.index) for s in steps if isinstance(s, Attempt)]


def test_first_attempt_success() -> None:
    w = World(anthropic=2)
    p = w.planner("anthropic")
    end, _steps = w.run(p, lambda a: classify(200, None, {}))
    assert isinstance(end, Attempt) and end.target == "target:anthropic" and end.number == 1
    assert end.lease.headers() == {"x-api-key": "anthropic-key-0-xxxxxxxxxxxx"}
    assert p.trail() == "anthropic#0 200"
    with pytest.raises(RuntimeError):
        p.next_step()


def test_primary_529_twice_then_success() -> None:
    w = World(anthropic=2, deepseek=1)
    p = w.planner("anthropic", "deepseek")
    end, steps = w.run(p, script(anthropic=[OVERLOADED, OVERLOADED]))
    assert isinstance(end, Attempt) and end.provider == "anthropic" and end.try_number == 3
    assert attempts(steps) == [("anthropic", 0), ("anthropic", 1), ("anthropic", 0)]
    waits = [s for s in steps if isinstance(s, Wait)]
    assert len(waits) == 2
    assert 0 < waits[0].seconds <= 0.5 and 0 < waits[1].seconds <= 1.0  # full jitter, doubling bound
    assert w.up["anthropic"].breaker.state is BreakerState.CLOSED
    assert p.trail() == "anthropic#0 529, anthropic#1 529, anthropic#0 success"
    assert [r.kind for r in p.history] == [OutcomeKind.OVERLOADED, OutcomeKind.OVERLOADED, OutcomeKind.SUCCESS]


def test_retries_spent_then_fallback() -> None:
    w = World(anthropic=1, deepseek=1)
    p = w.planner("anthropic", "deepseek")
    end, steps = w.run(p, script(anthropic=[UNAVAILABLE] * 3))
    assert isinstance(end, Attempt) and end.provider == "deepseek" and end.number == 4
    assert attempts(steps) == [("anthropic", 0)] * 3 + [("deepseek", 0)]


def test_retries_spent_everywhere_relays_the_last_answer() -> None:
    w = World(anthropic=1, deepseek=1)
    p = w.planner("anthropic", "deepseek")
    end, _ = w.run(p, script(anthropic=[UNAVAILABLE] * 3, deepseek=[OVERLOADED] * 3))
    assert isinstance(end, GiveUp) and end.relay_last and end.error is None
    assert p.history[-1].provider == "deepseek" and p.history[-1].status == 529
    assert p.attempts == 6
    assert p.next_step() is end  # asking again changes nothing


def test_primary_breaker_open_goes_straight_to_fallback() -> None:
    w = World(anthropic=1, deepseek=1)
    for _ in range(5):
        w.up["anthropic"].breaker.record_failure()
    p = w.planner("anthropic", "deepseek")
    end, _steps = w.run(p, script())
    assert isinstance(end, Attempt) and end.provider == "deepseek" and end.number == 1


def test_failures_that_open_the_breaker_move_on_at_once() -> None:
    w = World(anthropic=1, deepseek=1)
    for _ in range(4):
        w.up["anthropic"].breaker.record_failure()
    p = w.planner("anthropic", "deepseek")
    end, steps = w.run(p, script(anthropic=[OVERLOADED]))
    assert isinstance(end, Attempt) and end.provider == "deepseek"
    assert attempts(steps) == [("anthropic", 0), ("deepseek", 0)]
    assert not any(isinstance(s, Wait) for s in steps)


def test_all_keys_401_moves_to_the_next_provider() -> None:
    w = World(anthropic=2, deepseek=1)
    p = w.planner("anthropic", "deepseek")
    end, steps = w.run(p, script(anthropic=[AUTH, AUTH]))
    assert isinstance(end, Attempt) and end.provider == "deepseek"
    assert attempts(steps) == [("anthropic", 0), ("anthropic", 1), ("deepseek", 0)]
    assert not any(isinstance(s, Wait) for s in steps)
    snap = w.up["anthropic"].snapshot()
    assert [k["state"] for k in w.up["anthropic"].pool.snapshot()] == ["disabled", "disabled"]
    assert snap["breaker"] == {"state": "closed", "recent_failures": 0}
    assert not w.up["anthropic"].usable()
    # the next request does not even try anthropic
    _end2, steps2 = w.run(w.planner("anthropic", "deepseek"), script())
    assert attempts(steps2) == [("deepseek", 0)]


def test_401_on_the_last_key_is_not_relayed_as_a_401() -> None:
    w = World(anthropic=1)
    p = w.planner("anthropic")
    end, _ = w.run(p, script(anthropic=[AUTH]))
    assert isinstance(end, GiveUp) and not end.relay_last
    assert isinstance(end.error, UpstreamRefusedGateway) and end.error.status == 502
    assert not end.error.retryable
    assert "anthropic" in end.error.message and "anthropic-key-0-xxxxxxxxxxxx" not in end.error.message
    assert "401 authentication_error" in end.error.message


def test_400_is_not_retried_and_is_relayed() -> None:
    w = World(anthropic=2, deepseek=1)
    p = w.planner("anthropic", "deepseek")
    end, steps = w.run(p, script(anthropic=[BAD_REQUEST]))
    assert isinstance(end, GiveUp) and end.relay_last and end.error is None
    assert attempts(steps) == [("anthropic", 0)]
    assert w.up["anthropic"].breaker.snapshot()["recent_failures"] == 0


def test_x_should_retry_true_on_a_400_retries_the_same_provider_only() -> None:
    w = World(anthropic=1, deepseek=1)
    p = w.planner("anthropic", "deepseek")
    flaky = classify(400, None, {"x-should-retry": "true"})
    end, steps = w.run(p, script(anthropic=[flaky] * 3))
    assert isinstance(end, GiveUp) and end.relay_last
    assert attempts(steps) == [("anthropic", 0)] * 3


def test_region_block_fails_over_without_touching_the_key() -> None:
    w = World(anthropic=1, deepseek=1)
    p = w.planner("anthropic", "deepseek")
    end, _steps = w.run(p, script(anthropic=[REGION]))
    assert isinstance(end, Attempt) and end.provider == "deepseek"
    assert w.up["anthropic"].pool.snapshot()[0]["state"] == "healthy"


def test_429_retries_at_once_on_another_key() -> None:
    w = World(anthropic=2)
    p = w.planner("anthropic")
    end, steps = w.run(p, script(anthropic=[rate(30)]))
    assert isinstance(end, Attempt) and end.lease.index == 1
    assert not any(isinstance(s, Wait) for s in steps)
    assert w.up["anthropic"].pool.snapshot()[0]["state"] == KeyState.COOLING


def test_429_on_the_only_key_waits_for_retry_after() -> None:
    w = World(anthropic=1)
    p = w.planner("anthropic")
    end, steps = w.run(p, script(anthropic=[rate(3)]))
    assert isinstance(end, Attempt) and end.try_number == 2
    waits = [s for s in steps if isinstance(s, Wait)]
    assert [x.seconds for x in waits] == [3.0]
    assert "429" in waits[0].reason


def test_long_429_prefers_a_ready_fallback_to_waiting() -> None:
    w = World(anthropic=1, deepseek=1)
    p = w.planner("anthropic", "deepseek")
    end, steps = w.run(p, script(anthropic=[rate(30)]))
    assert isinstance(end, Attempt) and end.provider == "deepseek"
    assert not any(isinstance(s, Wait) for s in steps)


def test_long_429_with_no_fallback_waits_within_the_deadline() -> None:
    w = World(anthropic=1)
    p = w.planner("anthropic")
    end, steps = w.run(p, script(anthropic=[rate(30)]))
    assert isinstance(end, Attempt) and [s.seconds for s in steps if isinstance(s, Wait)] == [30.0]


def test_retry_after_beyond_the_deadline_gives_up_and_relays() -> None:
    w = World(anthropic=1)
    p = w.planner("anthropic", policy=RetryPolicy(deadline=20.0))
    end, steps = w.run(p, script(anthropic=[rate(30)]))
    assert isinstance(end, GiveUp) and end.relay_last
    assert attempts(steps) == [("anthropic", 0)]


def test_529_with_retry_after_beyond_the_deadline_is_not_retried() -> None:
    w = World(anthropic=1, deepseek=1)
    p = w.planner("anthropic", "deepseek", policy=RetryPolicy(deadline=20.0))
    end, _steps = w.run(p, script(anthropic=[classify(529, None, {"retry-after": "25"})]))
    assert isinstance(end, Attempt) and end.provider == "deepseek"


def test_529_retry_after_is_honoured() -> None:
    w = World(anthropic=1)
    p = w.planner("anthropic")
    end, steps = w.run(p, script(anthropic=[classify(529, None, {"retry-after": "4"})]))
    assert isinstance(end, Attempt)
    assert [s.seconds for s in steps if isinstance(s, Wait)] == [4.0]


def test_no_attempt_starts_after_the_deadline() -> None:
    w = World(anthropic=1, deepseek=1)
    p = w.planner("anthropic", "deepseek", policy=RetryPolicy(deadline=60.0))
    end, steps = w.run(p, script(anthropic=[UNAVAILABLE]), spend=61.0)
    assert isinstance(end, GiveUp) and end.relay_last and "deadline" in end.reason
    assert attempts(steps) == [("anthropic", 0)]


def test_connect_error_is_retried_and_given_up_as_the_error() -> None:
    w = World(anthropic=1)
    p = w.planner("anthropic")
    end, steps = w.run(p, script(anthropic=[REFUSED] * 3))
    assert isinstance(end, GiveUp) and not end.relay_last
    assert isinstance(end.error, UpstreamUnreachable)
    assert len(attempts(steps)) == 3


def test_byok_401_is_the_clients_own_and_relayed() -> None:
    w = World(anthropic=0, deepseek=1)
    p = w.planner("anthropic", "deepseek")
    end, steps = w.run(p, script(anthropic=[AUTH]))
    assert isinstance(end, GiveUp) and end.relay_last
    assert attempts(steps) == [("anthropic", -1)]


def test_byok_429_waits_for_retry_after() -> None:
    w = World(anthropic=0)
    p = w.planner("anthropic")
    end, steps = w.run(p, script(anthropic=[rate(2)]))
    assert isinstance(end, Attempt) and end.lease.byok
    assert [s.seconds for s in steps if isinstance(s, Wait)] == [2.0]


def test_all_breakers_open_fails_fast_with_529_and_retry_after() -> None:
    w = World(anthropic=1, deepseek=1)
    for _ in range(5):
        w.up["anthropic"].breaker.record_failure()
    w.clock.advance(10)
    for _ in range(5):
        w.up["deepseek"].breaker.record_failure()
    end, steps = w.run(w.planner("anthropic", "deepseek"), script())
    assert isinstance(end, GiveUp) and not end.relay_last and attempts(steps) == []
    assert isinstance(end.error, UpstreamOverloaded) and end.error.status == 529
    assert end.error.headers == {"retry-after": "20"}
    assert "anthropic: circuit open" in end.error.message and "deepseek: circuit open" in end.error.message


def test_all_keys_resting_before_any_attempt_is_a_429() -> None:
    w = World(anthropic=1)
    w.up["anthropic"].pool.cool(0, 120, "429 rate_limit_error")
    end, _ = w.run(w.planner("anthropic"), script())
    assert isinstance(end, GiveUp) and isinstance(end.error, RateLimited)
    assert end.error.headers == {"retry-after": "120"}


def test_all_keys_disabled_before_any_attempt_is_a_500() -> None:
    w = World(anthropic=1)
    w.up["anthropic"].pool.disable(0, "401 authentication_error")
    end, _ = w.run(w.planner("anthropic"), script())
    assert isinstance(end, GiveUp) and isinstance(end.error, UpstreamRefusedGateway)
    assert "all 1 keys disabled (401 authentication_error)" in end.error.message


def test_half_open_probe_is_one_request_and_others_fail_over() -> None:
    w = World(anthropic=1, deepseek=1)
    br = w.up["anthropic"].breaker
    for _ in range(5):
        br.record_failure()
    w.clock.advance(30)
    first = w.planner("anthropic", "deepseek")
    probe = first.next_step()
    assert isinstance(probe, Attempt) and probe.provider == "anthropic" and probe.probe
    second = w.planner("anthropic", "deepseek")
    other = second.next_step()
    assert isinstance(other, Attempt) and other.provider == "deepseek" and not other.probe
    first.report(probe, SUCCESS)
    assert br.state is BreakerState.CLOSED


def test_failed_probe_reopens_and_moves_on() -> None:
    w = World(anthropic=1, deepseek=1)
    br = w.up["anthropic"].breaker
    for _ in range(5):
        br.record_failure()
    w.clock.advance(30)
    p = w.planner("anthropic", "deepseek")
    _end, steps = w.run(p, script(anthropic=[OVERLOADED]))
    assert attempts(steps) == [("anthropic", 0), ("deepseek", 0)]
    assert br.state is BreakerState.OPEN and br.retry_in() == 60.0


def test_abandoned_probe_frees_the_slot() -> None:
    w = World(anthropic=1)
    br = w.up["anthropic"].breaker
    for _ in range(5):
        br.record_failure()
    w.clock.advance(30)
    p = w.planner("anthropic")
    probe = p.next_step()
    assert isinstance(probe, Attempt) and probe.probe
    p.abandon(probe)
    assert br.available()
    with pytest.raises(RuntimeError):
        p.next_step()


def test_gateway_own_error_on_a_probe_releases_it_and_is_sent() -> None:
    w = World(anthropic=1)
    br = w.up["anthropic"].breaker
    for _ in range(5):
        br.record_failure()
    w.clock.advance(30)
    p = w.planner("anthropic")
    probe = p.next_step()
    assert isinstance(probe, Attempt)
    bug = InternalError("translator failed")
    p.report(probe, classify(None, bug, {}))
    assert br.state is BreakerState.HALF_OPEN and br.available()
    end = p.next_step()
    assert isinstance(end, GiveUp) and end.error is bug


def test_stream_failed_counts_against_the_breaker() -> None:
    w = World(anthropic=1)
    for _ in range(4):
        w.up["anthropic"].breaker.record_failure()
    p = w.planner("anthropic")
    a = p.next_step()
    assert isinstance(a, Attempt)
    p.report(a, SUCCESS)
    assert w.up["anthropic"].breaker.snapshot()["recent_failures"] == 0
    for _ in range(5):
        p.stream_failed(a)
    assert w.up["anthropic"].breaker.state is BreakerState.OPEN


def test_protocol_misuse_is_loud() -> None:
    w = World(anthropic=1)
    p = w.planner("anthropic")
    a = p.next_step()
    assert isinstance(a, Attempt)
    with pytest.raises(RuntimeError):
        p.next_step()
    p.report(a, OVERLOADED)
    with pytest.raises(RuntimeError):
        p.report(a, OVERLOADED)
    with pytest.raises(ValueError):
        Planner([])


OUTCOMES = [SUCCESS, OVERLOADED, UNAVAILABLE, BAD_REQUEST, AUTH, REGION, REFUSED, rate(1), rate(45),
            classify(529, None, {"retry-after": "7"}), classify(402, None, {})]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(OUTCOMES), max_size=40), st.integers(0, 3), st.integers(0, 3),
       st.integers(0, 2**16), st.floats(0, 20))
def test_planner_always_ends_within_its_bounds(seq: list[Outcome], k1: int, k2: int, seed: int,
                                               spend: float) -> None:
    w = World(anthropic=k1, deepseek=k2)
    policy = RetryPolicy()
    p = w.planner("anthropic", "deepseek", policy=policy, seed=seed)
    outcomes = iter(seq)
    start = w.clock.monotonic()
    end, steps = w.run(p, lambda a: next(outcomes, SUCCESS), spend=spend)
    tried = [s for s in steps if isinstance(s, Attempt)]
    assert len(tried) <= 2 * policy.max_attempts
    # every attempt but the first starts before the deadline
    t = start
    for s in steps:
        if isinstance(s, Wait):
            t += s.seconds
            assert t <= start + policy.deadline + 1e-9
        elif isinstance(s, Attempt):
            if s.number > 1:
                assert t <= start + policy.deadline
            t += spend
    if isinstance(end, GiveUp):
        assert end.relay_last or end.error is not None


def test_x_should_retry_true_400_beyond_the_deadline_is_relayed_not_failed_over() -> None:
    w = World(anthropic=1, deepseek=1)
    p = w.planner("anthropic", "deepseek", policy=RetryPolicy(deadline=5.0))
    flaky = classify(400, None, {"x-should-retry": "true", "retry-after": "10"})
    end, steps = w.run(p, script(anthropic=[flaky]))
    assert isinstance(end, GiveUp) and end.relay_last
    assert attempts(steps) == [("anthropic", 0)]


def test_upstream_snapshot_for_readyz() -> None:
    w = World(anthropic=1)
    snap = w.up["anthropic"].snapshot()
    assert snap == {"breaker": {"state": "closed", "recent_failures": 0}, "byok": False,
                    "keys": [{"index": 0, "source": "literal", "state": "healthy",
                              "requests": 0, "failures": 0}]}
    assert w.up["anthropic"].usable()
