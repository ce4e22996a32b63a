"""The gateway as one ASGI application: routing table, per-request bookkeeping, lifespan.

Request flow (docs/architecture.md): route by path -> authenticate (``/v1/*``) -> read the
bounded body -> validate the few fields we need (``wire.anthropic``) -> pick the provider
(``config.route_model``) -> ``forward`` relays to the provider's transport -> access log
and metrics. Every error raised on the way is a ``GatewayError`` and leaves as the
Anthropic envelope through ``send_error``; nothing else writes an error body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec

from ccgate import __version__
from ccgate.config.load import LoadedConfig, route_model
from ccgate.errors import (
    GatewayError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    UpstreamError,
    new_request_id,
)
from ccgate.server.access_log import AccessLog, AccessRecord, utc_now
from ccgate.server.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    send_error,
    send_json,
    send_response,
)
from ccgate.server.auth import ClientAuth
from ccgate.server.forward import forward
from ccgate.server.metrics import Metrics
from ccgate.server.readiness import Readiness
from ccgate.upstream.transport import UpstreamTransport
from ccgate.wire.anthropic import decode_count_tokens, decode_messages, model_list

log = logging.getLogger("ccgate")
_json = msgspec.json.Encoder()
_GLOB = frozenset("*?[")
# Polled by load balancers and Prometheus every few seconds: counted in metrics, not logged.
_QUIET_ROUTES = frozenset({"healthz", "readyz", "metrics"})


class Context:
    """Per-request facts gathered along the way, for the access log."""

    __slots__ = ("bytes_in", "client", "error", "model", "request_id", "stream", "upstream")

    def __init__(self) -> None:
        self.request_id = new_request_id()
        self.client: str | None = None
        self.model: str | None = None
        self.upstream: str | None = None
        self.stream: bool | None = None
        self.bytes_in = 0
        self.error: str | None = None


Handler = Callable[[Scope, Receive, Send, Context], Awaitable[tuple[int, int]]]


class Gateway:
    def __init__(self, loaded: LoadedConfig, env: Mapping[str, str]) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.auth = ClientAuth(loaded.secrets.client_tokens)
        self.transports = {
            p.name: UpstreamTransport(p, loaded.secrets.provider_keys[p.name], env)
            for p in self.config.providers
        }
        self.metrics = Metrics()
        self.access_log = AccessLog(self.config.log.access, self.config.log.file)
        self.readiness = Readiness(list(self.transports.values()), self.config.server.ready_window)
        self.max_body = self.config.server.max_body_bytes
        # (method, path) -> (route label, handler, needs client auth)
        self.routes: dict[tuple[str, str], tuple[str, Handler, bool]] = {
            ("POST", "/v1/messages"): ("messages", self.messages, True),
            ("POST", "/v1/messages/count_tokens"): ("count_tokens", self.count_tokens, True),
            ("GET", "/v1/models"): ("models", self.models, True),
            ("GET", "/"): ("hello", self.hello, False),
            ("HEAD", "/"): ("hello", self.hello, False),
            ("GET", "/api/hello"): ("hello", self.hello, False),
            ("HEAD", "/api/hello"): ("hello", self.hello, False),
            ("GET", "/healthz"): ("healthz", self.healthz, False),
            ("GET", "/readyz"): ("readyz", self.readyz, False),
            ("GET", "/metrics"): ("metrics", self.render_metrics, False),
        }
        self.known_paths = {path for _, path in self.routes}

    # ASGI entry point -------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for transport in self.transports.values():
                    await transport.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for transport in self.transports.values():
                    await transport.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        ctx = Context()
        route = self.routes.get((method, path))
        label = route[0] if route else ("event_logging" if path.startswith("/api/event_logging/")
                                        else "unknown")
        status, bytes_out = 0, 0
        try:
            if route is None:
                status, bytes_out = await self.unrouted(scope, receive, send, ctx)
            else:
                _, handler, needs_auth = route
                if needs_auth and self.auth.enabled:
                    ctx.client = self.authenticate(scope)
                status, bytes_out = await handler(scope, receive, send, ctx)
        except GatewayError as err:
            status, bytes_out = err.status, await send_error(send, err, ctx.request_id)
            ctx.error = err.message
            if isinstance(err, UpstreamError):
                self.metrics.upstream_errors.labels(ctx.upstream or "-", err.hop).inc()
        except ClientGone:
            status, ctx.error = 499, "client disconnected"
        except Exception:
            log.exception("internal error on %s %s (request %s)", method, path, ctx.request_id)
            internal = InternalError(f"internal gateway error (request {ctx.request_id})")
            try:
                status, bytes_out = 500, await send_error(send, internal, ctx.request_id)
            except Exception:
                status = 500
            ctx.error = "internal error"
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(label, str(status), ctx.upstream or "-").inc()
        self.metrics.latency.labels(label).observe(elapsed)
        self.metrics.bytes_out.labels(label).inc(bytes_out)
        if self.access_log.enabled and label not in _QUIET_ROUTES:
            self.access_log.write(
                AccessRecord(
                    ts=utc_now(), request_id=ctx.request_id, method=method, path=path,
                    status=status, latency_ms=round(elapsed * 1000, 3), bytes_in=ctx.bytes_in,
                    bytes_out=bytes_out, client=ctx.client, model=ctx.model,
                    upstream=ctx.upstream, stream=ctx.stream, error=ctx.error,
                )
            )

    def authenticate(self, scope: Scope) -> str:
        api_key = authorization = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value
            elif name == b"authorization":
                authorization = value
        return self.auth.authenticate(api_key, authorization)

    async def unrouted(self, scope: Scope, receive: Receive, send: Send, ctx: Context) -> tuple[int, int]:
        path: str = scope["path"]
        if path.startswith("/api/event_logging/"):
            # Claude Code telemetry: absorbed here, never forwarded.
            await read_body(receive, self.max_body, None)
            await send_response(send, 204, [])
            return 204, 0
        if path in self.known_paths:
            allowed = sorted(m for m, p in self.routes if p == path)
            raise MethodNotAllowed(
                f"method {scope['method']} is not allowed on {path}; use {', '.join(allowed)}",
            )
        raise NotFound(f"no such endpoint: {scope['method']} {path}")

    # Handlers ---------------------------------------------------------------------------

    async def _read(self, scope: Scope, receive: Receive, ctx: Context) -> bytes:
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
        body = await read_body(receive, self.max_body, declared)
        ctx.bytes_in = len(body)
        return body

    async def messages(self, scope: Scope, receive: Receive, send: Send, ctx: Context) -> tuple[int, int]:
        body = await self._read(scope, receive, ctx)
        head = decode_messages(body)
        ctx.model, ctx.stream = head.model, head.stream
        return await self._forward_for_model(scope, receive, send, ctx, body, head.model)

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send, ctx: Context) -> tuple[int, int]:
        body = await self._read(scope, receive, ctx)
        head = decode_count_tokens(body)
        ctx.model = head.model
        return await self._forward_for_model(scope, receive, send, ctx, body, head.model)

    async def _forward_for_model(
        self, scope: Scope, receive: Receive, send: Send, ctx: Context, body: bytes, model: str
    ) -> tuple[int, int]:
        provider, upstream_model = route_model(self.config, model)
        if upstream_model != model:
            # A configured alias: the one case where the body is re-encoded.
            data = msgspec.json.decode(body)
            data["model"] = upstream_model
            body = _json.encode(data)
        transport = self.transports[provider.name]
        ctx.upstream = provider.name
        return await self._relay(transport, scope, receive, send, ctx, body)

    async def _relay(
        self, transport: UpstreamTransport, scope: Scope, receive: Receive, send: Send,
        ctx: Context, body: bytes,
    ) -> tuple[int, int]:
        query: bytes = scope["query_string"]
        target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        gauge = self.metrics.open_streams
        streaming = bool(ctx.stream)
        if streaming:
            gauge.inc()
        try:
            ex = await forward(transport, scope["method"], target, scope, body, receive, send)
        finally:
            if streaming:
                gauge.dec()
        if ex.error:
            ctx.error = ex.error
        if ex.status >= 400:
            self.metrics.upstream_errors.labels(transport.name, f"http_{ex.status}").inc()
        return (499 if ex.client_gone and not ex.status else ex.status), ex.bytes_out

    async def models(self, scope: Scope, receive: Receive, send: Send, ctx: Context) -> tuple[int, int]:
        listed = [
            (route.match, route.display_name or route.match)
            for route in self.config.models
            if not _GLOB & set(route.match)
        ]
        if listed:
            body = _json.encode(model_list(listed))
            await send_json(send, 200, body)
            return 200, len(body)
        transport = next(iter(self.transports.values()))
        ctx.upstream = transport.name
        return await self._relay(transport, scope, receive, send, ctx, b"")

    async def hello(self, scope: Scope, receive: Receive, send: Send, ctx: Context) -> tuple[int, int]:
        body = _json.encode({"service": "ccgate", "version": __version__})
        await send_json(send, 200, body, head_only=scope["method"] == "HEAD")
        return 200, len(body)

    async def healthz(self, scope: Scope, receive: Receive, send: Send, ctx: Context) -> tuple[int, int]:
        body = _json.encode({"status": "ok"})
        await send_json(send, 200, body)
        return 200, len(body)

    async def readyz(self, scope: Scope, receive: Receive, send: Send, ctx: Context) -> tuple[int, int]:
        ready, detail = await self.readiness.check()
        body = _json.encode({"status": "ready" if ready else "not ready",
                             "config": self.loaded.source, "providers": detail})
        status = 200 if ready else 503
        await send_json(send, status, body)
        return status, len(body)

    async def render_metrics(self, scope: Scope, receive: Receive, send: Send, ctx: Context) -> tuple[int, int]:
        body = self.metrics.render()
        await send_response(send, 200, [(b"content-type", b"text/plain; version=0.0.4")], body)
        return 200, len(body)


__all__ = ["Gateway"]
