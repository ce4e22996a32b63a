"""ccgate.routing: sans-IO resilience primitives for the gateway (docs/routing.md).

Model routes (``models:`` rules -> targets), key pools, outcome classification, retry
policy, circuit breakers, per-key rate limits and the attempt planner that ties them
together. Nothing here does I/O or sleeps; time comes from an injected ``Clock``.
"""

from ccgate.routing.breaker import Breaker, BreakerState
from ccgate.routing.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from ccgate.routing.keypool import KeyEvent, KeyLease, KeyPool, KeyState, NoKey
from ccgate.routing.outcome import Failover, KeyAction, Outcome, OutcomeKind, classify, parse_retry_after
from ccgate.routing.plan import Attempt, AttemptRecord, Candidate, GiveUp, Planner, Upstream, Wait
from ccgate.routing.ratelimit import Admission, RateLimiter
from ccgate.routing.retry import RetryBudget, RetryPolicy
from ccgate.routing.route import Route, Target, route_model

__all__ = [
    "SYSTEM_CLOCK", "Admission", "Attempt", "AttemptRecord", "Breaker", "BreakerState", "Candidate",
    "Clock", "Failover", "GiveUp", "KeyAction", "KeyEvent", "KeyLease", "KeyPool", "KeyState",
    "ManualClock", "NoKey", "Outcome", "OutcomeKind", "Planner", "RateLimiter", "RetryBudget",
    "RetryPolicy", "Route", "SystemClock", "Target", "Upstream", "Wait", "classify", "parse_retry_after",
    "route_model",
]
