"""The OpenTelemetry side of tracing (imported only when the ``OTEL_*`` variables ask for it).

Spans follow the HTTP and GenAI semantic conventions: a SERVER span per request (named
``POST /v1/messages``) and a CLIENT span per upstream attempt (``chat <model>``), its child, with
``gen_ai.*`` attributes (system, request and response model, token usage, finish reasons) and the
Claude Code session id as ``session.id``. The attempt's context goes upstream as ``traceparent``
(the propagators of ``OTEL_PROPAGATORS``, W3C trace context by default); a client's own
``traceparent`` becomes the request span's parent.

Exporters: ``otlp`` (OTLP/HTTP protobuf, the one the extra installs) and ``console``. The
exporter's endpoint comes from the variables given to ``from_env``; headers, timeout, TLS
files, the sampler (``OTEL_TRACES_SAMPLER``), batching (``OTEL_BSP_*``) and resource
attributes (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) are read by the SDK itself
from the process environment, as in any OpenTelemetry program.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from ccgate import __version__

# config kind -> gen_ai.system / gen_ai.provider.name (well-known values of the conventions)
GEN_AI_SYSTEM = {"anthropic": "anthropic", "openai-compatible": "openai"}
_UNBOUNDED_ROUTES = frozenset({"unknown", "admin", "event_logging"})  # path is not a route name
_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
_USAGE_ATTRIBUTES = (
    ("input_tokens", "gen_ai.usage.input_tokens"),
    ("output_tokens", "gen_ai.usage.output_tokens"),
    ("cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
    ("cache_creation_input_tokens", "gen_ai.usage.cache_creation.input_tokens"),
)


def from_env(env: Mapping[str, str]) -> OtelTracing:
    """A tracer exporting where ``OTEL_TRACES_EXPORTER`` (default ``otlp``) says."""
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    exporters: list[SpanExporter] = []
    for name in names or ["otlp"]:
        if name == "otlp":
            exporters.append(_otlp_exporter(env))
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name != "none":
            raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported: use otlp or console")
    attributes: dict[str, Any] = {"service.version": __version__}
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = "ccgate"
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return OtelTracing(provider)


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip()
    if protocol != "http/protobuf":
        raise ValueError(f"OTLP protocol {protocol!r} is not supported: ccgate[otel] exports OTLP/HTTP "
                         "(http/protobuf, port 4318 by default)")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip() or None
    if endpoint is None and (base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()):
        endpoint = base.rstrip("/") + "/v1/traces"  # the spec's rule for the signal path
    return OTLPSpanExporter(endpoint=endpoint)


class OtelTracing:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("ccgate", __version__)

    def request(self, method: str, path: str, route: str, headers: Sequence[tuple[bytes, bytes]]
                ) -> OtelRequest:
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers
                   if k in (b"traceparent", b"tracestate")}
        parent = propagate.extract(carrier) if carrier else None
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": path, "ccgate.route": route}
        name = method
        if route not in _UNBOUNDED_ROUTES:
            attributes["http.route"] = path
            name = f"{method} {path}"
        return OtelRequest(self, self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER,
                                                         attributes=attributes))

    def shutdown(self) -> None:
        self.provider.shutdown()


class OtelRequest:
    __slots__ = ("span", "tracing")

    def __init__(self, tracing: OtelTracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span

    def attempt(self, provider: str, kind: str, base_url: str, model: str, number: int) -> OtelAttempt:
        system = GEN_AI_SYSTEM.get(kind, kind)
        url = urlsplit(base_url)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.system": system, "gen_ai.provider.name": system,
            "gen_ai.request.model": model, "http.request.method": "POST",
            "server.address": url.hostname or "", "ccgate.provider": provider, "ccgate.attempt": number,
        }
        if url.port is not None:
            attributes["server.port"] = url.port
        span = self.tracing.tracer.start_span(f"chat {model}", context=set_span_in_context(self.span),
                                              kind=SpanKind.CLIENT, attributes=attributes)
        return OtelAttempt(span)

    def finish(self, status: int, *, model: str | None, provider: str | None, session: str | None,
               usage: Mapping[str, Any] | None, error: str | None, stream: bool | None) -> None:
        span = self.span
        span.set_attribute("http.response.status_code", status)
        if model is not None:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", model)
        if provider is not None:
            span.set_attribute("ccgate.provider", provider)
        if session is not None:
            span.set_attribute("session.id", session)
        if stream is not None:
            span.set_attribute("ccgate.stream", stream)
        _set_usage(span, usage)
        if status >= 500 or status == 0:  # a server span's error: 5xx (4xx is the client's)
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR, error))
        elif error is not None:
            span.set_attribute("ccgate.error", error)
        span.end()


class OtelAttempt:
    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def inject(self, headers: list[tuple[str, str]]) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=set_span_in_context(self.span))
        # The client's own trace headers are replaced: upstream, the parent is this attempt.
        headers[:] = [(k, v) for k, v in headers if k.lower() not in _TRACE_HEADERS]
        headers.extend(carrier.items())

    def answered(self, status: int | None, outcome: str, request_id: str | None) -> None:
        span = self.span
        span.set_attribute("ccgate.outcome", outcome)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if request_id is not None:
            span.set_attribute("ccgate.upstream.request_id", request_id)
        if status is None or status >= 400:  # a client span's error: no answer, or 4xx/5xx
            span.set_attribute("error.type", str(status) if status is not None else outcome)

    def finish(self, usage: Mapping[str, Any] | None, response_model: str | None,
               stop_reason: str | None, error: str | None) -> None:
        span = self.span
        if response_model is not None:
            span.set_attribute("gen_ai.response.model", response_model)
        if stop_reason is not None:
            span.set_attribute("gen_ai.response.finish_reasons", [stop_reason])
        _set_usage(span, usage)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()


def _set_usage(span: Span, usage: Mapping[str, Any] | None) -> None:
    if usage:
        for field, attribute in _USAGE_ATTRIBUTES:
            value = usage.get(field)
            if isinstance(value, int):
                span.set_attribute(attribute, value)


__all__ = ["OtelAttempt", "OtelRequest", "OtelTracing", "from_env"]
