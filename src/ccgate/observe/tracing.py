"""The tracing interface the server calls, and whether tracing is on at all.

Tracing is OpenTelemetry, an optional extra (``pip install 'ccgate[otel]'``), switched on by the
standard variables: ``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``; ``none`` is off) or an
OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), unless
``OTEL_SDK_DISABLED=true``. Off, ``setup`` returns None and the gateway's whole cost is one
``is None`` check per request (and one per upstream attempt): no span object, no import of
opentelemetry (docs/observability.md has the benchmark).

The server holds a ``RequestTrace`` per request and asks it for an ``AttemptTrace`` per
upstream attempt; those are Protocols here so that ``server/`` never imports opentelemetry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ccgate.errors import ConfigError

log = logging.getLogger("ccgate")

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class AttemptTrace(Protocol):
    def inject(self, headers: list[tuple[str, str]]) -> None:
        """Add the W3C trace context (``traceparent``) of this attempt to its request headers."""

    def answered(self, status: int | None, outcome: str, request_id: str | None) -> None:
        """The attempt's status line (or transport failure, ``status`` None) and its outcome."""

    def finish(self, usage: Mapping[str, Any] | None, response_model: str | None,
               stop_reason: str | None, error: str | None) -> None:
        """End the span (after the relay for the attempt that answered)."""


class RequestTrace(Protocol):
    def attempt(self, provider: str, kind: str, base_url: str, model: str, number: int) -> AttemptTrace:
        """A client span for one upstream attempt, child of this request's span."""

    def finish(self, status: int, *, model: str | None, provider: str | None, session: str | None,
               usage: Mapping[str, Any] | None, error: str | None, stream: bool | None) -> None:
        """End the request's span."""


class Tracing(Protocol):
    def request(self, method: str, path: str, route: str, headers: Sequence[tuple[bytes, bytes]]
                ) -> RequestTrace:
        """A server span for one request (its parent: the client's ``traceparent``, if any)."""

    def shutdown(self) -> None:
        """Export what is buffered and stop (blocking: call it off the event loop)."""


def enabled(env: Mapping[str, str]) -> bool:
    """Do the standard ``OTEL_*`` variables ask for traces?"""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return any(env.get(name, "").strip() for name in _ENDPOINTS)


def setup(env: Mapping[str, str]) -> Tracing | None:
    """The tracer the variables ask for, or None (off, or the extra is not installed)."""
    if not enabled(env):
        return None
    try:
        from ccgate.observe import otel
    except ImportError:
        log.warning("OTEL_* variables ask for traces, but OpenTelemetry is not installed: "
                    "pip install 'ccgate[otel]'; tracing stays off")
        return None
    try:
        return otel.from_env(env)
    except ValueError as exc:
        raise ConfigError(f"OpenTelemetry: {exc}") from None


__all__ = ["AttemptTrace", "RequestTrace", "Tracing", "enabled", "setup"]
