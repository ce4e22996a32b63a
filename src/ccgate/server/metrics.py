"""Prometheus metrics, on a registry of our own (no process-global state between tests)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ccgate.routing import BreakerState, KeyEvent

log = logging.getLogger("ccgate")
_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ccgate_requests", "Requests answered, by route, status and upstream provider.",
            ["route", "status", "provider"], registry=self.registry,
        )
        self.latency = Histogram(
            "ccgate_request_duration_seconds",
            "Time from request to the end of the response, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.upstream_errors = Counter(
            "ccgate_upstream_errors", "Failures reaching a provider, by provider and failed hop.",
            ["provider", "hop"], registry=self.registry,
        )
        self.open_streams = Gauge(
            "ccgate_open_streams", "Streaming responses being relayed now.", registry=self.registry,
        )
        self.bytes_out = Counter(
            "ccgate_response_bytes", "Response body bytes sent to clients, by route.",
            ["route"], registry=self.registry,
        )

        self.breaker_state = Gauge(
            "ccgate_breaker_state", "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
            ["provider"], registry=self.registry,
        )
        self.key_state_changes = Counter(
            "ccgate_upstream_key_state_changes",
            "Upstream keys changing state (cooling after 429, disabled after 401/403, back).",
            ["provider", "key", "state"], registry=self.registry,
        )
        self.rate_limited = Counter(
            "ccgate_rate_limited", "Requests refused by an issued key's rpm/tpm limit, by key name.",
            ["client"], registry=self.registry,
        )
        self.budget_refused = Counter(
            "ccgate_budget_refused", "Requests refused because an issued key's daily or monthly budget "
            "is spent, by key name and window.", ["client", "window"], registry=self.registry,
        )

        # Client connections (server/protocol.py) and admission (app.py): what was refused, why.
        self.connections = Gauge(
            "ccgate_client_connections", "Client connections open now.", registry=self.registry,
        )
        self.in_flight = Gauge(
            "ccgate_requests_in_flight", "Requests being answered now.", registry=self.registry,
        )
        self.refused = Counter(
            "ccgate_client_refused",
            "Client connections or requests refused by server.limits, by reason: header_bytes, "
            "header_count (431), header_timeout, body_timeout (408), connection_limit (503), "
            "overloaded (529).",
            ["reason"], registry=self.registry,
        )
        # Waits for a connection of a provider's pool (pool.max_connections set and all busy).
        self.pool_wait = Histogram(
            "ccgate_upstream_pool_wait_seconds",
            "Time requests waited for a free upstream connection, by provider (waits only).",
            ["provider"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.pool_timeouts = Counter(
            "ccgate_upstream_pool_timeouts",
            "Requests that gave up waiting for an upstream connection (pool.wait_timeout).",
            ["provider"], registry=self.registry,
        )

        # Label lookups take a lock and build a key each time; a request's three are cached
        # here (the label sets are few: routes x statuses x providers).
        self._per_request: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}

    def request_done(self, route: str, status: int, provider: str, seconds: float, bytes_out: int) -> None:
        key = (route, str(status), provider)
        children = self._per_request.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.latency.labels(route),
                        self.bytes_out.labels(route))
            self._per_request[key] = children
        count, latency, sent = children
        count.inc()
        latency.observe(seconds)
        sent.inc(bytes_out)

    def refuse(self, reason: str) -> None:
        self.refused.labels(reason).inc()

    def pool_waited(self, provider: str, seconds: float, timed_out: bool) -> None:
        self.pool_wait.labels(provider).observe(seconds)
        if timed_out:
            self.pool_timeouts.labels(provider).inc()

    def breaker_change(self, provider: str, old: BreakerState, new: BreakerState) -> None:
        self.breaker_state.labels(provider).set(_BREAKER_VALUE[new])
        log.warning("circuit breaker of provider %r: %s -> %s", provider, old.value, new.value)

    def key_event(self, event: KeyEvent) -> None:
        # The masked key and the index only: a metric label or log line never holds a secret.
        self.key_state_changes.labels(event.pool, str(event.index), event.new.value).inc()
        log.warning("provider %r key #%d (%s): %s -> %s: %s", event.pool, event.index, event.key,
                    event.old.value, event.new.value, event.reason)

    def render(self) -> bytes:
        return generate_latest(self.registry)
