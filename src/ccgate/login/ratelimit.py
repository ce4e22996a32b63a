"""Attempt limits per client address (device authorizations, user-code guesses), sans-IO.

A fixed window per key: cheap, and exact enough for "at most N tries per 10 minutes". The
table is bounded; when it is full of live windows new keys are refused (fail closed), since
only an attacker spreading over many addresses fills it.
"""

from __future__ import annotations

from collections.abc import Callable


class WindowLimiter:
    def __init__(self, limit: int, window: float, clock: Callable[[], float], *,
                 max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._hits: dict[str, tuple[float, int]] = {}  # key -> (window start, count)

    def hit(self, key: str) -> bool:
        """Count one attempt; False when the key is over its limit in this window."""
        now = self._clock()
        start, count = self._hits.get(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if key not in self._hits and len(self._hits) >= self._max_keys:
            self._prune(now)
            if len(self._hits) >= self._max_keys:
                return False
        count += 1
        self._hits[key] = (start, count)
        return count <= self.limit

    def _prune(self, now: float) -> None:
        self._hits = {k: v for k, v in self._hits.items() if now - v[0] < self.window}
