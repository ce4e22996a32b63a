"""Prometheus metrics, on a registry of our own (no process-global state between tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
