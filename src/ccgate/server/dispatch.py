"""One request's way to an answer: attempts over a route's targets, then the relay.

The decisions (which provider, which key, wait how long, retry or fall back or give up)
belong to ``routing.Planner``; this module is the thin I/O loop around it (docs/routing.md):

    next_step -> Wait: sleep | GiveUp: relay the last answer or raise | Attempt: send
    status >= 400 -> read the (small) error body, classify, report, loop
    status < 400  -> report success and relay; from the first byte on, nothing is retried

Each target is prepared once, lazily: the client's bytes for passthrough (rewritten only
when an alias, a clamp or a provider quirk demands it), or a translated Chat Completions
request for openai-compatible providers.

A client that sends the gateway key in ``x-ccgate-key`` brings its own Anthropic credential
(a Claude subscription): for ``kind: anthropic`` targets its ``Authorization``/``x-api-key``
go upstream byte for byte and the attempt uses a keyless lease, so the gateway's keys are
neither sent nor blamed for a refusal; every other target gets its provider key as usual.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ccgate.config.model import Config
from ccgate.errors import InternalError, InvalidRequest, UpstreamError
from ccgate.observe.tracing import AttemptTrace
from ccgate.routing import Attempt, Candidate, GiveUp, KeyPool, Planner, RetryPolicy, Upstream, Wait, classify
from ccgate.routing.clock import SYSTEM_CLOCK, Clock
from ccgate.routing.outcome import Outcome
from ccgate.routing.route import Route, Target, route_model
from ccgate.server.asgi import RawHeaders, Scope
from ccgate.server.auth import CCGATE_KEY_HEADER
from ccgate.server.exchange import Exchange
from ccgate.server.forward import outgoing_headers, relay_passthrough, response_headers
from ccgate.server.metrics import Metrics
from ccgate.server.translated import (
    check_context_window,
    openai_headers,
    relay_translated,
    upstream_error,
)
from ccgate.translate import Quirks, TranslatedRequest, translate_request
from ccgate.translate.compat import AnthropicQuirks, rewrite_body
from ccgate.upstream.response import UpstreamResponse
from ccgate.upstream.transport import Transport
from ccgate.wire.anthropic import TOO_DEEP, decode_body, decode_for_translation

_json = msgspec.json.Encoder()
# Error bodies are held to be classified and perhaps relayed; real ones are a few hundred bytes.
_ERROR_BODY_LIMIT = 64 * 1024
# In place of a held error body in an encoding we cannot search for keys (br, zstd).
_UNREADABLE = (b'{"type":"error","error":{"type":"api_error","message":"the provider\'s error '
               b'body came in an encoding the gateway cannot check for keys; not shown"}}')


@dataclass
class Prepared:
    """A request ready for one target."""

    target: Target
    transport: Transport
    path: str
    body: bytes
    translated: TranslatedRequest | None = None
    own_credential: bool = False  # the client's credential goes upstream (x-ccgate-key, anthropic)


class RoutePlan:
    """What a model name resolves to under one config, worked out once: its route, the
    planner's candidates (for a request using the gateway's keys) and the provider, if any,
    that has no keys of its own (bring-your-own-key), which a client holding a gateway
    credential may not be sent to."""

    __slots__ = ("byok", "candidates", "route")

    def __init__(self, route: Route, candidates: tuple[Candidate[Target], ...], byok: str | None) -> None:
        self.route = route
        self.candidates = candidates
        self.byok = byok


# Model names come from clients: the plans kept per config are bounded (past it, worked out
# per request, as before).
PLAN_MEMO = 512


@dataclass
class _Held:
    """The last error answer, kept in case it is what the client finally gets."""

    prepared: Prepared
    status: int
    headers: RawHeaders
    body: bytes


class Dispatcher:
    def __init__(
        self,
        transports: dict[str, Transport],
        upstreams: dict[str, Upstream],
        policy: RetryPolicy,
        quirks: dict[str, Quirks],
        compat: dict[str, AnthropicQuirks],
        ping_interval: float,
        *,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        self.transports = transports
        self.upstreams = upstreams
        self.policy = policy
        self.quirks = quirks
        self.compat = compat
        self.ping_interval = ping_interval
        # Injected so tests drive retries and backoff with a ManualClock, without sleeping.
        self.clock = clock
        self.sleep = sleep
        self.metrics = metrics if metrics is not None else Metrics()
        self._plans: dict[str, RoutePlan] = {}

    def plan(self, config: Config, model: str) -> RoutePlan:
        """The route for ``model`` (``routing.route_model``) with what the attempts need, kept
        per model name: this dispatcher belongs to one config (``server.runtime.Runtime``)."""
        plan = self._plans.get(model)
        if plan is None:
            route = route_model(config, model)
            byok = next((t.provider.name for t in route.targets if self.transports[t.provider.name].byok), None)
            plan = RoutePlan(route, tuple(Candidate(self.upstreams[t.provider.name], t) for t in route.targets),
                             byok)
            if len(self._plans) < PLAN_MEMO:
                self._plans[model] = plan
        return plan

    # Preparing a target --------------------------------------------------------------------

    def prepare(
        self, target: Target, route: Route, model: str, body: bytes, decoded: dict[str, Any] | None,
        scope: Scope, *, own_credential: bool = False,
    ) -> Prepared:
        try:
            return self._prepare(target, route, model, body, decoded, scope, own_credential)
        except RecursionError:
            # The body decoded, but walking or re-encoding it (deeper in the stack than the
            # decode was) went past the recursion limit: the client's nesting, not our fault.
            raise InvalidRequest(TOO_DEEP) from None

    def _prepare(
        self, target: Target, route: Route, model: str, body: bytes, decoded: dict[str, Any] | None,
        scope: Scope, own_credential: bool,
    ) -> Prepared:
        provider = target.provider
        transport = self.transports[provider.name]
        if provider.translated:
            data = decoded if decoded is not None else decode_for_translation(body)
            request = translate_request(
                data, model=target.model, quirks=self.quirks[provider.name],
                max_output_tokens=route.max_tokens,
            )
            check_context_window(request, route.context_window)
            return Prepared(target, transport, "/chat/completions", _json.encode(request.body), request)
        query: bytes = scope["query_string"]
        path = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        counting = scope["path"].endswith("/count_tokens")
        return Prepared(target, transport, path, self._passthrough_body(body, model, target, route, counting),
                        own_credential=own_credential)

    def _passthrough_body(
        self, body: bytes, model: str, target: Target, route: Route, counting: bool
    ) -> bytes:
        """The client's bytes, unless an alias, a clamp or a provider quirk needs a rewrite."""
        quirks = self.compat[target.provider.name]
        clamp = route.max_tokens
        if (target.model == model and clamp is None and quirks.max_tools is None
                and not quirks.rewrites_body):
            return body  # the common case: byte for byte, signatures on thinking blocks intact
        data: dict[str, Any] = decode_body(body)  # a dict: the head decode checked that
        data["model"] = target.model
        rewrite_body(data, quirks)
        tools = data.get("tools")
        if quirks.max_tools is not None and isinstance(tools, list) and len(tools) > quirks.max_tools:
            raise InvalidRequest(
                f"tools: {len(tools)} tools, but provider {target.provider.name!r} accepts at most "
                f"{quirks.max_tools}; disable some MCP servers or turn on tool search"
            )
        max_tokens = data.get("max_tokens")
        if not counting and clamp is not None and isinstance(max_tokens, int) and max_tokens > clamp:
            data["max_tokens"] = clamp
        return _json.encode(data)

    def _upstream_for(self, target: Target, own_credential: bool) -> Upstream:
        """The provider's upstream, or, for a client bringing its own Anthropic credential, the
        same breaker with a keyless pool: the lease then adds no key, and a 401 meant for the
        client's token never takes one of the gateway's keys out of service."""
        provider = target.provider
        upstream = self.upstreams[provider.name]
        if not own_credential:
            return upstream
        if provider.kind == "anthropic":
            if upstream.pool.byok:
                return upstream
            return Upstream(upstream.name, KeyPool([], name=upstream.name), upstream.breaker)
        if self.transports[provider.name].byok:
            # Its only credential would be the client's, and that is meant for Anthropic.
            raise InternalError(
                f"provider {provider.name!r} has no api_keys, and a client's own credential "
                "(sent with x-ccgate-key) goes only to kind: anthropic providers; give it api_keys"
            )
        return upstream

    # The attempt loop ----------------------------------------------------------------------

    async def run(
        self, plan: RoutePlan, model: str, scope: Scope, ex: Exchange,
        *, method: str = "POST", forward_client: bool = True, own_credential: bool | None = None,
    ) -> None:
        """Attempts until an answer is relayed or the planner gives up. The request body is
        ``ex.request_body``, read from there (never kept in a local) and dropped, with every
        prepared copy of it, once an answer starts to be relayed. ``own_credential``:
        ``brings_own_credential`` of the request's headers, when the caller has worked it out."""
        route = plan.route
        if own_credential is None:
            own_credential = brings_own_credential(dict(scope["headers"]))
        candidates = plan.candidates if not own_credential else [
            Candidate(self._upstream_for(t, own_credential), t) for t in route.targets]
        planner: Planner[Target] = Planner(candidates, self.policy, clock=self.clock)
        prepared: dict[int, Prepared] = {}
        decoded: dict[str, Any] | None = None
        held: _Held | None = None
        try:
            while True:
                step = planner.next_step()
                if isinstance(step, Wait):
                    await self.sleep(step.seconds)
                    continue
                if isinstance(step, GiveUp):
                    await self._give_up(step, held, ex)
                    return
                index = route.targets.index(step.target)
                if index not in prepared:
                    assert ex.request_body is not None, "the body is dropped only when relaying"
                    if decoded is None and step.target.provider.translated:
                        decoded = decode_for_translation(ex.request_body, ex.request_fields)
                    prepared[index] = self.prepare(step.target, route, model, ex.request_body, decoded, scope,
                                                   own_credential=own_credential)
                prep = prepared[index]
                ex.provider, ex.model = prep.transport.name, prep.target.model
                trace = None if ex.trace is None else ex.trace.attempt(
                    ex.provider, prep.target.provider.kind, prep.target.provider.base_url,
                    prep.target.model, step.number)
                result = await self._attempt(planner, step, prep, scope, method, forward_client, ex, trace)
                if result is None:  # transport failure: the planner's GiveUp carries the error
                    continue
                if isinstance(result, _Held):
                    held = result
                    continue
                # Relaying from here on, never retried: the request's bytes can go, and its
                # headers (uvicorn's list, kept by the scope for the whole stream: ~4 KB for
                # Claude Code's; everything read from them was read before this point).
                ex.request_body = ex.request_fields = decoded = held = None
                scope["headers"].clear()
                prepared.clear()
                prep.body = b""
                if prep.translated is not None:  # its Chat Completions body went upstream already
                    prep.translated.body = {"stream": prep.translated.body.get("stream")}
                # The relay, here rather than in a method of its own: every coroutine between
                # the server and the transport is one more frame each wake-up resumes.
                try:
                    if prep.translated is not None:
                        await relay_translated(
                            prep.transport, result, prep.translated, model, ex, self.ping_interval,
                            self.quirks[prep.target.provider.name],
                        )
                    else:
                        await relay_passthrough(result, ex)
                finally:
                    if ex.upstream_broke:
                        planner.stream_failed(step)
                    if trace is not None:
                        trace.finish(ex.usage, ex.response_model, ex.stop_reason, ex.error)
                return
        finally:
            # The trail is logged only when there was more than one attempt.
            ex.trail = planner.trail() if planner.attempts > 1 else ""

    async def _attempt(
        self, planner: Planner[Target], step: Attempt[Target], prep: Prepared, scope: Scope, method: str,
        forward_client: bool, ex: Exchange, trace: AttemptTrace | None,
    ) -> UpstreamResponse | _Held | None:
        transport, provider = prep.transport, prep.target.provider
        credentials = step.lease.headers(provider.auth_header)
        if prep.translated is not None:
            headers = openai_headers(credentials)
        else:
            headers = outgoing_headers(scope, transport, credentials, forward_client=forward_client,
                                       readable_encoding=ex.count_usage,
                                       forward_beta=self.compat[provider.name].forward_beta,
                                       own_credential=prep.own_credential)
        if trace is not None:
            trace.inject(headers)
        response: UpstreamResponse | None = None
        started = time.perf_counter()
        try:
            response = await transport.send(method, prep.path, headers, prep.body)
            elapsed = time.perf_counter() - started
            if response.status < 400:
                self._answered(planner, step, classify(response.status, None, response.headers), elapsed,
                               response, ex, trace)
                return response
            error_body = await response.read(_ERROR_BODY_LIMIT)
        except UpstreamError as err:
            if response is not None:
                response.close()
            self._answered(planner, step, classify(None, err, {}), time.perf_counter() - started, None, ex,
                           trace)
            return None
        except BaseException:
            if response is not None:
                response.close()
            planner.abandon(step)
            if trace is not None:
                trace.finish(None, None, None, "abandoned")
            raise
        response.close()
        self._answered(planner, step, classify(response.status, None, response.headers, error_body), elapsed,
                       response, ex, trace)
        return _Held(prep, response.status, response_headers(response), error_body)

    def _answered(
        self, planner: Planner[Target], step: Attempt[Target], outcome: Outcome, elapsed: float,
        response: UpstreamResponse | None, ex: Exchange, trace: AttemptTrace | None,
    ) -> None:
        """Report one attempt's outcome: to the planner, the metrics (attempts by outcome, time to
        the status line), the exchange (the provider's request id) and the attempt's span."""
        planner.report(step, outcome)
        self.metrics.attempt_done(step.provider, outcome.kind, elapsed)
        if response is not None:
            headers = response.headers
            request_id = headers.get("request-id") or headers.get("x-request-id")
            ex.upstream_request_id = request_id[:128] if request_id else None  # the provider's: bounded
        if trace is not None:
            trace.answered(response.status if response is not None else None, outcome.kind,
                           ex.upstream_request_id if response is not None else None)
            if not outcome.ok:
                trace.finish(None, None, None, outcome.reason)

    async def _give_up(self, step: GiveUp, held: _Held | None, ex: Exchange) -> None:
        if step.relay_last and held is not None:
            if held.prepared.translated is not None:
                raise upstream_error(held.prepared.transport, held.status, held.body,
                                     _as_str(held.headers))
            # Passthrough: the provider's own answer, its wording intact (Claude Code parses it),
            # but never one of our keys that the provider quoted back.
            keys = [key.value.encode() for key in held.prepared.transport.keys]
            headers, body = redact_held(held.headers, held.body, keys)
            headers = [*headers, (b"content-length", str(len(body)).encode())]
            ex.error = error_message(headers, body)  # for the access log and the console's request log
            await ex.response.whole(held.status, headers, body)
            return
        if step.error is not None:
            raise step.error
        raise UpstreamError(f"no provider could take the request: {step.reason}")


def error_message(headers: RawHeaders, body: bytes, limit: int = 500) -> str | None:
    """The message of a relayed (already redacted) error body: Anthropic's ``error.message``
    (also OpenAI's), else the start of the text. Error answers only: never on a success."""
    coding = next((v.strip().lower() for k, v in headers if k == b"content-encoding"), b"identity")
    if coding not in (b"", b"identity"):
        inflated = _inflate(body, coding)
        if inflated is None:
            return None
        body = inflated
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        text = body[:limit].decode("utf-8", "replace").strip()
        return text or None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:limit] if message else None


def brings_own_credential(headers: Mapping[bytes, bytes]) -> bool:
    """Whether the gateway key came in ``x-ccgate-key`` beside a credential of the client's own
    (``Authorization``/``x-api-key``), from the request's headers as a dict. With
    ``x-ccgate-key`` alone the provider key is used. Read from the headers, not ``auth.Client``:
    it holds without client auth as well (a local gateway with auth off, ``ccgate code`` with a
    subscription login)."""
    return CCGATE_KEY_HEADER in headers and (b"authorization" in headers or b"x-api-key" in headers)


def redact_held(headers: RawHeaders, body: bytes, keys: list[bytes]) -> tuple[RawHeaders, bytes]:
    """An error body the gateway holds, with every configured key's value replaced by ``***``.

    Only held (error) answers come here: they are small and already read whole, so the scan
    is free; relayed successes and streams go byte for byte. A gzip/deflate body is inflated
    to be searched and, when a key was found, sent back plain (its ``content-encoding``
    dropped); an encoding we cannot read (br, zstd) is refused outright rather than relayed
    unsearched, since it might carry a key.
    """
    keys = [key for key in keys if key]
    if not keys:
        return headers, body
    coding = next((v.strip().lower() for k, v in headers if k == b"content-encoding"), b"identity")
    plain = body if coding in (b"", b"identity") else _inflate(body, coding)
    if plain is None:
        kept = [(k, v) for k, v in headers if k not in (b"content-encoding", b"content-type")]
        return [*kept, (b"content-type", b"application/json")], _UNREADABLE
    if not any(key in plain for key in keys):
        return headers, body  # the common case: nothing quoted, the bytes as they came
    for key in keys:
        plain = plain.replace(key, b"***")
    return [(k, v) for k, v in headers if k != b"content-encoding"], plain


def _inflate(body: bytes, coding: bytes) -> bytes | None:
    """A gzip or deflate body inflated (deflate with or without its zlib header), else None."""
    if coding not in (b"gzip", b"x-gzip", b"deflate"):
        return None
    for wbits in (47, -zlib.MAX_WBITS):  # 47: a gzip or a zlib header; then raw deflate
        try:
            return zlib.decompressobj(wbits).decompress(body, _ERROR_BODY_LIMIT * 4)
        except zlib.error:
            continue
    return None


def _as_str(headers: RawHeaders) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
