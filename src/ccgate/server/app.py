"""The gateway as one ASGI application: routing table, per-request bookkeeping, lifespan.

Request flow (docs/architecture.md): route by path -> authenticate (``/v1/*``: config
tokens or issued keys) -> read the bounded body -> validate the few fields we need
(``wire.anthropic``) -> the key's model allowance and rate limit -> pick the route
(``routing.route_model``) -> ``Dispatcher`` runs the attempts (retries, breakers,
fallbacks) and relays passthrough or translated -> usage, access log and metrics. Every
error raised on the way is a ``GatewayError`` and leaves as the Anthropic envelope
through ``Response.error``; nothing else writes an error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import msgspec

from ccgate import __version__
from ccgate.config.load import LoadedConfig
from ccgate.config.model import Provider
from ccgate.config.secrets import Secret
from ccgate.errors import (
    ConfigError,
    GatewayError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    UpstreamError,
    new_request_id,
)
from ccgate.routing import Breaker, KeyPool, NoKey, RateLimiter, RetryPolicy, Upstream
from ccgate.routing.clock import SYSTEM_CLOCK, Clock
from ccgate.routing.route import Target, route_model
from ccgate.server.access_log import AccessLog, AccessRecord, utc_now
from ccgate.server.admin import PREFIX as ADMIN_PREFIX
from ccgate.server.admin import AdminApi, admin_key_from
from ccgate.server.asgi import ClientGone, Receive, Scope, Send, read_body
from ccgate.server.auth import CCGATE_KEY_HEADER, Client, ClientAuth
from ccgate.server.dispatch import Dispatcher
from ccgate.server.exchange import Exchange, watch_disconnect
from ccgate.server.forward import outgoing_headers, relay_passthrough
from ccgate.server.metrics import Metrics
from ccgate.server.readiness import Readiness
from ccgate.server.response import Response
from ccgate.store import (
    KeyCache,
    Store,
    StoreError,
    UsageRecorder,
    UsageRow,
    open_store,
    resolve_db_path,
    session_id_from_headers,
)
from ccgate.translate import estimate_input_tokens
from ccgate.upstream.transport import Transport, UpstreamTransport
from ccgate.wire.anthropic import decode_count_tokens, decode_messages, model_list

log = logging.getLogger("ccgate")
_json = msgspec.json.Encoder()
_GLOB = frozenset("*?[")
# Polled by load balancers and Prometheus every few seconds: counted in metrics, not logged.
_QUIET_ROUTES = frozenset({"healthz", "readyz", "metrics"})


class Context:
    """Per-request facts gathered along the way, for the access log."""

    __slots__ = ("attempts", "bytes_in", "client", "error", "key", "model", "request_id", "status",
                 "stream", "upstream")

    def __init__(self) -> None:
        self.request_id = new_request_id()
        self.client: str | None = None
        self.key: Client | None = None
        self.attempts: str | None = None
        self.model: str | None = None
        self.upstream: str | None = None
        self.stream: bool | None = None
        self.bytes_in = 0
        self.error: str | None = None
        self.status = 0  # set when no response was sent (499: the client went away first)


# A handler answers through ``Response``, which records the status and bytes sent.
Handler = Callable[[Scope, Receive, Response, Context], Awaitable[None]]
TransportFactory = Callable[[Provider, list[Secret], Mapping[str, str]], Transport]


class Gateway:
    def __init__(
        self, loaded: LoadedConfig, env: Mapping[str, str], *, store: Store | None = None,
        transport: TransportFactory = UpstreamTransport, clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``transport``, ``clock`` and ``sleep`` are seams for in-process tests
        (``upstream.mock.ScriptedTransport``, ``routing.ManualClock``)."""
        self.loaded = loaded
        self.config = loaded.config
        self.store = store if store is not None else _open_store(loaded, env)
        self.key_cache = KeyCache(self.store) if self.store is not None else None
        if self.key_cache is not None:
            self.key_cache.reload()  # a broken store fails the start, not the first request
        self.auth = ClientAuth(loaded.secrets.client_tokens, self.key_cache)
        self.recorder = (UsageRecorder(self.store)
                         if self.store is not None and self.config.store.record_usage else None)
        self.admin = (AdminApi(self.store, self.key_cache,
                               admin_key_from(loaded.secrets.admin_key, env))
                      if self.store is not None else None)
        self.limiter = RateLimiter(clock)
        self.transports = {
            p.name: transport(p, loaded.secrets.provider_keys[p.name], env)
            for p in self.config.providers
        }
        self.metrics = Metrics()
        routing = self.config.routing
        self.upstreams = {
            p.name: Upstream(
                p.name,
                KeyPool(loaded.secrets.provider_keys[p.name], strategy=routing.key_strategy,
                        name=p.name, on_change=self.metrics.key_event, clock=clock),
                Breaker(p.name, **msgspec.structs.asdict(routing.breaker),
                        on_change=self.metrics.breaker_change, clock=clock),
            )
            for p in self.config.providers
        }
        self.dispatcher = Dispatcher(
            self.transports, self.upstreams,
            RetryPolicy(**msgspec.structs.asdict(routing.retries)),
            # Parsed once: the hot path reads them per request.
            {p.name: p.openai_quirks() for p in self.config.providers},
            {p.name: p.anthropic_quirks() for p in self.config.providers},
            self.config.server.ping_interval,
            clock=clock, sleep=sleep,
        )
        self.access_log = AccessLog(self.config.log.access, self.config.log.file)
        self.readiness = Readiness(list(self.transports.values()), self.config.server.ready_window,
                                   self.upstreams)
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
                if self.recorder is not None:
                    await self.recorder.aclose()  # committed before we say we are done
                self.access_log.flush()
                if self.store is not None:
                    self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        ctx = Context()
        response = Response(send)
        route = self.routes.get((method, path))
        label = route[0] if route else _unrouted_label(path)
        status = 0
        try:
            if route is None:
                await self.unrouted(scope, receive, response, ctx)
            else:
                _, handler, needs_auth = route
                if needs_auth and self.auth.enabled:
                    ctx.key = self.authenticate(scope)
                    ctx.client = ctx.key.name
                await handler(scope, receive, response, ctx)
        except GatewayError as err:
            await response.error(err, ctx.request_id)
            ctx.error = err.message
            if isinstance(err, UpstreamError):
                self.metrics.upstream_errors.labels(ctx.upstream or "-", err.hop).inc()
        except ClientGone:
            status, ctx.error = 499, "client disconnected"
        except Exception:
            log.exception("internal error on %s %s (request %s)", method, path, ctx.request_id)
            internal = InternalError(f"internal gateway error (request {ctx.request_id})")
            with contextlib.suppress(Exception):
                await response.error(internal, ctx.request_id)
            status, ctx.error = 500, "internal error"
        status = status or response.status or ctx.status
        self._observe(method, path, label, status, response.bytes_out, time.perf_counter() - started, ctx)

    def _observe(self, method: str, path: str, label: str, status: int, bytes_out: int, elapsed: float,
                 ctx: Context) -> None:
        """Metrics and the access log line for one finished request."""
        self.metrics.request_done(label, status, ctx.upstream or "-", elapsed, bytes_out)
        if self.access_log.enabled and label not in _QUIET_ROUTES:
            self.access_log.write(
                AccessRecord(
                    ts=utc_now(), request_id=ctx.request_id, method=method, path=path,
                    status=status, latency_ms=round(elapsed * 1000, 3), bytes_in=ctx.bytes_in,
                    bytes_out=bytes_out, client=ctx.client, model=ctx.model,
                    upstream=ctx.upstream, stream=ctx.stream, attempts=ctx.attempts,
                    error=ctx.error,
                )
            )

    def authenticate(self, scope: Scope) -> Client:
        headers = dict(scope["headers"])  # a C-speed pass; a repeated header: the last one
        return self.auth.authenticate(headers.get(b"x-api-key"), headers.get(b"authorization"),
                                      headers.get(CCGATE_KEY_HEADER))

    async def unrouted(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX) and self.admin is not None:
            await self.admin.dispatch(scope, receive, response, ctx)
            return
        if path.startswith("/api/event_logging/"):
            # Claude Code telemetry: absorbed here, never forwarded.
            await read_body(receive, self.max_body, None)
            await response.whole(204, [])
            return
        if path in self.known_paths:
            allowed = sorted(m for m, p in self.routes if p == path)
            raise MethodNotAllowed(
                f"method {scope['method']} is not allowed on {path}; use {', '.join(allowed)}",
            )
        raise NotFound(f"no such endpoint: {scope['method']} {path}")

    # Handlers ---------------------------------------------------------------------------

    async def _read(self, scope: Scope, receive: Receive, ctx: Context) -> bytes:
        length = dict(scope["headers"]).get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        body = await read_body(receive, self.max_body, declared)
        ctx.bytes_in = len(body)
        return body

    async def messages(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        body = await self._read(scope, receive, ctx)
        head = decode_messages(body)
        ctx.model, ctx.stream = head.model, head.stream
        self._admit(ctx, head.model)
        await self._dispatch(scope, receive, response, ctx, body, head.model)

    async def count_tokens(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        body = await self._read(scope, receive, ctx)
        head = decode_count_tokens(body)
        ctx.model = head.model
        if ctx.key is not None and ctx.key.issued is not None and not ctx.key.issued.allows_model(head.model):
            raise self._model_denied(ctx.key, head.model)
        route = route_model(self.config, head.model)
        if route.primary.provider.translated:
            # No OpenAI equivalent: answered from the local estimate (docs/translation.md).
            ctx.upstream = route.primary.provider.name
            reply = _json.encode({"input_tokens": estimate_input_tokens(msgspec.json.decode(body))})
            await response.json(200, reply)
            return
        await self._dispatch(scope, receive, response, ctx, body, head.model, record=False)

    def _admit(self, ctx: Context, model: str) -> None:
        """An issued key's model allowance and rate limits, checked before any upstream work."""
        client = ctx.key
        if client is None or client.issued is None:
            return
        key = client.issued
        if not key.allows_model(model):
            raise self._model_denied(client, model)
        if key.rpm is None and key.tpm is None:
            return
        admission = self.limiter.admit_sync(key.id, key.rpm, key.tpm)
        if not admission.allowed:
            self.metrics.rate_limited.labels(client.name).inc()
            raise admission.error(client.name)

    @staticmethod
    def _model_denied(client: Client, model: str) -> PermissionDenied:
        allowed = ", ".join(client.issued.models) if client.issued else ""
        return PermissionDenied(f"gateway key {client.name!r} may not use model {model!r} (allowed: {allowed})")

    async def _dispatch(
        self, scope: Scope, receive: Receive, response: Response, ctx: Context, body: bytes, model: str,
        *, record: bool = True,
    ) -> None:
        route = route_model(self.config, model)
        ctx.upstream = route.primary.provider.name
        # With x-ccgate-key the client's Authorization is its own, not ours: dispatch decides per
        # target whether it may go upstream (kind: anthropic only).
        if ctx.key is not None and not ctx.key.own_credential:
            _refuse_client_credentials(route.targets, self.transports)
        usage_wanted = (record and self.recorder is not None) or (
            ctx.key is not None and ctx.key.issued is not None and ctx.key.issued.tpm is not None)
        ex = Exchange(response, count_usage=usage_wanted)
        try:
            await self._exchange(
                receive, ctx, ex,
                self.dispatcher.run(route, model, scope, body, ex, forward_client=ctx.key is None),
            )
        finally:
            ctx.upstream = ex.provider or ctx.upstream
            ctx.attempts = ex.trail or None
            if record:
                self._account(scope, ctx, ex, model)

    def _account(self, scope: Scope, ctx: Context, ex: Exchange, model: str) -> None:
        usage = ex.usage or {}
        tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        if ctx.key is not None and ctx.key.issued is not None and ctx.key.issued.tpm is not None and tokens:
            self.limiter.record_tokens_sync(ctx.key.issued.id, tokens)
        status = ex.response.status
        if self.recorder is None or not status:
            return
        self.recorder.record(UsageRow(
            ts=time.time(), status=status, key_id=ctx.key.key_id if ctx.key else None,
            model=model, provider=ex.provider, session_id=session_id_from_headers(scope["headers"]),
            request_id=ctx.request_id,
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            cache_read_tokens=int(usage.get("cache_read_input_tokens", 0)),
            cache_creation_tokens=int(usage.get("cache_creation_input_tokens", 0)),
        ))

    async def _exchange(self, receive: Receive, ctx: Context, ex: Exchange, work: Awaitable[None]) -> None:
        gauge = self.metrics.open_streams
        streaming = bool(ctx.stream)
        if streaming:
            gauge.inc()
        try:
            await watch_disconnect(receive, ex, work)
        finally:
            if streaming:
                gauge.dec()
        if ex.error:
            ctx.error = ex.error
        ctx.status = ex.status
        if ex.status >= 400:
            self.metrics.upstream_errors.labels(ex.provider or "-", f"http_{ex.status}").inc()

    async def models(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        # Exact ids only: a glob is not a model. Claude Code's picker keeps ids that start with
        # "claude" or "anthropic", so aliases meant for it should be named that way.
        listed = [
            (route.match, route.display_name or route.match, route.context_window, route.max_tokens)
            for route in self.config.models
            if not _GLOB & set(route.match)
        ]
        first = self.config.providers[0]
        if listed or first.translated:
            await response.json(200, _json.encode(model_list(listed)))
            return
        transport = next(iter(self.transports.values()))
        ctx.upstream = transport.name
        query: bytes = scope["query_string"]
        path = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        credentials = self.upstreams[transport.name].pool.acquire()
        headers = outgoing_headers(
            scope, transport, credentials.headers(transport.provider.auth_header)
            if not isinstance(credentials, NoKey) else {},
            forward_client=ctx.key is None,
        )
        ex = Exchange(response, provider=transport.name)

        async def work() -> None:
            await relay_passthrough(await transport.send("GET", path, headers, b""), ex)

        await self._exchange(receive, ctx, ex, work())

    async def hello(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        body = _json.encode({"service": "ccgate", "version": __version__})
        await response.json(200, body, head_only=scope["method"] == "HEAD")

    async def healthz(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        await response.json(200, _json.encode({"status": "ok"}))

    async def readyz(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        ready, detail = await self.readiness.check()
        body = _json.encode({"status": "ready" if ready else "not ready",
                             "config": self.loaded.source, "providers": detail})
        await response.json(200 if ready else 503, body)

    async def render_metrics(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        await response.whole(200, [(b"content-type", b"text/plain; version=0.0.4")], self.metrics.render())


def _unrouted_label(path: str) -> str:
    if path.startswith("/api/event_logging/"):
        return "event_logging"
    return "admin" if path.startswith(ADMIN_PREFIX) else "unknown"


def _refuse_client_credentials(targets: tuple[Target, ...], transports: dict[str, Transport]) -> None:
    """A client that authenticated with a gateway credential never has it forwarded upstream."""
    for target in targets:
        if transports[target.provider.name].byok:
            raise InternalError(
                f"provider {target.provider.name!r} has no api_keys (bring-your-own-key), but clients "
                "authenticate with gateway keys, whose secrets are never forwarded; give it api_keys"
            )


def _open_store(loaded: LoadedConfig, env: Mapping[str, str]) -> Store | None:
    settings = loaded.config.store
    if not settings.enabled:
        return None
    configured = settings.path
    if configured and loaded.path is not None and not Path(configured).expanduser().is_absolute():
        configured = str(loaded.path.parent / configured)  # relative to the config file
    path = resolve_db_path(None, env, configured)
    try:
        return open_store(path)
    except StoreError as exc:
        raise ConfigError(
            f"store: cannot open {path}: {exc} (set store.path or $CCGATE_DB, or store.enabled: false)"
        ) from None


__all__ = ["Gateway"]
