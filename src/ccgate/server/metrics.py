"""Prometheus metrics, on a registry of our own (no process-global state between tests).

Names follow Prometheus conventions (base units, ``_total`` counters); docs/observability.md maps
each to the OpenTelemetry GenAI semantic conventions. Label values are bounded: routes, statuses,
providers and outcomes are few by construction, models are capped at ``MAX_MODELS`` (then
``other``), and client (key) names appear only with ``server.metrics.key_names: true``.

Per-request cost: the families every request adds to (requests, duration, bytes, tokens,
attempts, upstream latency, time to first token) are loop_metrics.py's: plain numbers on the
event loop, no lock, turned into metric families at scrape time; a request's children are
cached in plain dicts here, keyed by the label values. The rest (refusals, errors, breaker and
key state, pool waits) are prometheus_client's own: they change on rarer paths.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ccgate import __version__
from ccgate.routing import BreakerState, KeyEvent
from ccgate.routing.keypool import KeyState
from ccgate.server.loop_metrics import CounterChild, HistogramChild, LoopCollector, LoopCounter, LoopHistogram
from ccgate.store import Store, UsageRecorder

log = logging.getLogger("ccgate")
_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
_KEY_VALUE = {KeyState.HEALTHY: 0, KeyState.COOLING: 1, KeyState.DISABLED: 2}

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Time to first token and to the upstream's status line: seconds, rarely past a minute.
FIRST_BYTE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
# Distinct model label values; a client can name any model, so past this many it is "other".
MAX_MODELS = 100
OTHER = "other"
# Usage field (Anthropic's name) -> the `kind` label (OpenTelemetry's gen_ai.token.type wording).
TOKEN_KINDS = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_read_input_tokens", "cache_read"),
    ("cache_creation_input_tokens", "cache_write"),
)
UNNAMED = "-"  # the client label when key names are not exported


class Metrics:
    def __init__(self, *, key_names: bool = False) -> None:
        self.key_names = key_names
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)  # process_* (Linux: /proc; elsewhere it exports nothing)
        PlatformCollector(registry=r)  # python_info
        self.build_info = Gauge("ccgate_build_info", "Always 1; the labels say which ccgate runs.",
                                ["version", "python"], registry=r)
        self.build_info.labels(__version__, platform.python_version()).set(1)
        # Every request adds to these three: lock-free families (loop_metrics.py) with their
        # ``_created`` samples, rendered as prometheus_client's Counter and Histogram render.
        self.requests = LoopCounter(
            "ccgate_requests", "Requests answered, by route, status and upstream provider.",
            ["route", "status", "provider"], created=True,
        )
        self.latency = LoopHistogram(
            "ccgate_request_duration_seconds",
            "Time from request to the end of the response, by route.",
            ["route"], LATENCY_BUCKETS, created=True,
        )
        r.register(LoopCollector([self.requests, self.latency]))  # where the Counter and Histogram were
        self.upstream_errors = Counter(
            "ccgate_upstream_errors", "Failures reaching a provider, by provider and failed hop.",
            ["provider", "hop"], registry=r,
        )
        self.shared_down = Counter(
            "ccgate_shared_unavailable",
            "Operations the shared state (Redis, the workers' hub) did not answer, by feature.",
            ["feature"], registry=r,
        )
        self.open_streams = Gauge("ccgate_open_streams", "Streaming responses being relayed now.", registry=r)
        self.bytes_out = LoopCounter(
            "ccgate_response_bytes", "Response body bytes sent to clients, by route.", ["route"], created=True,
        )
        r.register(LoopCollector([self.bytes_out]))
        # The families a request adds to on its way: lock-free, on the event loop (loop_metrics.py).
        self.tokens = LoopCounter(
            "ccgate_tokens",
            "Tokens used, by kind (input, output, cache_read, cache_write), model and provider.",
            ["kind", "model", "provider"])
        self.client_tokens = LoopCounter(
            "ccgate_client_tokens",
            "Tokens used per client (key name), by kind; only with server.metrics.key_names.",
            ["client", "kind"]) if key_names else None
        self.ttft = LoopHistogram(
            "ccgate_time_to_first_token_seconds",
            "Streamed answers: time from the request to the first byte of the answer's body, by provider.",
            ["provider"], FIRST_BYTE_BUCKETS)
        self.attempts = LoopCounter(
            "ccgate_upstream_attempts",
            "Upstream attempts (retries, other keys and fallbacks each count), by provider and outcome.",
            ["provider", "outcome"])
        self.upstream_latency = LoopHistogram(
            "ccgate_upstream_latency_seconds",
            "Upstream attempts: time from sending to the provider's status line (or the failure).",
            ["provider"], FIRST_BYTE_BUCKETS)
        r.register(LoopCollector([f for f in (self.tokens, self.client_tokens, self.ttft, self.attempts,
                                             self.upstream_latency) if f is not None]))
        self.breaker_state = Gauge(
            "ccgate_breaker_state", "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
            ["provider"], registry=r,
        )
        self.key_state = Gauge(
            "ccgate_upstream_key_state",
            "Upstream key per provider and index in api_keys: 0 healthy, 1 cooling (429), "
            "2 disabled (401/403).",
            ["provider", "key"], registry=r,
        )
        self._pool_sizes: dict[str, int] = {}
        self.key_state_changes = Counter(
            "ccgate_upstream_key_state_changes",
            "Upstream keys changing state (cooling after 429, disabled after 401/403, back).",
            ["provider", "key", "state"], registry=r,
        )
        self.rate_limited = Counter(
            "ccgate_rate_limited",
            "Requests refused by an issued key's rpm/tpm limit (client: the key name with "
            "server.metrics.key_names, else '-').",
            ["client"], registry=r,
        )
        self.budget_refused = Counter(
            "ccgate_budget_refused",
            "Requests refused because an issued key's daily or monthly budget is spent, by window "
            "(client: the key name with server.metrics.key_names, else '-').",
            ["client", "window"], registry=r,
        )

        # Client connections (server/protocol.py) and admission (app.py): what was refused, why.
        self.connections = Gauge(
            "ccgate_client_connections", "Client connections open now.", registry=r,
        )
        self.in_flight = Gauge(
            "ccgate_requests_in_flight", "Requests being answered now.", registry=r,
        )
        self.client_refused = Counter(
            "ccgate_client_refused",
            "Client connections or requests refused by server.limits, by reason: header_bytes, "
            "header_count (431), header_timeout, body_timeout (408), connection_limit (503), "
            "overloaded (529).",
            ["reason"], registry=r,
        )
        # Waits for a connection of a provider's pool (pool.max_connections set and all busy).
        self.pool_wait = Histogram(
            "ccgate_upstream_pool_wait_seconds",
            "Time requests waited for a free upstream connection, by provider (waits only).",
            ["provider"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.pool_timeouts = Counter(
            "ccgate_upstream_pool_timeouts",
            "Requests that gave up waiting for an upstream connection (pool.wait_timeout).",
            ["provider"], registry=r,
        )

        # A request's three children, by (route, status, provider): one dict lookup per request
        # (the label sets are few: routes x statuses x providers).
        self._per_request: dict[tuple[str, int, str], tuple[CounterChild, HistogramChild, CounterChild]] = {}
        # (model, provider) -> the four token label tuples (model capped at MAX_MODELS).
        self._token_labels: dict[tuple[str, str], tuple[tuple[str, tuple[str, str, str]], ...]] = {}
        self._models: set[str] = set()

    def request_done(self, route: str, status: int, provider: str, seconds: float, bytes_out: int) -> None:
        key = (route, status, provider)
        children = self._per_request.get(key)
        if children is None:
            children = (self.requests.child((route, str(status), provider)), self.latency.child((route,)),
                        self.bytes_out.child((route,)))
            self._per_request[key] = children
        count, latency, sent = children
        count.value += 1
        self.latency.observe(latency, seconds)
        sent.value += bytes_out

    def attempt_done(self, provider: str, outcome: str, seconds: float) -> None:
        """One upstream attempt's outcome (``routing.OutcomeKind``) and time to its status line."""
        self.attempts.add((provider, outcome))
        latency = self.upstream_latency
        latency.observe(latency.child((provider,)), seconds)

    def first_token(self, provider: str, seconds: float) -> None:
        self.ttft.observe(self.ttft.child((provider,)), seconds)

    def tokens_used(self, model: str, provider: str, usage: Mapping[str, Any], client: str | None) -> None:
        """Add one answer's usage (Anthropic's field names) to the token counters."""
        labels = self._token_labels.get((model, provider)) or self._labels_for(model, provider)
        add = self.tokens.add
        for field, key in labels:
            value = usage.get(field)
            if isinstance(value, int) and value > 0:  # a provider's odd number never raises here
                add(key, value)
        if self.client_tokens is not None:
            name = client or UNNAMED
            for field, kind in TOKEN_KINDS:
                value = usage.get(field)
                if isinstance(value, int) and value > 0:
                    self.client_tokens.add((name, kind), value)

    def _labels_for(self, model: str, provider: str) -> tuple[tuple[str, tuple[str, str, str]], ...]:
        if model not in self._models and len(self._models) >= MAX_MODELS:
            return tuple((field, (kind, OTHER, provider)) for field, kind in TOKEN_KINDS)  # not cached
        self._models.add(model)
        labels = tuple((field, (kind, model, provider)) for field, kind in TOKEN_KINDS)
        self._token_labels[(model, provider)] = labels
        return labels

    def watch_shared(self, backend: Any) -> None:
        """Export the shared backend's health and event counts (read at scrape time)."""
        up = Gauge("ccgate_shared_up", "1 while the shared state (Redis, the workers' hub) answers.",
                   ["backend"], registry=self.registry)
        up.labels(backend.kind).set_function(lambda: 1.0 if backend.healthy() else 0.0)
        stats = getattr(backend, "stats", None)
        if stats is not None:
            self.registry.register(_SharedEventsCollector(stats))

    def shared_unavailable(self, feature: str) -> None:
        """The shared state (Redis or the workers' hub) did not answer for ``feature``."""
        self.shared_down.labels(feature).inc()

    def rate_limit_refused(self, client: str) -> None:
        """A request refused by an issued key's rate limit."""
        self.rate_limited.labels(client if self.key_names else UNNAMED).inc()

    def budget_refusal(self, client: str, window: str) -> None:
        """A request refused because an issued key's ``daily`` or ``monthly`` budget is spent."""
        self.budget_refused.labels(client if self.key_names else UNNAMED, window).inc()

    def refuse(self, reason: str) -> None:
        """A connection or request refused by server.limits (the reason is the label)."""
        self.client_refused.labels(reason).inc()

    def pool_waited(self, provider: str, seconds: float, timed_out: bool) -> None:
        self.pool_wait.labels(provider).observe(seconds)
        if timed_out:
            self.pool_timeouts.labels(provider).inc()

    def breaker_change(self, provider: str, old: BreakerState, new: BreakerState) -> None:
        self.breaker_state.labels(provider).set(_BREAKER_VALUE[new])
        log.warning("circuit breaker of provider %r: %s -> %s", provider, old.value, new.value)

    def key_pool_built(self, provider: str, keys: int) -> None:
        """A provider's key pool was (re)built: every key healthy, keys no longer there dropped."""
        for index in range(keys, self._pool_sizes.get(provider, 0)):
            self.key_state.remove(provider, str(index))
        for index in range(keys):
            self.key_state.labels(provider, str(index)).set(0)
        self._pool_sizes[provider] = keys

    def key_event(self, event: KeyEvent) -> None:
        # The masked key and the index only: a metric label or log line never holds a secret.
        self.key_state_changes.labels(event.pool, str(event.index), event.new.value).inc()
        if event.index >= 0:
            self.key_state.labels(event.pool, str(event.index)).set(_KEY_VALUE[event.new])
        log.warning("provider %r key #%d (%s): %s -> %s: %s", event.pool, event.index, event.key,
                    event.old.value, event.new.value, event.reason)

    def watch_store(self, recorder: UsageRecorder | None, store: Store | None) -> None:
        """The usage writer's and the store's state, read at scrape time (nothing per request)."""
        self.registry.register(_StoreCollector(recorder, store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    """``ccgate_usage_rows_*`` and ``ccgate_store_up`` from the recorder's plain counters."""

    def __init__(self, recorder: UsageRecorder | None, store: Store | None) -> None:
        self.recorder = recorder
        self.store = store

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        recorder = self.recorder
        if recorder is not None:
            written = CounterMetricFamily("ccgate_usage_rows_written", "Usage rows committed to the store.")
            written.add_metric([], recorder.written)
            dropped = CounterMetricFamily(
                "ccgate_usage_rows_dropped",
                "Usage rows lost, by reason: buffer_full (the store could not keep up or was down too "
                "long), write_error (the store refused the batch), shutdown (still held at exit).",
                labels=["reason"])
            for reason, value in (("buffer_full", recorder.dropped), ("write_error", recorder.failed),
                                  ("shutdown", recorder.dropped_at_close)):
                dropped.add_metric([reason], value)
            buffered = GaugeMetricFamily(
                "ccgate_usage_rows_buffered",
                "Usage rows in memory, not yet committed (held while the store is down).")
            buffered.add_metric([], recorder.buffered)
            yield from (written, dropped, buffered)
        if self.store is not None:
            health = self.store.health()
            up = GaugeMetricFamily(
                "ccgate_store_up", "1 if the key and usage store was reachable at its last use.",
                labels=["backend"])
            down = health.get("reachable") is False or (recorder is not None and recorder.store_down)
            up.add_metric([str(health.get("backend", "unknown"))], 0 if down else 1)
            yield up
class _SharedEventsCollector:
    """``ccgate_shared_events_total{outcome}`` from a backend's ``EventStats`` (plain ints the
    backend bumps on the event loop: nothing to lock, read at scrape time)."""

    def __init__(self, stats: Any) -> None:
        self._stats = stats

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        events = CounterMetricFamily(
            "ccgate_shared_events", "Events between gateway processes: published, received from "
            "others, dropped (queue full or backend down).", labels=["outcome"])
        for outcome in ("published", "received", "dropped"):
            events.add_metric([outcome], getattr(self._stats, outcome))
        yield events
        yield CounterMetricFamily(
            "ccgate_shared_tokens_dropped", "Finished requests' token counts not sent to the shared "
            "state (queue full or backend down).", value=self._stats.tokens_dropped)
