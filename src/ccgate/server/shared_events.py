"""The facts gateway processes tell each other (``ccgate.shared`` events), wired to where they
are learned and to where they are applied. Each is published by the process that learned it
and applied by the others to their own memory, never published again from there:

- ``upstream_key``: a provider key cooled (429/529 with retry-after) or disabled (401/403)
  after an answer (``KeyPool.on_shared``); the others cool or disable the key with the same
  fingerprint, so one replica's 429 or 401 spares the rest.
- ``breaker``: a provider's breaker opened (for how long) or closed after its probe
  (``Breaker.on_shared``); the others open it for the same time, or close it.
- ``spend``: the cost of the usage rows this process committed, per key (from the usage
  writer thread, handed to the event loop); the others add it to their ``BudgetTracker``.
- ``token_revoked``: a /login access token revoked here (``Revocations.on_revoke``).
- ``keys_changed`` is wired in ``Gateway._link`` (``KeyCache.on_change``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ccgate.login.tokens import Revocations
from ccgate.server.shared_link import SharedLink
from ccgate.store import UsageRow
from ccgate.store.budget import BudgetTracker

if TYPE_CHECKING:
    from ccgate.server.runtime import Runtime

Publish = Callable[..., None]


def wire(link: SharedLink, runtime: Callable[[], Runtime], revoked: Revocations,
         budgets: BudgetTracker | None) -> None:
    """Register the handlers of events from other processes, and publish revocations made here.
    ``runtime``: the gateway's current runtime (a reload replaces it)."""
    link.handle("upstream_key", lambda data: _apply_key(runtime(), data))
    link.handle("breaker", lambda data: _apply_breaker(runtime(), data))
    link.handle("token_revoked", lambda data: revoked.apply_shared(str(data["jti"]), float(data["exp"])))
    revoked.on_revoke = lambda jti, exp: link.publish("token_revoked", jti=jti, exp=exp)
    if budgets is not None:
        link.handle("spend", lambda data: budgets.add_shared(
            str(data["key_id"]), float(data["usd"]), float(data["ts"])))


def _apply_key(rt: Runtime, data: dict[str, Any]) -> None:
    upstream = rt.upstreams.get(str(data["provider"]))
    if upstream is not None:
        upstream.pool.apply_shared(str(data["key"]), str(data["action"]), float(data.get("seconds", 0.0)),
                                   str(data.get("reason", "")))


def _apply_breaker(rt: Runtime, data: dict[str, Any]) -> None:
    upstream = rt.upstreams.get(str(data["target"]))
    if upstream is not None:
        upstream.breaker.apply_shared(str(data["state"]), float(data.get("seconds", 0.0)))


def key_publisher(publish: Publish, provider: str) -> Callable[[str, str, float, str], None]:
    """``KeyPool.on_shared`` for ``provider``'s pool."""
    def changed(fingerprint: str, action: str, seconds: float, reason: str) -> None:
        publish("upstream_key", provider=provider, key=fingerprint, action=action, seconds=seconds,
                reason=reason)
    return changed


def breaker_publisher(publish: Publish, provider: str) -> Callable[[str, float], None]:
    """``Breaker.on_shared`` for ``provider``'s breaker."""
    def changed(state: str, seconds: float) -> None:
        publish("breaker", target=provider, state=state, seconds=seconds)
    return changed


class SpendRelay:
    """The cost of committed usage rows, from the usage writer thread to the event loop (where
    the backend publishes): one ``spend`` event per key per committed batch."""

    def __init__(self, link: SharedLink, clock: Callable[[], float]) -> None:
        self._link = link
        self._clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None  # set at the lifespan's start

    def committed(self, rows: Sequence[UsageRow]) -> None:
        """Writer thread: the batch is committed."""
        loop = self.loop
        if loop is None:
            return
        sums: dict[str, float] = {}
        for row in rows:
            if row.cost_usd and row.key_id is not None and not row.log_only:
                sums[row.key_id] = sums.get(row.key_id, 0.0) + row.cost_usd
        if not sums:
            return
        ts = self._clock()
        for key_id, usd in sums.items():
            with contextlib.suppress(RuntimeError):  # the loop is closing: shutting down
                loop.call_soon_threadsafe(functools.partial(self._link.publish, "spend", key_id=key_id,
                                                            usd=usd, ts=ts))


__all__ = ["SpendRelay", "breaker_publisher", "key_publisher", "wire"]
