"""The upstream keys of one provider: which one the next request uses, and which ones rest.

Every key is in one of three states:

* ``healthy``: eligible;
* ``cooling`` until a monotonic time: it answered 429 (for ``retry-after``, else a default),
  or its account is out of credit; it comes back by itself;
* ``disabled`` with a reason: it answered 401/403. It is never retried by itself (a revoked
  key stays revoked); ``enable()`` puts it back, as does a new pool on config reload.

Strategy ``round_robin`` (default) hands out healthy keys in turn, skipping the others; it
spreads requests, and so per-key rate limits, evenly, and needs no bookkeeping at the end of
a request, which a streamed response may reach minutes later or never (cancelled). A
least-in-flight strategy would need exactly that release, and a missed release skews it for
good; with keys that share one provider and similar requests, it would buy little. Strategy
``random`` picks uniformly among healthy keys (useful when several replicas would otherwise
walk the keys in lockstep).

A pool with no keys is bring-your-own-key mode: ``acquire()`` always returns the
passthrough lease (``lease.byok``), the client's own credential goes upstream, and reports
change nothing, since the gateway has no key to rest or take out.

Everything here is synchronous: within one asyncio process no other request can run between
a check and an update, so no locks are needed.

Several gateway processes (``ccgate.shared``): a key this process cools or disables after an
answer is passed to ``on_shared`` (the gateway publishes it), and ``apply_shared`` applies what
another process learned, without passing it on again. Processes name a key by its
``fingerprint`` (16 hex digits of its SHA-256), never by its value.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from ccgate.config.secrets import Secret, mask
from ccgate.routing.clock import SYSTEM_CLOCK, Clock
from ccgate.routing.outcome import Outcome

Strategy = Literal["round_robin", "random"]
SharedAction = Literal["cool", "disable", "enable"]
# (fingerprint, action, seconds, reason): a change this process learned, for the others.
OnShared = Callable[[str, SharedAction, float, str], None]


def key_fingerprint(value: str) -> str:
    """How processes name a key to each other: not the key, and not reversible to it."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


class KeyState(StrEnum):
    HEALTHY = "healthy"
    COOLING = "cooling"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class KeyLease:
    """The key one attempt uses. ``index`` is -1 and ``secret`` None in bring-your-own-key mode."""

    index: int
    secret: Secret | None
    pool: KeyPool | None = field(default=None, repr=False, compare=False)

    @property
    def byok(self) -> bool:
        return self.secret is None

    @property
    def masked(self) -> str:
        return mask(self.secret.value) if self.secret is not None else "client credential"

    def headers(self, auth_header: Literal["x-api-key", "bearer", "none"] = "x-api-key") -> dict[str, str]:
        """The credential header to send upstream ({} in bring-your-own-key mode or with ``none``)."""
        if self.secret is None or auth_header == "none":
            return {}
        if auth_header == "bearer":
            return {"authorization": f"Bearer {self.secret.value}"}
        return {"x-api-key": self.secret.value}


@dataclass(frozen=True, slots=True)
class NoKey:
    """No healthy key now. ``free_at``: monotonic time the first cooling key comes back, or
    None when every key is disabled."""

    free_at: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """A key changed state; for logs and metrics. Never carries the secret."""

    pool: str
    index: int
    key: str  # masked
    old: KeyState
    new: KeyState
    reason: str


@dataclass(slots=True)
class _Key:
    secret: Secret
    state: KeyState = KeyState.HEALTHY
    until: float = 0.0
    reason: str = ""
    requests: int = 0
    failures: int = 0
    fingerprint: str = ""


class KeyPool:
    def __init__(
        self,
        keys: list[Secret],
        clock: Clock = SYSTEM_CLOCK,
        strategy: Strategy = "round_robin",
        *,
        name: str = "",
        rng: random.Random | None = None,
        on_change: Callable[[KeyEvent], None] | None = None,
        on_shared: OnShared | None = None,
    ) -> None:
        if strategy not in ("round_robin", "random"):
            raise ValueError(f"unknown key strategy {strategy!r}; use round_robin or random")
        self.name = name
        self.strategy: Strategy = strategy
        self._keys = [_Key(s, fingerprint=key_fingerprint(s.value)) for s in keys]
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_change = on_change
        self.on_shared = on_shared
        self._cursor = 0
        self._passthrough = KeyLease(-1, None, self)

    @property
    def byok(self) -> bool:
        """Bring-your-own-key mode: no keys, the client's credential passes through."""
        return not self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def acquire(self) -> KeyLease | NoKey:
        """The next healthy key, or why there is none."""
        if not self._keys:
            return self._passthrough
        now = self._clock.monotonic()
        n = len(self._keys)
        if self.strategy == "random":
            healthy = [i for i in range(n) if self._healthy(i, now)]
            if healthy:
                return self._lease(self._rng.choice(healthy))
        else:
            for step in range(n):
                i = (self._cursor + step) % n
                if self._healthy(i, now):
                    self._cursor = i + 1
                    return self._lease(i)
        return self._no_key()

    def peek(self) -> NoKey | None:
        """None if ``acquire()`` would return a key now; else what it would say. No side effect."""
        if not self._keys:
            return None
        now = self._clock.monotonic()
        if any(self._healthy(i, now) for i in range(len(self._keys))):
            return None
        return self._no_key()

    def report(self, lease: KeyLease, outcome: Outcome) -> None:
        """Apply an attempt's ``outcome.key_action`` to the key it used."""
        if lease.pool is not self or lease.secret is None:
            return  # passthrough, or a lease from a pool replaced since
        k = self._keys[lease.index]
        if not outcome.ok:
            k.failures += 1
        action = outcome.key_action
        changed = False
        if action.kind == "disable":
            changed = self.disable(lease.index, action.reason)
        elif action.kind == "cooldown":
            changed = self.cool(lease.index, action.seconds, action.reason)
        if changed and self.on_shared is not None:
            shared: SharedAction = "disable" if action.kind == "disable" else "cool"
            self.on_shared(k.fingerprint, shared, action.seconds if shared == "cool" else 0.0, k.reason)

    def cool(self, index: int, seconds: float, reason: str) -> bool:
        """Rest a key for ``seconds`` (never shortening a longer rest already running).
        True when that changed anything."""
        k = self._keys[index]
        if k.state is KeyState.DISABLED:
            return False
        until = self._clock.monotonic() + seconds
        if k.state is KeyState.COOLING and k.until >= until:
            return False
        k.until = until
        self._set(index, KeyState.COOLING, reason)
        return True

    def disable(self, index: int, reason: str) -> bool:
        changed = self._keys[index].state is not KeyState.DISABLED
        self._set(index, KeyState.DISABLED, reason)
        return changed

    def enable(self, index: int) -> None:
        """Put a key back in service (an operator fixed it)."""
        self._keys[index].until = 0.0
        self._set(index, KeyState.HEALTHY, "enabled")

    def apply_shared(self, fingerprint: str, action: str, seconds: float, reason: str) -> bool:
        """Apply a change another process learned about the key with ``fingerprint`` (a key
        this pool does not hold is ignored: the other process may run another config)."""
        for index, k in enumerate(self._keys):
            if k.fingerprint != fingerprint:
                continue
            if action == "cool":
                return self.cool(index, max(0.0, min(float(seconds), 86400.0)), f"{reason} (another process)")
            if action == "disable":
                return self.disable(index, f"{reason} (another process)")
            if action == "enable":
                self.enable(index)
                return True
        return False

    def usable(self) -> bool:
        """False when every key is disabled (the provider cannot be used until fixed)."""
        return not self._keys or any(k.state is not KeyState.DISABLED for k in self._keys)

    def snapshot(self) -> list[dict[str, object]]:
        """Per key, for /readyz (admin only): index, reference (``env:NAME``), state, reason.
        Nothing derived from the value, not even a masked tail: index and reference already
        identify the key, and a readiness answer ends up in monitoring tools' stores."""
        now = self._clock.monotonic()
        out: list[dict[str, object]] = []
        for i, k in enumerate(self._keys):
            self._healthy(i, now)  # let finished cooldowns expire
            entry: dict[str, object] = {
                "index": i, "source": k.secret.reference,
                "state": k.state.value, "requests": k.requests, "failures": k.failures,
            }
            if k.state is not KeyState.HEALTHY:
                entry["reason"] = k.reason
            if k.state is KeyState.COOLING:
                entry["cooling_seconds"] = round(k.until - now, 1)
            out.append(entry)
        return out

    def _healthy(self, i: int, now: float) -> bool:
        k = self._keys[i]
        if k.state is KeyState.COOLING and k.until <= now:
            self._set(i, KeyState.HEALTHY, "cooldown over")
        return k.state is KeyState.HEALTHY

    def _lease(self, i: int) -> KeyLease:
        k = self._keys[i]
        k.requests += 1
        return KeyLease(i, k.secret, self)

    def _no_key(self) -> NoKey:
        cooling = [k for k in self._keys if k.state is KeyState.COOLING]
        if cooling:
            first = min(cooling, key=lambda k: k.until)
            return NoKey(first.until, f"all {len(self._keys)} keys resting ({first.reason})")
        return NoKey(None, f"all {len(self._keys)} keys disabled ({self._keys[0].reason})")

    def _set(self, i: int, new: KeyState, reason: str) -> None:
        k = self._keys[i]
        old = k.state
        k.state = new
        k.reason = reason.replace(k.secret.value, mask(k.secret.value)) if k.secret.value else reason
        if old is not new and self._on_change is not None:
            self._on_change(KeyEvent(self.name, i, mask(k.secret.value), old, new, k.reason))
