"""Time, injected: every routing primitive reads the clock through this protocol, so tests
drive time by hand and never sleep.

``monotonic()`` orders events and measures intervals (cooldowns, windows, deadlines);
``time()`` (seconds since the epoch) is needed only to read an HTTP-date ``retry-after`` and
to write RFC 3339 ``anthropic-ratelimit-*-reset`` headers.
"""

from __future__ import annotations

import time as _time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to; wall time moves in step with monotonic time."""

    __slots__ = ("_epoch", "_now")

    def __init__(self, start: float = 1000.0, epoch: float = 1_767_225_600.0) -> None:
        # epoch default: 2026-01-01T00:00:00Z, so formatted dates are easy to read in tests.
        self._now = start
        self._epoch = epoch - start

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._epoch + self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds
