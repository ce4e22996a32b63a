"""Everything the gateway builds from one config, as one object that a reload replaces whole.

A request takes ``rt = gateway.runtime`` once, at its start, and uses only ``rt`` from then
on, so a reload never changes the config under a request: in-flight requests finish on the
runtime they started with, new ones get the new runtime. ``Runtime.active`` counts the
requests holding a runtime (two integer operations per request, no lock: the event loop runs
one request step at a time); a retired runtime's own transports are closed once it reaches
zero, or after ``DRAIN_SECONDS``.

A provider whose settings, keys and the routing settings its key pool and breaker are built
from are unchanged keeps its ``ProviderParts`` (transport and connection pool, key pool,
breaker, discovered models) across a reload; a changed provider starts fresh, so keys
disabled after a 401 come back when their provider is changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import msgspec

from ccgate.config.load import LoadedConfig
from ccgate.config.model import Config, Provider
from ccgate.config.secrets import Secret
from ccgate.login.tokens import Revocations, SessionTokens
from ccgate.routing import Breaker, KeyPool, RetryPolicy, Upstream
from ccgate.routing.clock import Clock
from ccgate.server.access import OpsAccess
from ccgate.server.auth import ClientAuth
from ccgate.server.discovery import ModelCatalog
from ccgate.server.dispatch import Dispatcher
from ccgate.server.metrics import Metrics
from ccgate.server.readiness import Readiness
from ccgate.server.shared_events import breaker_publisher, key_publisher
from ccgate.store import KeyCache
from ccgate.store.cost import Price, PriceBook
from ccgate.upstream.transport import Transport

# How long a retired runtime's streams may run on before its transports are closed anyway.
DRAIN_SECONDS = 600.0

TransportFactory = Callable[[Provider, list[Secret], Mapping[str, str]], Transport]
Sleep = Callable[[float], Awaitable[None]]

# Settings that are read once at start: a reload reports a change to them instead of applying it.
RESTART_ONLY = ("server.host", "server.port", "server.workers", "server.console", "store", "log", "redis")


@dataclass(frozen=True, eq=False)
class ProviderParts:
    """One provider's live state; carried over a reload while ``fingerprint`` is unchanged."""

    fingerprint: bytes
    transport: Transport
    upstream: Upstream
    catalog: ModelCatalog


@dataclass(frozen=True)
class Seams:
    """What a runtime is built with besides the config: the test seams and the shared metrics."""

    env: Mapping[str, str]
    transport: TransportFactory
    clock: Clock
    sleep: Sleep
    metrics: Metrics
    key_cache: KeyCache | None
    # Token ids revoked through /oauth/revoke; shared by every runtime (login/tokens.py).
    revoked: Revocations | None = None
    # Tells the other gateway processes (server/shared_events.py); None: this process only.
    publish: Callable[..., None] | None = None


class Runtime:
    """The config's live objects: providers, dispatcher, auth, readiness, limits."""

    def __init__(self, loaded: LoadedConfig, providers: dict[str, ProviderParts], seams: Seams) -> None:
        self.loaded = loaded
        self.config = config = loaded.config
        self.providers = providers
        self.transports = {name: parts.transport for name, parts in providers.items()}
        self.upstreams = {name: parts.upstream for name, parts in providers.items()}
        self.dispatcher = Dispatcher(
            self.transports, self.upstreams,
            RetryPolicy(**msgspec.structs.asdict(config.routing.retries)),
            # Parsed once: the hot path reads them per request.
            {p.name: p.openai_quirks() for p in config.providers},
            {p.name: p.anthropic_quirks() for p in config.providers},
            config.server.ping_interval,
            clock=seams.clock, sleep=seams.sleep, metrics=seams.metrics,
        )
        login = loaded.login
        self.sessions = (SessionTokens(login.jwt_secret, login.public_url, login.ttl, seams.clock.time)
                         if login is not None else None)
        self.auth = ClientAuth(loaded.secrets.client_tokens, seams.key_cache, sessions=self.sessions,
                               revoked=seams.revoked)
        self.readiness = Readiness(list(self.transports.values()), config.server.ready_window,
                                   self.upstreams)
        self.max_body = config.server.max_body_bytes
        # Over it: 529 overloaded_error (app.Gateway.handle); no limit is no ceiling.
        self.max_requests = config.server.limits.max_concurrent_requests or sys.maxsize
        self.access = OpsAccess(loaded, seams.env)  # /readyz detail and /metrics credentials
        # Prices for usage rows (the usage writer thread reads the runtime's current one).
        self.prices = PriceBook(
            {pattern: Price(p.input, p.output, p.cache_write_5m, p.cache_write_1h, p.cache_read)
             for pattern, p in config.prices.items()},
            {p.name: p.kind for p in config.providers},
        )
        self.active = 0  # requests holding this runtime
        self.drained: asyncio.Event | None = None  # set by retire(); fired when active reaches 0

    def release(self) -> None:
        """One request that held this runtime is done."""
        self.active -= 1
        if self.drained is not None and self.active == 0:
            self.drained.set()

    async def drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait until no request holds this (retired) runtime; False when ``timeout`` came first."""
        self.drained = asyncio.Event()
        if self.active:
            try:
                await asyncio.wait_for(self.drained.wait(), timeout)
            except TimeoutError:
                return False
        return True


def build_runtime(loaded: LoadedConfig, seams: Seams, previous: Runtime | None = None
                  ) -> tuple[Runtime, list[Transport]]:
    """A runtime for ``loaded``, reusing ``previous``'s unchanged providers. Returns it with the
    transports that are new (to be started before the runtime serves)."""
    old = previous.providers if previous is not None else {}
    providers: dict[str, ProviderParts] = {}
    fresh: list[Transport] = []
    for provider in loaded.config.providers:
        keys = loaded.secrets.provider_keys[provider.name]
        fingerprint = provider_fingerprint(provider, keys, loaded.config)
        parts = old.get(provider.name)
        if parts is None or parts.fingerprint != fingerprint:
            parts = _new_parts(provider, keys, fingerprint, loaded.config, seams)
            fresh.append(parts.transport)
        providers[provider.name] = parts
    return Runtime(loaded, providers, seams), fresh


def provider_fingerprint(provider: Provider, keys: list[Secret], config: Config) -> bytes:
    """What a provider's live state is built from: its settings, its keys' values, and the
    routing settings of key pools and breakers. Equal fingerprints: the state carries over."""
    routing = config.routing
    settings = msgspec.json.encode([provider, [k.value for k in keys], routing.breaker, routing.key_strategy])
    return hashlib.sha256(settings).digest()  # no second copy of the keys in memory


def _new_parts(provider: Provider, keys: list[Secret], fingerprint: bytes, config: Config,
               seams: Seams) -> ProviderParts:
    routing, metrics, clock = config.routing, seams.metrics, seams.clock
    transport = seams.transport(provider, keys, seams.env)
    metrics.key_pool_built(provider.name, len(keys))
    transport.on_pool_wait = metrics.pool_waited
    publish = seams.publish
    upstream = Upstream(
        provider.name,
        KeyPool(keys, strategy=routing.key_strategy, name=provider.name,
                on_change=metrics.key_event, clock=clock,
                on_shared=key_publisher(publish, provider.name) if publish is not None else None),
        Breaker(provider.name, **msgspec.structs.asdict(routing.breaker),
                on_change=metrics.breaker_change, clock=clock,
                on_shared=breaker_publisher(publish, provider.name) if publish is not None else None),
    )
    return ProviderParts(fingerprint, transport, upstream, ModelCatalog(transport, upstream, clock=clock))


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The settings in ``RESTART_ONLY`` that differ, as ``server.port``-style names."""
    changed = []
    for name in RESTART_ONLY:
        section, _, field = name.partition(".")
        before, after = getattr(old, section), getattr(new, section)
        if field:
            before, after = getattr(before, field), getattr(after, field)
        if before != after:
            changed.append(name)
    return changed


__all__ = ["DRAIN_SECONDS", "ProviderParts", "Runtime", "Seams", "build_runtime", "restart_only_changes"]
