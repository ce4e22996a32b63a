"""How long to wait before trying again, and until when trying again is allowed.

Backoff is exponential with full jitter (AWS architecture blog, "Exponential Backoff And
Jitter"): the n-th retry (n = 0 for the first) waits ``uniform(0, min(cap, base * 2**n))``,
which spreads the retries of many clients hit by the same failure instead of synchronising
them. An upstream ``retry-after`` is a floor: the wait is never shorter. A wait that would
end after the deadline is not made at all (``None``): the caller gives up or moves on.
"""

from __future__ import annotations

import math
import os
import random

from ccgate.config.model import Retries
from ccgate.routing.clock import SYSTEM_CLOCK, Clock

# Jitter needs spread, not secrecy: one generator for the process, because seeding a new
# one per request reads the OS entropy pool on every request.
_JITTER = random.Random()
# A forked worker must not replay our jitter. Windows has no fork (nor register_at_fork):
# calling it unguarded made every ccgate command fail at import there.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_JITTER.seed)


class RetryPolicy(Retries):
    """The config's ``routing.retries`` and the arithmetic that applies them.

    The fields, their defaults and checks are ``config.model.Retries``, written once there.
    """

    def backoff_bound(self, retry: int) -> float:
        """Upper bound of the jittered wait before retry number ``retry`` (0-based)."""
        if retry >= 64:  # far past any cap, and 2.0**n overflows a float past n = 1023
            return self.cap
        return min(self.cap, self.base * 2.0**retry)

    def delay(
        self,
        retry: int,
        retry_after: float | None = None,
        *,
        remaining: float = math.inf,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based), or None when the wait would
        not end within ``remaining`` seconds of deadline."""
        r = rng if rng is not None else random
        wait = r.uniform(0.0, self.backoff_bound(max(0, retry)))
        if retry_after is not None and retry_after > wait:
            wait = retry_after
        if wait > remaining:
            return None
        return wait


class RetryBudget:
    """One request's deadline and randomness: ``RetryPolicy`` bound to a clock and a start."""

    __slots__ = ("_clock", "_rng", "policy", "started")

    def __init__(self, policy: RetryPolicy, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None) -> None:
        self.policy = policy
        self._clock = clock
        self._rng = rng or _JITTER
        self.started = clock.monotonic()

    @property
    def deadline_at(self) -> float:
        return self.started + self.policy.deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline_at - self._clock.monotonic())

    def expired(self) -> bool:
        """True once the deadline has passed (an attempt may still start exactly at it)."""
        return self._clock.monotonic() > self.deadline_at

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """``RetryPolicy.delay`` against the time left."""
        return self.policy.delay(retry, retry_after, remaining=self.remaining(), rng=self._rng)
