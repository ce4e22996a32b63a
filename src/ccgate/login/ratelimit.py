"""Attempt limits per client address (device authorizations, user-code guesses, console
sign-ins): a fixed window per address, counted in the gateway's short-lived records
(``ccgate.shared.KV``) so every process of a gateway counts the same attempts.

``kv_incr`` starts the window at the first attempt and counts atomically; "at most N tries per
10 minutes" needs no more. The records are bounded by the store itself (``MemoryKV`` evicts,
Redis has its memory limit), so an attacker spreading over many addresses cannot grow memory.
"""

from __future__ import annotations

from ccgate.shared import KV


class Attempts:
    def __init__(self, kv: KV, name: str, limit: int, window: float) -> None:
        self.kv = kv
        self.name = name  # the records' prefix, e.g. "login:attempts:device"
        self.limit = limit
        self.window = window

    def _key(self, who: str) -> str:
        return f"{self.name}:{who}"

    async def hit(self, who: str) -> bool:
        """Count one attempt; False when ``who`` is over the limit in this window."""
        return await self.kv.kv_incr(self._key(who), 1, self.window) <= self.limit

    async def allowed(self, who: str) -> bool:
        """Whether ``who`` is under the limit, without counting (failures are counted apart)."""
        raw = await self.kv.kv_get(self._key(who))
        return raw is None or int(raw) < self.limit
