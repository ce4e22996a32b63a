"""A circuit breaker per upstream provider: closed, open, half-open with one probe.

Trip rule: ``failure_threshold`` consecutive failures (no success in between), all within
``window`` seconds, open the circuit. Consecutive counting (the rule Envoy's outlier
detection uses, ``consecutive_5xx`` = 5) reacts to an upstream that is down, which is what a
breaker is for, and needs no traffic volume to be meaningful, where a failure rate would need
a minimum request count per window to avoid tripping on 2 failures out of 3. A provider that
fails only some requests is left to retries and fallbacks. The window makes five failures
spread over an hour not count as "consecutive".

Only failures that say something about the provider count (``Outcome.trips_breaker``: 5xx,
529, timeouts, connection errors); 4xx answers, 429 included, count as successes, since the
provider answered.

Open: ``allow()`` is False for ``open_seconds``; then the breaker is half-open and lets
exactly one probe through. The probe's success closes it; its failure opens it again for
twice as long as the previous period, up to ``max_open_seconds``. A probe that never
reports (the caller forgot, or crashed) frees its slot after ``probe_timeout`` seconds;
``release_probe()`` frees it at once for an attempt that ended without an outcome.

State changes happen when the breaker is used or read (open -> half-open is noticed lazily),
and are passed to ``on_change(name, old, new)``. Synchronous throughout, so within one
asyncio process a check and its update cannot interleave with another request's.

Several gateway processes (``ccgate.shared``): the breaker opening here, or closing after a
successful probe, is passed to ``on_shared(state, seconds)``; ``apply_shared`` applies what
another process saw (not passed on again), so one process's failures spare the others.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum

from ccgate.config.model import BreakerSettings
from ccgate.routing.clock import SYSTEM_CLOCK, Clock

# ``failure_threshold``, ``window`` and ``open_seconds`` are the config's ``routing.breaker``:
# their defaults and checks are ``config.model.BreakerSettings``, written once there.
_CONFIGURED = BreakerSettings()


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    def __init__(
        self,
        name: str = "",
        *,
        failure_threshold: int = _CONFIGURED.failure_threshold,
        window: float = _CONFIGURED.window,
        open_seconds: float = _CONFIGURED.open_seconds,
        max_open_seconds: float = 300.0,
        probe_timeout: float = 600.0,
        clock: Clock = SYSTEM_CLOCK,
        on_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
        on_shared: Callable[[str, float], None] | None = None,
    ) -> None:
        # The configurable three are checked by the rules the config file is checked with.
        BreakerSettings(failure_threshold=failure_threshold, window=window, open_seconds=open_seconds)
        if probe_timeout <= 0:
            raise ValueError("probe_timeout must be positive")
        self.name = name
        self.failure_threshold = failure_threshold
        self.window = window
        self.open_seconds = open_seconds
        self.max_open_seconds = max(max_open_seconds, open_seconds)
        self.probe_timeout = probe_timeout
        self._clock = clock
        self._on_change = on_change
        self.on_shared = on_shared
        self._state = BreakerState.CLOSED
        self._failures: deque[float] = deque(maxlen=failure_threshold)
        self._open_until = 0.0
        self._open_for = open_seconds
        self._probe_started: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock.monotonic() >= self._open_until:
            self._probe_started = None
            self._move(BreakerState.HALF_OPEN)
        return self._state

    def available(self) -> bool:
        """Would ``allow()`` say yes now? Takes nothing."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        return state is BreakerState.HALF_OPEN and self._probe_free()

    def allow(self) -> bool:
        """May a request go to this provider now? In half-open, True takes the probe slot."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probe_free():
            self._probe_started = self._clock.monotonic()
            return True
        return False

    def release_probe(self) -> None:
        """The probe ended without an outcome (client gone): let another probe through."""
        self._probe_started = None

    def record_success(self) -> None:
        self._failures.clear()
        if self.state is BreakerState.HALF_OPEN:
            self._probe_started = None
            self._open_for = self.open_seconds
            self._move(BreakerState.CLOSED)
            if self.on_shared is not None:
                self.on_shared("closed", 0.0)

    def record_failure(self) -> None:
        state = self.state
        now = self._clock.monotonic()
        if state is BreakerState.OPEN:
            return  # a request from before the trip; the open period stands
        if state is BreakerState.HALF_OPEN:
            self._probe_started = None
            self._open_for = min(self.max_open_seconds, self._open_for * 2)
            self._open(now)
            return
        failures = self._failures
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.failure_threshold:
            self._open(now)

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_until - self._clock.monotonic())

    def snapshot(self) -> dict[str, object]:
        state = self.state
        out: dict[str, object] = {"state": state.value, "recent_failures": len(self._failures)}
        if state is BreakerState.OPEN:
            out["retry_in_seconds"] = round(self.retry_in(), 1)
        if state is BreakerState.HALF_OPEN:
            out["probe_in_flight"] = not self._probe_free()
        return out

    def _probe_free(self) -> bool:
        started = self._probe_started
        return started is None or self._clock.monotonic() - started >= self.probe_timeout

    def _open(self, now: float) -> None:
        self._failures.clear()
        self._open_until = now + self._open_for
        self._move(BreakerState.OPEN)
        if self.on_shared is not None:
            self.on_shared("open", self._open_for)

    def apply_shared(self, state: str, seconds: float) -> None:
        """Another process's breaker for this provider opened for ``seconds`` (open here for the
        same remaining time, never shortening an open period) or closed after its probe."""
        if state == "open":
            until = self._clock.monotonic() + max(0.0, min(float(seconds), self.max_open_seconds))
            if self._state is BreakerState.OPEN and self._open_until >= until:
                return
            self._failures.clear()
            self._probe_started = None
            self._open_until = until
            self._move(BreakerState.OPEN)
        elif state == "closed" and self._state is not BreakerState.CLOSED:
            self._failures.clear()
            self._probe_started = None
            self._open_for = self.open_seconds
            self._move(BreakerState.CLOSED)

    def _move(self, new: BreakerState) -> None:
        old = self._state
        self._state = new
        if old is not new and self._on_change is not None:
            self._on_change(self.name, old, new)
