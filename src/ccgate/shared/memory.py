"""``MemoryKV``: the short-lived records of ``ccgate.shared.KV`` in this process's memory, for
a gateway that is one process (no ``redis.url``, no ``--workers``). Console sessions, /login
device codes, sign-in flows, refresh-token families and attempt counters live here then, as
they would in Redis or the workers' hub with more than one process.

A dict of ``key -> (expires_at, value)`` on an injected monotonic clock. Expired records are
dropped when read, and swept when the table is full; if it is still full, the records closest
to expiring go first (they had the least life left), so a flood of new records cannot grow
memory without bound. Every method runs without awaiting anything, so on one event loop each
is atomic: ``kv_take`` hands a one-time code to exactly one caller.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

MAX_ENTRIES = 100_000


class MemoryKV:
    def __init__(self, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        self._data: dict[str, tuple[float, bytes]] = {}

    def __len__(self) -> int:
        return len(self._data)

    async def kv_put(self, key: str, value: bytes, ttl: float) -> None:
        self._put(key, bytes(value), ttl)

    async def kv_get(self, key: str) -> bytes | None:
        return self._live(key)

    async def kv_take(self, key: str) -> bytes | None:
        value = self._live(key)
        if value is not None:
            del self._data[key]
        return value

    async def kv_delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def kv_incr(self, key: str, amount: int, ttl: float) -> int:
        """As Redis ``INCRBY`` + ``EXPIRE NX``: the first increment starts the ``ttl``; later
        ones keep the deadline it set."""
        now = self._clock()
        entry = self._data.get(key)
        if entry is None or entry[0] <= now:
            value = amount
            self._put(key, str(value).encode(), ttl)
            return value
        try:
            value = int(entry[1]) + amount
        except ValueError:
            raise ValueError(f"the record {key!r} is not a counter") from None
        self._data[key] = (entry[0], str(value).encode())
        return value

    def live_keys(self, prefix: str = "") -> list[str]:
        """The live keys under ``prefix`` (for tests and debugging; not part of ``KV``)."""
        now = self._clock()
        return [k for k, (expires, _) in self._data.items() if k.startswith(prefix) and expires > now]

    # ---------------------------------------------------------------------------------------

    def _live(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._data[key]
            return None
        return entry[1]

    def _put(self, key: str, value: bytes, ttl: float) -> None:
        now = self._clock()
        if ttl <= 0:
            self._data.pop(key, None)  # already expired: as Redis, nothing is kept
            return
        if key not in self._data and len(self._data) >= self._max:
            self._make_room(now)
        self._data[key] = (now + ttl, value)

    def _make_room(self, now: float) -> None:
        self._data = {k: v for k, v in self._data.items() if v[0] > now}
        if len(self._data) < self._max:
            return
        # Evict a tenth at once (at least one) so a flood costs one sweep per many inserts.
        count = max(1, self._max // 10)
        for key, _ in heapq.nsmallest(count, self._data.items(), key=lambda item: item[1][0]):
            del self._data[key]
