"""Requests-per-minute and tokens-per-minute limits per issued (client) key.

Window: sliding, 60 s, kept as a log of 1-second buckets (``resolution``). An event counts
against the limit from the moment it happens until the end of its bucket plus 60 s, so for
60 to 61 s: never less than a true sliding window, hence never more than ``rpm`` admissions
in any 60-second span (a fixed per-minute window lets 2 x rpm through across a minute
boundary). Memory per key is bounded by 61 buckets whatever the rate; the price is that a
slot frees up to one second later than an exact sliding log would free it.

Requests: ``admit_sync`` checks and counts in one synchronous step (no ``await`` in between),
so within one asyncio process N concurrent requests against rpm=10 admit exactly 10. State is
per process; a limiter shared between replicas is for [scale-out] to design.

Tokens: the size of a request is not known before it runs, so ``admit_sync`` lets a request in
while the tokens recorded in the window are below ``tpm``; ``record_tokens_sync`` adds a
finished request's tokens (input + output, as the caller counts them). A burst admitted
together can therefore end above ``tpm``; the following requests then wait until the window
drains below it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ccgate.errors import RateLimited
from ccgate.routing.clock import SYSTEM_CLOCK, Clock

WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    # When denied: seconds until a request would be admitted, and which limit is exhausted.
    retry_after: float | None = None
    limited_by: Literal["requests", "tokens"] | None = None
    # Header values; None when that limit is not set. Resets are Unix times (UTC).
    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset: float | None = None

    def headers(self) -> list[tuple[str, str]]:
        """``retry-after`` (when denied) and the ``anthropic-ratelimit-*`` headers, reset times
        in RFC 3339 as Anthropic sends them."""
        out: list[tuple[str, str]] = []
        if not self.allowed and self.retry_after is not None:
            out.append(("retry-after", str(max(1, math.ceil(self.retry_after)))))
        for family, limit, remaining, reset in (
            ("requests", self.requests_limit, self.requests_remaining, self.requests_reset),
            ("tokens", self.tokens_limit, self.tokens_remaining, self.tokens_reset),
        ):
            if limit is None or remaining is None or reset is None:
                continue
            out.append((f"anthropic-ratelimit-{family}-limit", str(limit)))
            out.append((f"anthropic-ratelimit-{family}-remaining", str(remaining)))
            out.append((f"anthropic-ratelimit-{family}-reset", rfc3339(reset)))
        return out

    def error(self, who: str = "this key") -> RateLimited:
        """The 429 ``rate_limit_error`` for a denied admission, headers included."""
        if self.limited_by == "tokens":
            what = f"{self.tokens_limit} tokens per minute"
        else:
            what = f"{self.requests_limit} requests per minute"
        wait = max(1, math.ceil(self.retry_after or 0.0))
        return RateLimited(
            f"rate limit of {what} exceeded for {who}; retry after {wait} s",
            headers=dict(self.headers()),
        )


def rfc3339(unix: float) -> str:
    """``2026-01-01T00:01:00Z``, rounded up to the second so it is never early."""
    return datetime.fromtimestamp(math.ceil(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Log:
    """Amounts per bucket, oldest first, with their running total."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()  # [bucket index, amount]
        self.total = 0

    def prune(self, now: float, resolution: float) -> None:
        buckets = self.buckets
        while buckets and _expiry(buckets[0][0], resolution) <= now:
            self.total -= buckets.popleft()[1]

    def add(self, index: int, amount: int) -> None:
        buckets = self.buckets
        if buckets and buckets[-1][0] == index:
            buckets[-1][1] += amount
        else:
            buckets.append([index, amount])
        self.total += amount

    def free_at(self, limit: int, now: float, resolution: float) -> float:
        """Monotonic time from which ``total < limit`` (the oldest buckets having expired)."""
        total = self.total
        if total < limit:
            return now
        for index, amount in self.buckets:
            total -= amount
            if total < limit:
                return _expiry(index, resolution)
        return now  # unreachable: an empty log has total 0 < limit

    def drained_at(self, now: float, resolution: float) -> float:
        """Monotonic time when every bucket has expired (the limit is fully replenished)."""
        return _expiry(self.buckets[-1][0], resolution) if self.buckets else now


def _expiry(index: int, resolution: float) -> float:
    return (index + 1) * resolution + WINDOW


@dataclass(slots=True)
class _KeyLogs:
    requests: _Log
    tokens: _Log


class RateLimiter:
    """Per-key limits in this process: exact within it, not shared between replicas."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, resolution: float = 1.0) -> None:
        if not 0 < resolution <= WINDOW:
            raise ValueError("resolution must be in (0, 60] seconds")
        self._clock = clock
        self._resolution = resolution
        self._keys: dict[str, _KeyLogs] = {}

    def admit_sync(self, key_id: str, rpm: int | None, tpm: int | None) -> Admission:
        """Check both limits and, if admitted, count the request; one synchronous step."""
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, or None for no limit")
        if rpm is None and tpm is None:
            return Admission(True)
        now = self._clock.monotonic()
        logs = self._logs(key_id, now)
        r = self._resolution
        waits: list[tuple[float, Literal["requests", "tokens"]]] = []
        if rpm is not None and logs.requests.total >= rpm:
            waits.append((logs.requests.free_at(rpm, now, r) - now, "requests"))
        if tpm is not None and logs.tokens.total >= tpm:
            waits.append((logs.tokens.free_at(tpm, now, r) - now, "tokens"))
        allowed = not waits
        if allowed and rpm is not None:
            logs.requests.add(math.floor(now / r), 1)
        retry_after, limited_by = max(waits) if waits else (None, None)
        to_wall = self._clock.time() - now
        return Admission(
            allowed,
            retry_after,
            limited_by,
            requests_limit=rpm,
            requests_remaining=None if rpm is None else max(0, rpm - logs.requests.total),
            requests_reset=None if rpm is None else logs.requests.drained_at(now, r) + to_wall,
            tokens_limit=tpm,
            tokens_remaining=None if tpm is None else max(0, tpm - logs.tokens.total),
            tokens_reset=None if tpm is None else logs.tokens.drained_at(now, r) + to_wall,
        )

    def record_tokens_sync(self, key_id: str, tokens: int) -> None:
        if tokens <= 0:
            return
        now = self._clock.monotonic()
        self._logs(key_id, now).tokens.add(math.floor(now / self._resolution), tokens)

    def _logs(self, key_id: str, now: float) -> _KeyLogs:
        logs = self._keys.get(key_id)
        if logs is None:
            logs = self._keys[key_id] = _KeyLogs(_Log(), _Log())
        else:
            self._prune(logs, now)
        return logs

    def _prune(self, logs: _KeyLogs, now: float) -> None:
        """Expire old buckets."""
        logs.requests.prune(now, self._resolution)
        logs.tokens.prune(now, self._resolution)
