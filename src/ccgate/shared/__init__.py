"""State shared between gateway processes: several workers on one machine, or replicas.

One process (the default) needs nothing from here: ``routing.RateLimiter``, the key pools,
the breakers and ``store.KeyCache`` hold everything in memory and the hot path stays
synchronous. When more than one process serves the same keys, two kinds of state must be
shared, and a backend provides exactly these two things:

- **One atomic operation**: rate-limit admission (``admit``) and the tokens a finished
  request used (``record_tokens``), counted where every process sees the same numbers, so
  ``rpm 10`` admits exactly 10 requests across all processes, however they race.
- **An event bus** (``publish`` / the ``on_event`` callback given to ``start``): facts one
  process learns that the others should act on at once - an issued key revoked or changed,
  an upstream key cooled or disabled, a breaker opened, money spent against a budget, a
  ``/login`` token revoked. Each process applies them to its own in-memory state, so the
  hot path keeps reading memory, never the network.
- **Short-lived records** (``kv_*``): state a person's next request may bring to another
  process - console sessions, /login device codes, browser sign-in flows, refresh-token
  families, attempt counters. Values are bytes with a time to live; ``kv_take`` reads and
  deletes in one step (one-time codes), ``kv_incr`` counts atomically. Not on the hot path.
  One process keeps them in memory (``shared.memory.MemoryKV``, the same interface).

Backends: ``redis`` (``redis.url``: replicas, shared.redis) and ``hub`` (``serve --workers
N`` without Redis: the supervisor process holds the counters and relays events between its
workers over a local connection, shared.hub). Both use the same windowing as
``routing.RateLimiter`` so the ``anthropic-ratelimit-*`` headers mean the same thing.

Failure: a backend that cannot answer raises ``SharedUnavailable``; the caller applies the
configured policy for that feature (fail open or closed), counts it in a metric and never
answers 500. ``publish`` never raises: an event that cannot be sent is counted and dropped
(the store's ``keys_version`` poll is the slower path that still converges).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ccgate.config.model import Config, ResolvedSecrets
from ccgate.errors import ConfigError
from ccgate.routing.ratelimit import Admission

EventKind = Literal[
    "keys_changed",  # an issued key was created, changed, rotated or revoked: re-read keys
    "upstream_key",  # {"provider", "key": fingerprint, "action": cool/disable/enable, "seconds", "reason"}
    "breaker",  # {"target": provider name, "state": "open"|"closed", "seconds"}
    "spend",  # {"key_id", "usd", "ts"}: a usage row's cost, for the other processes' budgets
    "token_revoked",  # {"jti", "exp"}: a /login session token revoked (claude auth logout)
    "config_reload",  # {}: one process reloaded its config through the admin API: reload too
]


@dataclass(frozen=True, slots=True)
class SharedEvent:
    kind: EventKind
    data: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable
    origin: str = ""  # the publishing process's id; a process ignores its own events


@dataclass(slots=True)
class EventStats:
    """What a backend counts (``ccgate_shared_events_total``): events sent, received from other
    processes, dropped (queue full or backend down), and token counts dropped likewise."""

    published: int = 0
    received: int = 0
    dropped: int = 0
    tokens_dropped: int = 0


class SharedUnavailable(Exception):
    """The shared backend did not answer in time (or is down); the caller applies its policy."""


class SharedState(Protocol):
    """What a backend provides. Every method has its own timeout; none waits unbounded."""

    kind: str  # "redis" | "hub": in metrics, /readyz and logs
    process_id: str  # this process's id, set as ``origin`` on what it publishes

    async def start(self, on_event: Callable[[SharedEvent], None]) -> None:
        """Connect and subscribe; ``on_event`` is called on the event loop for each event
        published by another process."""

    async def close(self) -> None: ...

    async def admit(self, key_id: str, rpm: int | None, tpm: int | None) -> Admission:
        """Check and count one request against the key's limits, atomically across every
        process. Raises ``SharedUnavailable``."""

    def record_tokens(self, key_id: str, tokens: int) -> None:
        """Add a finished request's tokens to the key's window (fire and forget)."""

    def publish(self, event: SharedEvent) -> None:
        """Send an event to the other processes (fire and forget; never raises)."""

    def healthy(self) -> bool:
        """Whether the last operation reached the backend (for /readyz and metrics)."""

    # Short-lived records; every one raises ``SharedUnavailable`` when the backend is down.

    async def kv_put(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (replacing what was there)."""

    async def kv_get(self, key: str) -> bytes | None: ...

    async def kv_take(self, key: str) -> bytes | None:
        """Read and delete in one atomic step: of two processes taking a one-time code, one
        gets it."""

    async def kv_delete(self, key: str) -> None: ...

    async def kv_incr(self, key: str, amount: int, ttl: float) -> int:
        """Add ``amount`` and return the new value; the first increment starts the ``ttl``."""


class KV(Protocol):
    """Only the short-lived records: what the login and console state needs. Every
    ``SharedState`` is one; ``shared.memory.MemoryKV`` is the one-process implementation."""

    async def kv_put(self, key: str, value: bytes, ttl: float) -> None: ...
    async def kv_get(self, key: str) -> bytes | None: ...
    async def kv_take(self, key: str) -> bytes | None: ...
    async def kv_delete(self, key: str) -> None: ...
    async def kv_incr(self, key: str, amount: int, ttl: float) -> int: ...


def make_shared(config: Config, secrets: ResolvedSecrets, process_id: str) -> SharedState | None:
    """The backend ``ccgate serve`` runs with: Redis when ``redis.url`` is set, else None (this
    process only). ``--workers N`` without Redis adds the hub here; Redis takes precedence.
    Raises ``ConfigError`` when Redis is configured but its client library is missing."""
    if config.redis is None or secrets.redis_url is None:
        return None
    try:
        from ccgate.shared.redis import RedisOptions, RedisShared
    except ImportError:
        raise ConfigError("redis: the Redis client is not installed; pip install 'ccgate[redis]'") from None
    settings = config.redis
    tls = settings.tls
    ssl: dict[str, Any] = {}
    if secrets.redis_url.value.lower().startswith("rediss://"):
        ssl = {"ssl_cert_reqs": "required" if tls.verify else "none", "ssl_check_hostname": tls.verify}
        if tls.ca_file is not None:
            ssl["ssl_ca_certs"] = str(Path(tls.ca_file).expanduser())
        if tls.client_cert is not None:
            ssl["ssl_certfile"] = str(Path(tls.client_cert).expanduser())
        if tls.client_key is not None:
            ssl["ssl_keyfile"] = str(Path(tls.client_key).expanduser())
    options = RedisOptions(
        secrets.redis_url.value,
        secrets.redis_password.value if secrets.redis_password is not None else None,
        settings.timeout, settings.prefix, ssl)
    return RedisShared(options, process_id)
