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
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import msgspec
from prometheus_client import Gauge

from ccgate import __version__
from ccgate.config.load import LoadedConfig
from ccgate.errors import (
    BudgetExceeded,
    ConfigError,
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    new_request_id,
)
from ccgate.login.tokens import Revocations
from ccgate.observe.tracing import RequestTrace
from ccgate.observe.tracing import setup as setup_tracing
from ccgate.routing import NoKey, RateLimiter
from ccgate.routing.clock import SYSTEM_CLOCK, Clock
from ccgate.routing.route import model_alias, route_model
from ccgate.server import shared_events
from ccgate.server.access_log import AccessLog, AccessRecord, utc_now
from ccgate.server.admin import PREFIX as ADMIN_PREFIX
from ccgate.server.admin import AdminApi, admin_key_from
from ccgate.server.asgi import ClientGone, Receive, Scope, Send, read_body
from ccgate.server.auth import CCGATE_KEY_HEADER, Client
from ccgate.server.dispatch import brings_own_credential
from ccgate.server.exchange import Exchange, watch_disconnect
from ccgate.server.forward import outgoing_headers, relay_passthrough
from ccgate.server.login import LoginEndpoints
from ccgate.server.metrics import Metrics
from ccgate.server.ops import QUIET_ROUTES, OpsEndpoints
from ccgate.server.reload import Reloader, ReloadOutcome
from ccgate.server.response import Response, client_link
from ccgate.server.runtime import Runtime, Seams, TransportFactory, build_runtime
from ccgate.server.shared_events import SpendRelay
from ccgate.server.shared_link import SharedLink
from ccgate.server.store_location import store_location
from ccgate.shared import KV, SharedState
from ccgate.shared.memory import MemoryKV
from ccgate.store import (
    KeyCache,
    RequestLogPolicy,
    Store,
    StoreError,
    StoreURL,
    UsageRecorder,
    UsageRow,
    open_store,
    session_id_from_headers,
)
from ccgate.store.budget import BudgetTracker
from ccgate.translate import estimate_input_tokens
from ccgate.upstream.choose import transport_for
from ccgate.upstream.transport import Transport
from ccgate.wire.anthropic import (
    ModelRow,
    decode_body,
    decode_count_tokens,
    decode_messages,
    model_info,
    model_list,
    model_page,
)
from ccgate.wire.openai import ListedModel
from ccgate.wire.usage import CACHE_1H

log = logging.getLogger("ccgate")
_json = msgspec.json.Encoder()
_GLOB = frozenset("*?[")
CONSOLE_PREFIX = "/console"
# Claude Code's telemetry batches are a few KiB; absorbed unauthenticated, so held to little.
EVENT_LOG_MAX_BYTES = 1024 * 1024
# Seconds a client is told to wait after a 529 from server.limits.max_concurrent_requests.
OVERLOAD_RETRY_AFTER = "5"
_NO_USAGE: dict[str, Any] = {}  # read only: the usage of an answer without any
MODEL_PREFIX = "/v1/models/"  # GET /v1/models/{model_id}; ids may contain "/" (discovery aliases)


class Context:
    """Per-request facts gathered along the way, for the access log."""

    __slots__ = ("attempts", "bytes_in", "client", "error", "headers", "key", "model", "request_id", "rt",
                 "session", "started", "status", "stream", "trace", "upstream", "upstream_request_id", "usage")

    def __init__(self, rt: Runtime, started: float = 0.0) -> None:
        self.rt = rt  # the config this request runs on from start to end, whatever reloads happen
        self.started = started  # perf_counter() at arrival, for the request log's latency
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
        self.session: str | None = None  # Claude Code's session id (x-claude-code-session-id)
        self.usage: dict[str, Any] | None = None  # the answer's token usage, when read
        self.upstream_request_id: str | None = None
        self.trace: RequestTrace | None = None  # None unless OpenTelemetry tracing is on
        # The request's headers as a dict (a repeated header: its last value), made once for
        # auth, the body's declared length and the dispatch; dropped when the dispatch starts.
        self.headers: dict[bytes, bytes] | None = None

    def header_map(self, scope: Scope) -> dict[bytes, bytes]:
        headers = self.headers
        if headers is None:
            headers = self.headers = dict(scope["headers"])  # a C-speed pass
        return headers


# A handler answers through ``Response``, which records the status and bytes sent.
Handler = Callable[[Scope, Receive, Response, Context], Awaitable[None]]


class Gateway:
    def __init__(
        self, loaded: LoadedConfig, env: Mapping[str, str], *, store: Store | None = None,
        transport: TransportFactory = transport_for, clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, reload_signal: bool = False,
        shared: SharedState | None = None,
    ) -> None:
        """``transport``, ``clock`` and ``sleep`` are seams for in-process tests
        (``upstream.mock.ScriptedTransport``, ``routing.ManualClock``). ``reload_signal``:
        reload the config on SIGHUP (``ccgate serve``; not on Windows). ``shared``: state
        shared with other gateway processes (``ccgate.shared``; None: this process only)."""
        self.env = env
        self.store = store if store is not None else _open_store(loaded, env)
        self.key_cache = KeyCache(self.store) if self.store is not None else None
        if self.key_cache is not None:
            self.key_cache.reload()  # a broken store fails the start, not the first request
            if self.store is not None and self.store.remote:
                self.key_cache.start_refresher()  # no network round trip on the event loop
        # Spend per key for budgets, counted as the usage writer commits priced rows.
        self.budgets = BudgetTracker(clock.time) if self.store is not None else None
        self.spend_relay: SpendRelay | None = None  # set by _link with a shared backend
        self.recorder = _recorder(self.store, loaded, self._committed)
        self.log_refused = self.recorder is not None and loaded.config.store.request_log.enabled
        self.limiter = RateLimiter(clock)
        self.metrics = Metrics(key_names=loaded.config.server.metrics.key_names)
        self.shared = self._link(shared, loaded, clock)
        self.metrics.watch_store(self.recorder, self.store)
        # Short-lived records (console sessions, /login codes, flows, refresh families, attempt
        # counters): the shared backend's when there is one, else this process's memory.
        self.kv: KV = shared if shared is not None else MemoryKV(clock=clock.monotonic)
        # OpenTelemetry when the OTEL_* variables ask for it (observe/tracing.py), else None.
        self.tracing = setup_tracing(env)
        if loaded.login is not None and self.store is None:
            raise ConfigError("login: Claude Code sign-in records each developer as an issued key; "
                              "enable the store (store.enabled: true)")
        revoked = Revocations(clock.time)
        self.seams = Seams(env, transport, clock, sleep, self.metrics, self.key_cache, revoked,
                           self.shared.publish if self.shared is not None else None)
        if self.shared is not None:
            shared_events.wire(self.shared, lambda: self.runtime, revoked, self.budgets)
        # Everything built from the config; a reload replaces it whole (server/reload.py).
        self.runtime: Runtime = build_runtime(loaded, self.seams)[0]
        if self.recorder is not None:
            self.recorder.price = self._priced
        self.reloader = Reloader(self)
        self.reload_signal = reload_signal
        # Where ``ccgate serve`` listens (it sets this; --host can override server.host):
        # /metrics is open by default only on a loopback address.
        self.listen_host = loaded.config.server.host
        # Run at the end of the lifespan startup and at the start of its shutdown (the pidfile).
        self.on_startup: list[Callable[[], None]] = []
        self.on_shutdown: list[Callable[[], None]] = []
        self.admin = (AdminApi(self.store, self.key_cache,
                               admin_key_from(loaded.secrets.admin_key, env), control=self)
                      if self.store is not None else None)
        self.access_log = AccessLog(loaded.config.log.access, loaded.config.log.file)
        # The web console, served under /console when attached (``ccgate.console.attach``, which
        # ``ccgate serve`` calls): console sits above server, so server never imports it.
        self.console: Handler | None = None
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
        }
        # /readyz and /metrics (server/ops.py).
        self.routes.update(OpsEndpoints(self).routes())
        # Claude Code's /login: device flow, browser pages, managed settings, OTLP (server/login.py).
        self.login = LoginEndpoints(self, revoked)
        self.routes.update(self.login.routes())
        self.known_paths = {path for _, path in self.routes}
        # Requests being answered, across reloads (server.limits.max_concurrent_requests).
        self.in_flight = 0
        self.metrics.in_flight.set_function(lambda: self.in_flight)
        # One worker of `serve --workers N` (cli/supervisor.py): its index, in the access log and
        # /readyz, and how a scrape of /metrics gets the other workers' snapshots. None: alone.
        self.worker: int | None = None
        self.metrics_peers: Callable[[], Awaitable[list[bytes]]] | None = None

    # ASGI entry point -------------------------------------------------------------------

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The ASGI 3 entry point. Not itself a coroutine: it hands the server the handler's
        coroutine, one frame fewer for every wake-up of every request (``ccgate serve`` tells
        uvicorn the interface, which it would otherwise guess from ``async def``)."""
        if scope["type"] == "http":
            return self.handle(scope, receive, send)
        if scope["type"] == "lifespan":
            return self.lifespan(receive, send)
        return _nothing()

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for transport in self.runtime.transports.values():
                    await transport.start()
                self._watch_reload_triggers(True)
                await self.seed_budgets()
                if self.shared is not None:
                    if self.spend_relay is not None:
                        self.spend_relay.loop = asyncio.get_running_loop()
                    await self.shared.start()
                for hook in self.on_startup:
                    hook()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    hook()
                self._watch_reload_triggers(False)
                retiring = await self.reloader.close()
                for transport in [*self.runtime.transports.values(), *retiring]:
                    await transport.close()
                await self.login.state.close()
                if self.shared is not None:
                    await self.shared.close()
                if self.recorder is not None:
                    await self.recorder.aclose()  # committed before we say we are done
                self.access_log.flush()
                if self.tracing is not None:
                    await asyncio.to_thread(self.tracing.shutdown)  # exports what is buffered
                if self.key_cache is not None:
                    self.key_cache.stop_refresher()
                if self.store is not None:
                    await asyncio.to_thread(self.store.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _watch_reload_triggers(self, on: bool) -> None:
        """SIGHUP (where the loop supports signal handlers: not on Windows, which reloads through
        the config watch or the admin API) and the config-file watch."""
        if on:
            self.reloader.start_watch()
        if not self.reload_signal or not hasattr(signal, "SIGHUP"):
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            if on:
                loop.add_signal_handler(signal.SIGHUP, self.reloader.spawn, "SIGHUP")
            else:
                loop.remove_signal_handler(signal.SIGHUP)

    async def reload(self, trigger: str = "admin API") -> ReloadOutcome:
        """Reload the config file now (``server.reload``); a bad one is refused, not applied.
        With other gateway processes (workers), they are told to reload too."""
        outcome = await self.reloader.reload(trigger)
        if outcome.reloaded and self.shared is not None:
            self.shared.publish("config_reload", trigger=trigger)
        return outcome

    async def seed_budgets(self) -> None:
        """(Re)start the budget tracker from the store's usage rows, in the usage writer
        thread (at start and after a reload: other processes' spending is picked up then)."""
        if self.budgets is None or self.recorder is None or self.store is None:
            return
        budgets, store = self.budgets, self.store
        try:
            await asyncio.wrap_future(self.recorder.call_in_writer(lambda: budgets.seed(store)))
        except StoreError as exc:  # serve on with what this process counts from now on
            log.error("budgets: cannot read spending from the store: %s", exc)

    def _committed(self, rows: Sequence[UsageRow]) -> None:
        """Usage writer thread: a batch is committed; count it for budgets, here and elsewhere."""
        if self.budgets is not None:
            self.budgets.add(rows)
        if self.spend_relay is not None:
            self.spend_relay.committed(rows)

    def _priced(self, row: UsageRow) -> UsageRow:
        """The row with its cost (usage writer thread; the current config's prices)."""
        if row.log_only:
            return row
        cost = self.runtime.prices.cost(
            row.provider, row.upstream_model or row.model, input_tokens=row.input_tokens,
            output_tokens=row.output_tokens, cache_read_tokens=row.cache_read_tokens,
            cache_creation_tokens=row.cache_creation_tokens, cache_write_1h_tokens=row.cache_write_1h_tokens)
        # Set in place, not dataclasses.replace (5 µs a row, holding the GIL the event loop
        # wants): the row left the event loop with record(), the writer is its only holder now.
        row.cost_usd = cost
        return row

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        rt = self.runtime  # taken once: this request runs on this config to the end
        rt.active += 1
        self.in_flight += 1
        ctx = Context(rt, started)
        response = Response(send, client_link(scope))
        route = self.routes.get((method, path))
        label = route[0] if route else _unrouted_label(path)
        if self.tracing is not None and label not in QUIET_ROUTES:
            ctx.trace = self.tracing.request(method, path, label, scope["headers"])
        status = 0
        try:
            if self.in_flight > rt.max_requests and label not in QUIET_ROUTES:
                self.metrics.refuse("overloaded")
                raise _overloaded(rt.max_requests)
            if route is None:
                await self.unrouted(scope, receive, response, ctx)
            else:
                _, handler, needs_auth = route
                if needs_auth and rt.auth.enabled:
                    ctx.key = self.authenticate(ctx.header_map(scope), rt)
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
        finally:
            rt.release()
            self.in_flight -= 1
        status = status or response.status or ctx.status
        self._observe(method, path, label, status, response, started, ctx)

    def _observe(self, method: str, path: str, label: str, status: int, response: Response, started: float,
                 ctx: Context) -> None:
        """Metrics, the access log line and the trace's end for one finished request."""
        elapsed = time.perf_counter() - started
        provider = ctx.upstream or "-"
        self.metrics.request_done(label, status, provider, elapsed, response.bytes_out)
        if ctx.stream and response.first_byte_at and status < 400:
            self.metrics.first_token(provider, response.first_byte_at - started)
        if status >= 400 and ctx.upstream is None and label == "messages" and self.log_refused:
            self._log_refusal(status, elapsed, ctx)  # refused before dispatch: 401, 429, 400...
        if self.access_log.enabled and label not in QUIET_ROUTES:
            usage = ctx.usage or _NO_USAGE
            # Positional, in AccessRecord's field order (a third cheaper than 21 keywords; the
            # test of the access line checks every field lands where it belongs).
            self.access_log.write(AccessRecord(
                utc_now(), ctx.request_id, method, path, status, round(elapsed * 1000, 3), ctx.bytes_in,
                response.bytes_out, ctx.client, ctx.model, ctx.upstream, ctx.stream, ctx.attempts, ctx.error,
                usage.get("input_tokens"), usage.get("output_tokens"), usage.get("cache_read_input_tokens"),
                usage.get("cache_creation_input_tokens"), ctx.session, ctx.upstream_request_id, self.worker,
            ))
        if ctx.trace is not None:
            ctx.trace.finish(status, model=ctx.model, provider=ctx.upstream, session=ctx.session,
                             usage=ctx.usage, error=ctx.error, stream=ctx.stream)

    def _log_refusal(self, status: int, elapsed: float, ctx: Context) -> None:
        """A request refused before any provider was tried, for the console's request log."""
        if self.recorder is not None:
            self.recorder.record(UsageRow(
                ts=time.time(), status=status, key_id=ctx.key.key_id if ctx.key else None, model=ctx.model,
                request_id=ctx.request_id, latency_ms=elapsed * 1000, error=ctx.error, log_only=True))

    def authenticate(self, headers: Mapping[bytes, bytes], rt: Runtime) -> Client:
        """The calling client, from the request's headers (``Context.header_map``)."""
        return rt.auth.authenticate(headers.get(b"x-api-key"), headers.get(b"authorization"),
                                    headers.get(CCGATE_KEY_HEADER))

    async def unrouted(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX) and self.admin is not None:
            await self.admin.dispatch(scope, receive, response, ctx)
            return
        if self.console is not None and _is_console(path):
            await self.console(scope, receive, response, ctx)
            return
        if path.startswith(MODEL_PREFIX) and scope["method"] == "GET":
            if ctx.rt.auth.enabled:
                ctx.key = self.authenticate(ctx.header_map(scope), ctx.rt)
                ctx.client = ctx.key.name
            await self.model(scope, receive, response, ctx)
            return
        if path.startswith("/api/event_logging/"):
            # Claude Code telemetry: absorbed here, never forwarded.
            await read_body(receive, EVENT_LOG_MAX_BYTES, _declared_length(scope))
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
        length = ctx.header_map(scope).get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        body = await read_body(receive, ctx.rt.max_body, declared)
        ctx.bytes_in = len(body)
        return body

    async def messages(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        body = await self._read(scope, receive, ctx)
        head = decode_messages(body)
        model = ctx.model = head.model
        ctx.stream = head.stream
        fields = head.fields
        del head  # its raw messages are views of the body
        if self._admit(ctx, model) and self.shared is not None and ctx.key is not None:
            await self._admit_shared(ctx.key)
        dispatching = self._dispatch(scope, receive, response, ctx, body, model, fields=fields)
        del body, fields  # the exchange holds them only until the answer starts: streams last for minutes
        await dispatching

    async def count_tokens(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        body = await self._read(scope, receive, ctx)
        head = decode_count_tokens(body)
        ctx.model = head.model
        if ctx.key is not None and ctx.key.issued is not None and not ctx.key.issued.allows_model(head.model):
            raise self._model_denied(ctx.key, head.model)
        if ctx.key is not None and ctx.key.session is not None:
            _check_policy_model(ctx, ctx.key.session.identity.groups, head.model)
        route = route_model(ctx.rt.config, head.model)
        if route.primary.provider.translated:
            # No OpenAI equivalent: answered from the local estimate (docs/translation.md).
            ctx.upstream = route.primary.provider.name
            reply = _json.encode({"input_tokens": estimate_input_tokens(decode_body(body))})
            await response.whole(200, [(b"content-type", b"application/json"),
                                       (b"content-length", str(len(reply)).encode()),
                                       (b"request-id", ctx.request_id.encode())], reply)
            return
        await self._dispatch(scope, receive, response, ctx, body, head.model, record=False)

    def _admit(self, ctx: Context, model: str) -> bool:
        """An issued key's model allowance and rate limits, checked before any upstream work.
        True when the rate limits are still to be counted by the shared state (``_admit_shared``)."""
        client = ctx.key
        if client is None or client.issued is None:
            return False
        key = client.issued
        if not key.allows_model(model):
            raise self._model_denied(client, model)
        if client.session is not None:
            _check_policy_model(ctx, client.session.identity.groups, model)
        if (key.budget_day is not None or key.budget_month is not None) and self.budgets is not None:
            overspent = self.budgets.check(key)
            if overspent is not None:
                self.metrics.budget_refusal(client.name, overspent.window)
                wait = max(1, int(overspent.resets_at - self.seams.clock.time()))
                raise BudgetExceeded(overspent.message(client.name), headers={"retry-after": str(wait)})
        if key.rpm is None and key.tpm is None:
            return False
        if self.shared is not None:
            return True
        admission = self.limiter.admit_sync(key.id, key.rpm, key.tpm)
        if not admission.allowed:
            self.metrics.rate_limit_refused(client.name)
            raise admission.error(client.name)
        return False

    async def _admit_shared(self, client: Client) -> None:
        """Rate limits counted across every gateway process (server/shared_link.py)."""
        assert self.shared is not None and client.issued is not None
        try:
            await self.shared.admit(client.issued, client.name)
        except RateLimited:
            self.metrics.rate_limit_refused(client.name)
            raise

    def _link(self, backend: SharedState | None, loaded: LoadedConfig, clock: Clock) -> SharedLink | None:
        if backend is None:
            return None
        redis = loaded.config.redis
        fail_open = redis is None or redis.on_failure.rate_limits == "open"
        link = SharedLink(backend, fail_open=fail_open, on_unavailable=self.metrics.shared_unavailable)
        self.metrics.watch_shared(backend)
        self.spend_relay = SpendRelay(link, clock.time)
        if self.key_cache is not None:
            cache = self.key_cache
            link.handle("keys_changed", lambda _data: cache.invalidate())
            cache.on_change = lambda: link.publish("keys_changed")
        link.handle("config_reload", lambda _data: self.reloader.spawn("another worker's admin API"))
        return link

    @staticmethod
    def _model_denied(client: Client, model: str) -> PermissionDenied:
        allowed = ", ".join(client.issued.models) if client.issued else ""
        return PermissionDenied(f"gateway key {client.name!r} may not use model {model!r} (allowed: {allowed})")

    async def _dispatch(
        self, scope: Scope, receive: Receive, response: Response, ctx: Context, body: bytes, model: str,
        *, record: bool = True, fields: dict[str, msgspec.Raw] | None = None,
    ) -> None:
        rt = ctx.rt
        plan = rt.dispatcher.plan(rt.config, model)  # worked out once per model and config
        ctx.upstream = plan.route.primary.provider.name
        # With x-ccgate-key the client's Authorization is its own, not ours: dispatch decides per
        # target whether it may go upstream (kind: anthropic only).
        if plan.byok is not None and ctx.key is not None and not ctx.key.own_credential:
            raise _client_credentials_refused(plan.byok)
        # Usage is read from every answer that is recorded: token metrics, the usage row, the
        # access log, a key's tokens-per-minute.
        usage_wanted = record or (
            ctx.key is not None and ctx.key.issued is not None and ctx.key.issued.tpm is not None)
        ctx.session = session_id_from_headers(scope["headers"])
        own_credential = brings_own_credential(ctx.header_map(scope))
        ctx.headers = None  # nothing reads them from here on; a stream lasts for minutes
        ex = Exchange(response, request_id=ctx.request_id, count_usage=usage_wanted, trace=ctx.trace,
                      request_body=body, request_fields=fields)
        del body, fields  # (see Exchange.request_body)
        failure: GatewayError | None = None
        try:
            # _exchange inlined: each coroutine between the server and the transport is one more
            # frame every wake-up of the request resumes.
            gauge = self._streams_gauge(ctx)
            try:
                await watch_disconnect(
                    receive, ex, rt.dispatcher.run(plan, model, scope, ex, forward_client=ctx.key is None,
                                                   own_credential=own_credential))
            finally:
                if gauge is not None:
                    gauge.dec()
            self._exchanged(ctx, ex)
        except GatewayError as err:  # the answer the client is about to get (handle() sends it)
            failure = err
            raise
        finally:
            ctx.upstream = ex.provider or ctx.upstream
            ctx.attempts = ex.trail or None
            ctx.usage, ctx.upstream_request_id = ex.usage, ex.upstream_request_id
            if record:
                self._account(ctx, ex, model, failure)

    def _account(self, ctx: Context, ex: Exchange, model: str, failure: GatewayError | None) -> None:
        usage = ex.usage or {}
        if usage:
            self.metrics.tokens_used(model, ex.provider or "-", usage, ctx.client)
        tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        if ctx.key is not None and ctx.key.issued is not None and ctx.key.issued.tpm is not None and tokens:
            if self.shared is not None:
                self.shared.record_tokens(ctx.key.issued.id, tokens)
            else:
                self.limiter.record_tokens_sync(ctx.key.issued.id, tokens)
        status = ex.status or (failure.status if failure is not None else 0)
        if self.recorder is None or not status:
            return
        # One row per request for usage and the request log alike (store.request_log).
        self.recorder.record(UsageRow(
            ts=time.time(), status=status, key_id=ctx.key.key_id if ctx.key else None,
            model=model, provider=ex.provider, session_id=ctx.session,
            request_id=ctx.request_id,
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            cache_read_tokens=int(usage.get("cache_read_input_tokens", 0)),
            cache_creation_tokens=int(usage.get("cache_creation_input_tokens", 0)),
            cache_write_1h_tokens=int(usage.get(CACHE_1H, 0)), upstream_model=ex.model,
            latency_ms=(time.perf_counter() - ctx.started) * 1000, attempts=ex.trail or None,
            error=failure.message if failure is not None else ex.error,
        ))

    async def _exchange(self, receive: Receive, ctx: Context, ex: Exchange, work: Awaitable[None]) -> None:
        gauge = self._streams_gauge(ctx)
        try:
            await watch_disconnect(receive, ex, work)
        finally:
            if gauge is not None:
                gauge.dec()
        self._exchanged(ctx, ex)

    def _streams_gauge(self, ctx: Context) -> Gauge | None:
        """The open-streams gauge, counted up, for a streamed request (else None)."""
        if not ctx.stream:
            return None
        gauge = self.metrics.open_streams
        gauge.inc()
        return gauge

    def _exchanged(self, ctx: Context, ex: Exchange) -> None:
        if ex.error:
            ctx.error = ex.error
        ctx.status = ex.status
        if ex.status >= 400:
            self.metrics.upstream_errors.labels(ex.provider or "-", f"http_{ex.status}").inc()

    async def models(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        """Exact-id routes (a glob is not a model), plus each translated provider's own models
        under discovery aliases (``routing.route.model_alias``), which Claude Code's discovery
        keeps (it drops ids without "claude" or "anthropic") and which route back to them,
        paged as Anthropic pages (``limit``, ``after_id``, ``before_id``). With neither, the
        first provider's own list is relayed."""
        listed = await self._local_models(ctx.rt)
        if listed is None:
            await self._relay_models(scope, receive, response, ctx, scope["path"])
            return
        await response.json(200, _json.encode(model_list(listed, model_page(scope["query_string"]))))

    async def model(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        """``GET /v1/models/{model_id}`` (the SDKs' ``models.retrieve``): a model of the local
        list is answered here; any other id that routes to an Anthropic provider is asked of
        it (under the name the route sends); otherwise Anthropic's 404."""
        model_id = scope["path"][len(MODEL_PREFIX):]
        ctx.model = model_id
        listed = await self._local_models(ctx.rt)
        for row in listed or ():
            if row[0] == model_id:
                await response.json(200, _json.encode(model_info(row)))
                return
        target = route_model(ctx.rt.config, model_id).primary if model_id else None
        if target is None or target.provider.kind != "anthropic":
            raise NotFound(f"model: {model_id}")
        path = MODEL_PREFIX + quote(target.model, safe="")
        await self._relay_models(scope, receive, response, ctx, path, ctx.rt.transports[target.provider.name])

    async def _local_models(self, rt: Runtime) -> list[ModelRow] | None:
        """The model list the gateway answers itself, or None when it relays the provider's."""
        listed: list[ModelRow] = [
            (route.match, route.display_name or route.match, route.context_window, route.max_tokens)
            for route in rt.config.models
            if not _GLOB & set(route.match)
        ]
        discovering = [p.name for p in rt.config.providers if p.kind != "anthropic"]
        if not listed and not discovering:
            return None
        return listed + await _discovered(rt, discovering)

    async def _relay_models(self, scope: Scope, receive: Receive, response: Response, ctx: Context,
                            path: str, transport: Transport | None = None) -> None:
        """``path`` (with the client's query) asked of ``transport`` (the first provider's),
        the answer relayed."""
        rt = ctx.rt
        transport = transport or next(iter(rt.transports.values()))
        ctx.upstream = transport.name
        query: bytes = scope["query_string"]
        path += "?" + query.decode("latin-1") if query else ""
        credentials = rt.upstreams[transport.name].pool.acquire()
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


async def _nothing() -> None:
    """Any other scope type (websocket): nothing to do."""


async def _discovered(rt: Runtime, providers: list[str]) -> list[tuple[str, str, int | None, int | None]]:
    """Each provider's discovered models as model-list rows under their aliases, fetched
    concurrently (each bounded by its own timeout; a failure lists that provider's last good
    list, or nothing)."""
    lists: list[list[ListedModel]] = await asyncio.gather(
        *(rt.providers[name].catalog.models() for name in providers))
    return [
        (model_alias(name, m.id), f"{m.display_name or m.id} ({name})", m.context_window, None)
        for name, models in zip(providers, lists, strict=True) for m in models
    ]


def _check_policy_model(ctx: Context, groups: tuple[str, ...], model: str) -> None:
    """The availableModels of the managed-settings policy a /login developer falls under, with
    the message Anthropic's gateway sends (Claude Code shows it as the API error)."""
    login = ctx.rt.loaded.login
    policy = login.policies.select(groups) if login is not None else None
    if policy is not None and not policy.allows_model(model):
        raise InvalidRequest(f"model {model} is not in your role's availableModels allowlist")


def _declared_length(scope: Scope) -> int | None:
    length = dict(scope["headers"]).get(b"content-length")
    return int(length) if length is not None and length.isdigit() else None


def _overloaded(limit: int) -> Overloaded:
    return Overloaded(
        f"the gateway is answering its limit of {limit} requests at once "
        "(server.limits.max_concurrent_requests); retry shortly",
        headers={"retry-after": OVERLOAD_RETRY_AFTER},
    )


def _unrouted_label(path: str) -> str:
    if path.startswith(MODEL_PREFIX):
        return "models"
    if path.startswith("/api/event_logging/"):
        return "event_logging"
    if _is_console(path):
        return "console"
    return "admin" if path.startswith(ADMIN_PREFIX) else "unknown"


def _is_console(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def _recorder(store: Store | None, loaded: LoadedConfig,
              on_commit: Callable[[Sequence[UsageRow]], None]) -> UsageRecorder | None:
    """The batched writer of usage rows and the request log (one row serves both)."""
    settings = loaded.config.store
    log = settings.request_log
    if store is None or not (settings.record_usage or log.enabled):
        return None
    store.set_request_log(RequestLogPolicy(log.enabled, log.retention_days * 86400, log.max_rows),
                          usage=settings.record_usage)
    return UsageRecorder(store, on_commit=on_commit, max_pending=settings.buffer_rows)


def _client_credentials_refused(provider: str) -> InternalError:
    """A client that authenticated with a gateway credential never has it forwarded upstream."""
    return InternalError(
        f"provider {provider!r} has no api_keys (bring-your-own-key), but clients "
        "authenticate with gateway keys, whose secrets are never forwarded; give it api_keys"
    )


def _open_store(loaded: LoadedConfig, env: Mapping[str, str]) -> Store | None:
    settings = loaded.config.store
    if not settings.enabled:
        return None
    where = store_location(None, env, settings, loaded.path)
    try:
        return open_store(where)
    except StoreError as exc:  # the message names the location without its password
        # A PostgreSQL error already names the URL (without its password); a file error may not.
        what = str(exc) if isinstance(where, StoreURL) else f"cannot open {where}: {exc}"
        raise ConfigError(
            f"store: {what} (set store.path, store.url or $CCGATE_DB, or store.enabled: false)") from None


__all__ = ["Gateway"]
