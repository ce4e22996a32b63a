"""The attempt planner: which provider and key to try next, when, and when to give up.

A route is an ordered list of candidates (the primary, then its fallbacks). The planner is a
small state machine with no I/O, so the server's loop around it stays a thin ``while``::

    planner = Planner(candidates, policy)
    while True:
        step = planner.next_step()
        if isinstance(step, Wait):      -> sleep step.seconds, then ask again
        if isinstance(step, GiveUp):    -> relay the last upstream answer (step.relay_last)
                                           or send step.error; done
        # step is an Attempt: send with step.lease's key to step.target, then
        planner.report(step, classify(...))   # and stop here if the outcome is ok

Per step the planner walks the candidates in order and takes the first one that

1. has attempts left (``RetryPolicy.max_attempts`` per candidate),
2. whose breaker lets a request through (open: skipped; half-open: the one probe),
3. that has a key (``KeyPool.acquire``; none healthy: skipped, or waited for, see 4),
4. whose required wait (backoff after a retryable failure, or the rest of its only keys)
   ends before the deadline, and is at most ``max_wait`` when a later candidate could take
   the request at once. Otherwise the candidate is left for the next one.

After each attempt, ``report()`` feeds the outcome to the key pool (cooldown, disable) and
the breaker (failure if it trips, success otherwise), then decides:

* success: done (the server streams the answer);
* the request is at fault (400, 404, 413 ...): give up and relay that answer as it is;
* the key is at fault (401, 403): it is taken out; the next attempt uses another key of
  the same provider, or moves on when none is left. With bring-your-own-key the client's own
  credential failed, so the answer is relayed;
* the account is at fault (402, billing, region block, relay account error): no retry, the
  next provider is tried;
* retryable (connect error, timeout, 408, 409, 429, 5xx, 529): retry the same provider
  after a full-jitter backoff that honours ``retry-after``; a 429 rests the key instead and
  the retry goes to another key at once; once this provider's attempts are spent, or its
  breaker opens, or the wait would pass the deadline, the next provider is tried.

Giving up: after at least one attempt, the last upstream answer is relayed unchanged, except
a 401/403 against the gateway's own key, which becomes a 500 ``api_error`` naming the
provider (a relayed 401 would make Claude Code think the *client's* credential is wrong),
and a transport failure, which is sent as its ``UpstreamError``. With no attempt at all
(every breaker open, every key resting or disabled), the planner answers at once rather than
wait on a provider known to be failing: 529 ``overloaded_error`` when a breaker is open, 429
``rate_limit_error`` when keys are resting (both with ``retry-after``: the soonest time one
frees), or 500 ``api_error`` when every key is disabled.

Streams: retries stop at the first byte sent to the client. The server reports the outcome
when the upstream's status line arrives and never asks for another step once it has started
relaying a body; a stream that breaks afterwards is passed to ``stream_failed()`` so the
breaker hears of it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from ccgate.errors import GatewayError, RateLimited, UpstreamOverloaded, UpstreamRefusedGateway
from ccgate.routing.breaker import Breaker, BreakerState
from ccgate.routing.clock import SYSTEM_CLOCK, Clock
from ccgate.routing.keypool import KeyLease, KeyPool, NoKey
from ccgate.routing.outcome import Failover, Outcome, OutcomeKind
from ccgate.routing.retry import RetryBudget, RetryPolicy

T = TypeVar("T")


@dataclass(slots=True)
class Upstream:
    """The long-lived health of one provider: its keys and its breaker. One per provider,
    shared by every route that uses it."""

    name: str
    pool: KeyPool
    breaker: Breaker

    def usable(self) -> bool:
        """Can this provider take requests at all (some key not disabled, breaker not open)?"""
        return self.pool.usable() and self.breaker.state is not BreakerState.OPEN

    def snapshot(self) -> dict[str, object]:
        """For /readyz and metrics; no secret."""
        return {"breaker": self.breaker.snapshot(), "byok": self.pool.byok, "keys": self.pool.snapshot()}


@dataclass(frozen=True, slots=True)
class Candidate(Generic[T]):
    """One entry of a route: an upstream, and what the server needs to send to it (``target``:
    its transport, a model rewrite...), which the planner never looks at."""

    upstream: Upstream
    target: T

    @property
    def name(self) -> str:
        return self.upstream.name


@dataclass(frozen=True, slots=True)
class Attempt(Generic[T]):
    """Send the request now, to ``target``, with ``lease``'s key."""

    candidate: Candidate[T]
    lease: KeyLease
    number: int  # 1-based over the whole request
    try_number: int  # 1-based on this candidate
    probe: bool  # this attempt is the half-open breaker's probe

    @property
    def target(self) -> T:
        return self.candidate.target

    @property
    def provider(self) -> str:
        return self.candidate.upstream.name


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep ``seconds``, then call ``next_step()`` again."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No more attempts. ``relay_last``: send the last upstream answer as received; else send
    ``error``."""

    relay_last: bool
    error: GatewayError | None
    reason: str


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One line of a request's history, for the access log."""

    provider: str
    key: int  # -1: the client's own credential
    kind: OutcomeKind
    status: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class _Skip:
    provider: str
    reason: str
    wait: float | None  # seconds until it could be used again; None: not by itself
    cause: Literal["breaker", "keys", "spent"]


class Planner(Generic[T]):
    def __init__(
        self,
        candidates: Sequence[Candidate[T]],
        policy: RetryPolicy | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        if not candidates:
            raise ValueError("a route needs at least one candidate")
        self._cands: Sequence[Candidate[T]] = candidates if isinstance(candidates, tuple) else list(candidates)
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._budget = RetryBudget(self.policy, clock, rng)
        self._index = 0
        self._tries = 0  # attempts on the current candidate
        self._attempts = 0
        self._not_before = 0.0
        self._in_flight: Attempt[T] | None = None
        self._last: tuple[Attempt[T], Outcome] | None = None
        self._skips: list[_Skip] = []
        self._final: GiveUp | None = None
        self._closed = False
        # (provider, lease, outcome) per attempt; AttemptRecords only when someone reads them.
        self._history: list[tuple[str, KeyLease, Outcome]] = []

    # -- the loop's three calls ---------------------------------------------------------

    def next_step(self) -> Attempt[T] | Wait | GiveUp:
        if self._in_flight is not None:
            raise RuntimeError("report() the attempt in flight before asking for the next step")
        if self._closed:
            raise RuntimeError("the request is over: it succeeded or was abandoned")
        if self._final is not None:
            return self._final
        if self._attempts and self._budget.expired():
            return self._finish(f"deadline of {self.policy.deadline:g} s spent")
        policy = self.policy
        while self._index < len(self._cands):
            up = self._cands[self._index].upstream
            if self._tries >= policy.max_attempts:
                self._skip(up.name, f"{self._tries} attempts made", None, "spent")
                continue
            if not up.breaker.available():
                if up.breaker.state is BreakerState.OPEN:
                    wait = up.breaker.retry_in()
                    self._skip(up.name, f"circuit open, next probe in {wait:.0f} s", wait, "breaker")
                else:
                    self._skip(up.name, "circuit half-open, probe in flight", 1.0, "breaker")
                continue
            now = self._clock.monotonic()
            wait_until, why = self._not_before, "backoff"
            if wait_until <= now:
                # Nothing to wait for but perhaps a key: take one at once (one pass over the pool
                # instead of peek() then acquire(); acquire() changes nothing when it finds none).
                found = up.pool.acquire()
                if isinstance(found, KeyLease):
                    return self._start(up, found)
                no_key: NoKey | None = found
            else:
                no_key = up.pool.peek()
            if no_key is not None:
                if no_key.free_at is None:
                    self._skip(up.name, no_key.reason, None, "keys")
                    continue
                if no_key.free_at > wait_until:
                    wait_until, why = no_key.free_at, no_key.reason
            if wait_until > now:
                wait = wait_until - now
                if wait > self._budget.remaining():
                    self._skip(up.name, f"{why}: {wait:.1f} s is past the deadline", wait, "keys")
                    continue
                if wait > policy.max_wait and self._later_ready():
                    self._skip(up.name, f"{why}: {wait:.1f} s, a fallback is ready", wait, "keys")
                    continue
                return Wait(wait, why)
            lease = up.pool.acquire()
            if not isinstance(lease, KeyLease):  # pragma: no cover
                raise AssertionError("peek() promised a key")
            return self._start(up, lease)
        return self._finish("no candidate left")

    def _start(self, up: Upstream, lease: KeyLease) -> Attempt[T]:
        probe = up.breaker.state is BreakerState.HALF_OPEN
        if not up.breaker.allow():  # pragma: no cover
            raise AssertionError("available() promised a pass")
        self._tries += 1
        self._attempts += 1
        attempt = Attempt(self._cands[self._index], lease, self._attempts, self._tries, probe)
        self._in_flight = attempt
        return attempt

    def report(self, attempt: Attempt[T], outcome: Outcome) -> None:
        """What ``attempt`` produced (``classify()``). Call once per attempt, when the upstream's
        status line arrives or its transport error is raised."""
        if attempt is not self._in_flight:
            raise RuntimeError("report() is for the attempt in flight")
        self._in_flight = None
        up = attempt.candidate.upstream
        up.pool.report(attempt.lease, outcome)
        if outcome.trips_breaker:
            up.breaker.record_failure()
        elif outcome.error is None:
            up.breaker.record_success()  # the provider answered: it is up
        elif attempt.probe:
            up.breaker.release_probe()  # ccgate's own error: says nothing about the provider
        self._last = (attempt, outcome)
        self._not_before = 0.0
        self._history.append((up.name, attempt.lease, outcome))
        if outcome.ok:
            self._closed = True
            return
        byok = attempt.lease.byok
        if outcome.failover is Failover.KEY:
            if byok:
                self._finish("the client's own credential was refused")
            return  # the key is out; the next step takes another key or moves on
        if outcome.retryable:
            if self._tries >= self.policy.max_attempts:
                self._stop_here(up.name, outcome, f"{self._tries} attempts made")
                return
            if outcome.kind is OutcomeKind.RATE_LIMITED and not byok:
                return  # the key rests; another key goes at once, or the next step waits for it
            delay = self._budget.delay(self._tries - 1, outcome.retry_after)
            if delay is None:
                self._stop_here(up.name, outcome, f"{outcome.reason}: a retry would pass the deadline")
            else:
                self._not_before = self._clock.monotonic() + delay
            return
        if outcome.failover is Failover.PROVIDER:
            self._skip(up.name, outcome.reason, None, "spent")
            return
        self._finish(f"{outcome.reason} is final")

    def abandon(self, attempt: Attempt[T]) -> None:
        """The attempt ended without an outcome (the client went away, the task was cancelled)."""
        if attempt is self._in_flight:
            self._in_flight = None
            if attempt.probe:
                attempt.candidate.upstream.breaker.release_probe()
        self._closed = True

    def stream_failed(self, attempt: Attempt[T]) -> None:
        """The upstream broke a response after it had started (not the client going away)."""
        attempt.candidate.upstream.breaker.record_failure()

    # -- reading ------------------------------------------------------------------------

    @property
    def attempts(self) -> int:
        return self._attempts

    @property
    def history(self) -> list[AttemptRecord]:
        """Every attempt so far, in order."""
        return [AttemptRecord(name, lease.index, outcome.kind, outcome.status, outcome.reason)
                for name, lease, outcome in self._history]

    def trail(self) -> str:
        """``anthropic#0 529, anthropic#1 529, deepseek#0 200`` for a log line."""
        return ", ".join(
            f"{r.provider}#{r.key if r.key >= 0 else 'client'} {r.status if r.status is not None else r.kind}"
            for r in self.history
        )

    # -- internals ----------------------------------------------------------------------

    def _skip(self, provider: str, reason: str, wait: float | None,
              cause: Literal["breaker", "keys", "spent"]) -> None:
        self._skips.append(_Skip(provider, reason, wait, cause))
        self._index += 1
        self._tries = 0
        self._not_before = 0.0

    def _stop_here(self, provider: str, outcome: Outcome, reason: str) -> None:
        """No more tries on this candidate: move on, unless the answer is one to relay."""
        if outcome.failover is Failover.NONE:
            self._finish(reason)
        else:
            self._skip(provider, reason, None, "spent")

    def _later_ready(self) -> bool:
        """Could a later candidate take the request right now?"""
        return any(
            c.upstream.breaker.available() and c.upstream.pool.peek() is None
            for c in self._cands[self._index + 1:]
        )

    def _finish(self, reason: str) -> GiveUp:
        self._final = self._give_up(reason)
        return self._final

    def _give_up(self, reason: str) -> GiveUp:
        if self._last is not None:
            attempt, last = self._last
            if last.error is not None:
                return GiveUp(False, last.error, reason)
            if last.kind is OutcomeKind.AUTH_ERROR and not attempt.lease.byok:
                why = last.reason
                if attempt.lease.secret is not None:  # providers echo the key they refused
                    why = why.replace(attempt.lease.secret.value, attempt.lease.masked)
                return GiveUp(False, UpstreamRefusedGateway(
                    f"provider {attempt.provider!r} refused the gateway's key {attempt.lease.masked} "
                    f"({why}); the key is taken out of service, see /readyz with the admin key", hop="auth",
                ), reason)
            return GiveUp(True, None, reason)
        # Nothing was sent: say why each candidate was passed over.
        text = "; ".join(f"{s.provider}: {s.reason}" for s in self._skips)
        waits = [s.wait for s in self._skips if s.wait is not None]
        if not waits:
            return GiveUp(False, UpstreamRefusedGateway(
                f"no provider can take this request ({text})", hop="keys"), reason)
        headers = {"retry-after": str(max(1, math.ceil(min(waits))))}
        if any(s.cause == "breaker" for s in self._skips):
            return GiveUp(False, UpstreamOverloaded(
                f"no provider available ({text})", hop="breaker", headers=headers), reason)
        return GiveUp(False, RateLimited(
            f"the gateway's upstream keys are rate limited ({text})", headers=headers), reason)
