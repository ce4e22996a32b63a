"""An Anthropic-shaped upstream for tests: a real HTTP(S) server on 127.0.0.1.

The server runs aiohttp.web on its own event loop in a background thread, so it can be used
from sync tests, async tests, subprocess clients (Claude Code, curl) and through real proxies.
It listens on two OS-assigned ports: TLS (``url``) and plain HTTP (``http_url``).

Behaviour is chosen per request, first match wins:

1. the server's ``scenario`` when it is ``"region_block"`` (blocks *every* path, like the real
   geo block, including ``/api/hello``);
2. the model name: ``fail-401`` (invalid x-api-key), ``fail-oauth`` (the Bearer/OAuth 401),
   ``fail-403`` (region block), ``fail-404`` (not_found_error), ``fail-429``, ``fail-500``,
   ``fail-529``, ``fail-400`` (prompt is too long), or ``scenario-<name>`` for any scenario;
3. the request header ``x-fake-scenario: <name>``;
4. the server attribute ``scenario`` (default ``"text"``).

Success scenarios: ``text``, ``tool_use``, ``thinking`` (thinking + signature_delta + text),
``slow`` (text deltas spaced by ``slow_delay`` with pings every ``ping_interval`` during the
silence), ``stream_error`` (``message_start`` then an ``error`` event).
Error scenarios: ``auth_error``, ``oauth``, ``region_block``, ``not_found``, ``rate_limit``,
``api_error``, ``overloaded``, ``too_long``. With ``fail_times = N`` an error scenario
applies to the next N matching requests only and then the server answers ``text``.

Model names other than ``claude*``/``anthropic*``/``fail-*``/``scenario-*`` get the real
404 ``not_found_error`` (``model: <id>``).

Auth: when ``expected_api_key`` is set, ``/v1/*`` requires ``x-api-key`` equal to it. A key
sent only as ``Authorization: Bearer`` gets ``OAuth authentication is currently not
supported.`` (unless ``accept_bearer`` is true). ``/api/hello`` and ``/v1/oauth/hello`` need no
credentials, as in reality.

``gzip = True`` gzip-encodes every non-streaming JSON body (``content-encoding: gzip``,
regardless of ``accept-encoding``); ``RecordedRequest.response_body`` holds the exact bytes
sent so a relay can be checked byte for byte.

Every request is recorded (method, raw path with query, raw headers, raw body bytes) in
``requests``; client disconnects during a stream are recorded in ``disconnects``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip as gzip_mod
import json
import secrets
import ssl
import string
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.lab.threaded import ThreadedServer

#: Key the lab's upstream expects by default (fake; safe to appear in code, never printed).
LAB_API_KEY = "sk-ant-api03-lab-0000000000000000000000000000000000000000-TESTKEY"

MODELS: tuple[tuple[str, str, str], ...] = (
    ("claude-opus-4-8", "Claude Opus 4.8", "2026-05-28T00:00:00Z"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
)

SUCCESS_SCENARIOS = frozenset({"text", "tool_use", "thinking", "slow", "stream_error"})
ERROR_SCENARIOS = frozenset(
    {"auth_error", "oauth", "region_block", "not_found", "rate_limit", "api_error",
     "overloaded", "too_long"}
)
MODEL_FAILS = {
    "fail-401": "auth_error", "fail-oauth": "oauth", "fail-403": "region_block",
    "fail-404": "not_found", "fail-429": "rate_limit", "fail-500": "api_error",
    "fail-529": "overloaded", "fail-400": "too_long",
}
REGION_BLOCK_BODY = b'{"error":{"type":"forbidden","message":"Request not allowed"}}'
ORG_ID = "6b9f3c3e-0000-4000-8000-1ab5c0ffee00"
_ALNUM = string.ascii_letters + string.digits


def _rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def new_request_id() -> str:
    return "req_011C" + _rand(20)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class RecordedRequest:
    """One request as the fake upstream received it, and what it answered."""

    method: str
    path: str  # raw path including the query string, e.g. "/v1/messages?beta=true"
    headers: list[tuple[str, str]]  # raw header pairs, original case and order
    body: bytes
    received_at: float  # time.monotonic()
    request_id: str = ""
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""  # exact bytes sent (compressed if gzip; all SSE bytes if streamed)

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    @property
    def header_names(self) -> list[str]:
        return [k.lower() for k, _ in self.headers]

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:  # never show header values (credentials)
        return f"RecordedRequest({self.method} {self.path} -> {self.status})"


@dataclass
class Disconnect:
    path: str
    at: float  # time.monotonic()
    events_sent: int


class FakeAnthropic(ThreadedServer):
    """See module docstring. Use as a context manager or call start()/stop().

    Knobs (plain attributes, change them any time): ``scenario``, ``fail_times``, ``text``,
    ``tool_name``, ``tool_input``, ``retry_after`` (429), ``gzip``, ``headers_delay``,
    ``slow_delay``, ``slow_chunks``, ``ping_interval``, ``expected_api_key``,
    ``accept_bearer``, ``require_version`` (400 without ``anthropic-version``).
    Observations: ``requests``, ``last``, ``requests_to(prefix)``, ``wait_for_requests(n)``,
    ``disconnects``, ``wait_disconnect()``; ``reset()`` clears them.
    Addresses: ``url`` (TLS), ``http_url``, ``host_url(host)``, ``tls_port``, ``http_port``.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None, *,
                 expected_api_key: str | None = LAB_API_KEY, accept_bearer: bool = False,
                 plain_http: bool = True) -> None:
        super().__init__()
        self.thread_name = "fake-anthropic"
        self.ssl_context = ssl_context
        self.plain_http = plain_http or ssl_context is None
        self.expected_api_key = expected_api_key
        self.accept_bearer = accept_bearer
        self.require_version = True
        self.scenario = "text"
        self.fail_times: int | None = None
        self.text = "Hello from the fake Anthropic API."
        self.tool_name = "get_weather"
        self.tool_input: dict[str, Any] = {"location": "Paris"}
        self.retry_after = 1
        self.gzip = False
        self.headers_delay = 0.0  # seconds before the response status line is sent
        self.slow_delay = 0.5
        self.slow_chunks = 20
        self.ping_interval = 0.1
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self.disconnected = threading.Event()
        self.tls_port = 0
        self.http_port = 0
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None

    # --- addresses ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """TLS base URL on 127.0.0.1 (cert is valid for 127.0.0.1)."""
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def host_url(self, host: str = "api.anthropic.com") -> str:
        """TLS URL naming ``host`` (reachable through a lab proxy that maps it to 127.0.0.1)."""
        return f"https://{host}:{self.tls_port}"

    # --- lifecycle ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget recorded requests and disconnects."""
        with self._lock:
            self.requests.clear()
            self.disconnects.clear()
            self.disconnected.clear()

    # --- assertions helpers -------------------------------------------------------------
    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    @property
    def last(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.01)
        raise TimeoutError(f"expected {n} requests, got {len(self.requests)}")

    def wait_disconnect(self, timeout: float = 5.0) -> Disconnect:
        if not self.disconnected.wait(timeout):
            raise TimeoutError("client never disconnected")
        with self._lock:
            return self.disconnects[-1]

    # --- server internals ---------------------------------------------------------------
    async def _astart(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, auto_decompress=False, access_log=None,
                                     handle_signals=False)
        await self._runner.setup()
        if self.ssl_context is not None:
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
            await site.start()
            self.tls_port = _bound_port(site)
        if self.plain_http:
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.http_port = _bound_port(site)

    async def _astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = RecordedRequest(
            method=request.method, path=request.raw_path,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body=body, received_at=time.monotonic(), request_id=new_request_id(),
        )
        with self._lock:
            self.requests.append(rec)
        if self.headers_delay:
            await asyncio.sleep(self.headers_delay)
        path = request.path
        if self.scenario == "region_block":
            return self._raw(rec, 403, REGION_BLOCK_BODY)
        if path in ("/api/hello", "/v1/oauth/hello"):
            return self._json(rec, 200, {"message": "hello"})
        if path.startswith("/api/event_logging/"):
            return self._json(rec, 200, {})
        if path.startswith("/v1/"):
            auth = self._check_auth(rec)
            if auth is not None:
                return auth
        if path == "/v1/messages" and request.method == "POST":
            return await self._messages(request, rec, count_only=False)
        if path == "/v1/messages/count_tokens" and request.method == "POST":
            return await self._messages(request, rec, count_only=True)
        if path == "/v1/models" and request.method == "GET":
            return self._json(rec, 200, _model_list(request.query))
        if path.startswith("/v1/models/") and request.method == "GET":
            mid = path.removeprefix("/v1/models/")
            for m in _model_objs():
                if m["id"] == mid:
                    return self._json(rec, 200, m)
            return self._error(rec, 404, "not_found_error", f"model: {mid}")
        return self._error(rec, 404, "not_found_error", "Not Found")

    def _check_auth(self, rec: RecordedRequest) -> web.Response | None:
        if self.expected_api_key is None:
            return None
        key = rec.header("x-api-key")
        bearer = rec.header("authorization") or ""
        if key is None and bearer.lower().startswith("bearer "):
            if self.accept_bearer and bearer[7:].strip() == self.expected_api_key:
                return None
            return self._error(rec, 401, "authentication_error",
                               "OAuth authentication is currently not supported.")
        if key is None:
            return self._error(rec, 401, "authentication_error", "x-api-key header is required")
        if key != self.expected_api_key:
            return self._error(rec, 401, "authentication_error", "invalid x-api-key")
        return None

    def _pick_scenario(self, rec: RecordedRequest, model: str) -> str:
        if model in MODEL_FAILS:
            chosen = MODEL_FAILS[model]
        elif model.startswith("scenario-"):
            chosen = model.removeprefix("scenario-")
        else:
            chosen = rec.header("x-fake-scenario") or self.scenario
        if chosen in ERROR_SCENARIOS and self.fail_times is not None:
            if self.fail_times <= 0:
                return "text"
            self.fail_times -= 1
        return chosen

    async def _messages(self, request: web.Request, rec: RecordedRequest, *,
                        count_only: bool) -> web.StreamResponse:
        if self.require_version and rec.header("anthropic-version") is None:
            return self._error(rec, 400, "invalid_request_error",
                               "anthropic-version: header is required")
        raw = rec.body
        if (rec.header("content-encoding") or "").lower() == "gzip":
            raw = gzip_mod.decompress(raw)
        try:
            payload = json.loads(raw)
        except ValueError:
            return self._error(rec, 400, "invalid_request_error",
                               "There was an error parsing the body of your request as JSON.")
        if not isinstance(payload, dict):
            return self._error(rec, 400, "invalid_request_error", "body: Input should be an object")
        required = ("model", "messages") if count_only else ("model", "max_tokens", "messages")
        for name in required:
            if name not in payload:
                return self._error(rec, 400, "invalid_request_error", f"{name}: Field required")
        model = str(payload["model"])
        scenario = self._pick_scenario(rec, model)
        if scenario not in SUCCESS_SCENARIOS | ERROR_SCENARIOS:
            return self._error(rec, 400, "invalid_request_error", f"unknown scenario {scenario}")
        if not model.startswith(("claude", "anthropic", "fail-", "scenario-")):
            scenario = "not_found"
        if scenario in ERROR_SCENARIOS:
            return self._scenario_error(rec, scenario, model)
        input_tokens = max(1, len(raw) // 4)
        if count_only:
            return self._json(rec, 200, {"input_tokens": input_tokens})
        blocks = self._blocks(scenario)
        if payload.get("stream"):
            return await self._stream(request, rec, scenario, model, input_tokens, blocks)
        return self._json(rec, 200, _message(model, blocks, input_tokens))

    def _blocks(self, scenario: str) -> list[dict[str, Any]]:
        text = {"type": "text", "text": self.text}
        if scenario == "tool_use":
            return [{"type": "text", "text": "I'll check that."},
                    {"type": "tool_use", "id": "toolu_01" + _rand(22), "name": self.tool_name,
                     "input": self.tool_input}]
        if scenario == "thinking":
            return [{"type": "thinking", "thinking": "Let me think about this briefly.",
                     "signature": "EqQBCkYIBxgCKkB" + _rand(60)}, text]
        if scenario == "slow":
            words = [f"chunk{i} " for i in range(self.slow_chunks)]
            return [{"type": "text", "text": "".join(words)}]
        return [text]

    async def _stream(self, request: web.Request, rec: RecordedRequest, scenario: str,
                      model: str, input_tokens: int,
                      blocks: list[dict[str, Any]]) -> web.StreamResponse:
        headers = self._headers(rec)
        headers["Content-Type"] = "text/event-stream; charset=utf-8"
        headers["Cache-Control"] = "no-cache"
        resp = web.StreamResponse(status=200, headers=headers)
        rec.status, rec.response_headers = 200, dict(headers)
        sent = 0
        try:
            await resp.prepare(request)  # inside: a client gone before the headers counts too
            for name, data, slow in _sse_events(scenario, model, input_tokens, blocks,
                                                 self.slow_chunks):
                if slow:
                    await self._silence(request, resp, rec)
                chunk = f"event: {name}\ndata: ".encode() + _dumps(data) + b"\n\n"
                _check_open(request)
                await resp.write(chunk)
                rec.response_body += chunk
                sent += 1
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError) as exc:
            with self._lock:
                self.disconnects.append(Disconnect(rec.path, time.monotonic(), sent))
            self.disconnected.set()
            if isinstance(exc, asyncio.CancelledError):
                raise
        return resp

    async def _silence(self, request: web.Request, resp: web.StreamResponse,
                       rec: RecordedRequest) -> None:
        """Wait ``slow_delay`` seconds, sending a ping every ``ping_interval``."""
        deadline = time.monotonic() + self.slow_delay
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(self.ping_interval, left))
            _check_open(request)
            if time.monotonic() < deadline:
                chunk = b'event: ping\ndata: {"type": "ping"}\n\n'
                await resp.write(chunk)
                rec.response_body += chunk

    def _scenario_error(self, rec: RecordedRequest, scenario: str, model: str) -> web.Response:
        if scenario == "region_block":
            return self._raw(rec, 403, REGION_BLOCK_BODY)
        if scenario == "auth_error":
            return self._error(rec, 401, "authentication_error", "invalid x-api-key")
        if scenario == "oauth":
            return self._error(rec, 401, "authentication_error",
                               "OAuth authentication is currently not supported.")
        if scenario == "not_found":
            return self._error(rec, 404, "not_found_error", f"model: {model}")
        if scenario == "too_long":
            return self._error(rec, 400, "invalid_request_error",
                               "prompt is too long: 200251 tokens > 200000 maximum")
        if scenario == "api_error":
            return self._error(rec, 500, "api_error", "Internal server error")
        if scenario == "overloaded":
            return self._error(rec, 529, "overloaded_error", "Overloaded")
        reset = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.retry_after))
        reset_s = reset.strftime("%Y-%m-%dT%H:%M:%SZ")
        extra = {
            "retry-after": str(self.retry_after),
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset_s,
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": reset_s,
            "anthropic-ratelimit-input-tokens-limit": "30000",
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": reset_s,
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "8000",
            "anthropic-ratelimit-output-tokens-reset": reset_s,
        }
        return self._error(
            rec, 429, "rate_limit_error",
            "This request would exceed the rate limit for your organization "
            f"({ORG_ID}) of 50 requests per minute. For details, refer to: "
            "https://docs.claude.com/en/api/rate-limits. You can see the response headers "
            "for current usage. Please reduce the prompt length or the maximum tokens "
            "requested, or try again later.",
            extra,
        )

    # --- response builders --------------------------------------------------------------
    def _headers(self, rec: RecordedRequest) -> dict[str, str]:
        return {"request-id": rec.request_id, "anthropic-organization-id": ORG_ID,
                "server": "cloudflare", "cf-ray": _rand(16).lower() + "-LAX"}

    def _raw(self, rec: RecordedRequest, status: int, body: bytes,
             extra: dict[str, str] | None = None) -> web.Response:
        headers = self._headers(rec)
        headers["Content-Type"] = "application/json"
        headers.update(extra or {})
        if self.gzip:
            body = gzip_mod.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        rec.status, rec.response_headers, rec.response_body = status, dict(headers), body
        return web.Response(status=status, body=body, headers=headers)

    def _json(self, rec: RecordedRequest, status: int, obj: Any,
              extra: dict[str, str] | None = None) -> web.Response:
        return self._raw(rec, status, _dumps(obj), extra)

    def _error(self, rec: RecordedRequest, status: int, etype: str, message: str,
               extra: dict[str, str] | None = None) -> web.Response:
        hdrs = {"x-should-retry": "true" if status in (429, 500, 529) else "false"}
        hdrs.update(extra or {})
        body = {"type": "error", "error": {"type": etype, "message": message},
                "request_id": rec.request_id}
        return self._json(rec, status, body, hdrs)


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # the asyncio Server aiohttp created for this site
    assert server is not None
    return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


def _check_open(request: web.Request) -> None:
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("client went away")


def _model_objs() -> list[dict[str, Any]]:
    return [{"type": "model", "id": mid, "display_name": name, "created_at": created,
             "lifecycle": "active", "deprecated_at": None, "retires_at": None,
             "max_input_tokens": 200000, "max_tokens": 64000}
            for mid, name, created in MODELS]


def _model_list(query: Any) -> dict[str, Any]:
    data = _model_objs()
    limit = int(query.get("limit", "20"))
    data = data[: max(1, min(limit, 1000))]
    return {"data": data, "has_more": False, "first_id": data[0]["id"],
            "last_id": data[-1]["id"]}


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens, "service_tier": "standard"}


def _stop_reason(blocks: list[dict[str, Any]]) -> str:
    return "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"


def _message(model: str, blocks: list[dict[str, Any]], input_tokens: int) -> dict[str, Any]:
    return {"id": "msg_01" + _rand(22), "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": _stop_reason(blocks), "stop_sequence": None,
            "usage": _usage(input_tokens, 12)}


def _pieces(text: str, n: int = 3) -> list[str]:
    """Split ``text`` into chunks of about n words, keeping every character."""
    words = text.split(" ")
    out = [" ".join(words[i:i + n]) for i in range(0, len(words), n)]
    return [p + " " if i < len(out) - 1 else p for i, p in enumerate(out)]


def _sse_events(scenario: str, model: str, input_tokens: int, blocks: list[dict[str, Any]],
                slow_chunks: int) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Yield (event name, data, delay_before) in the real API's order."""
    start = _message(model, [], input_tokens)
    start["stop_reason"] = None
    start["usage"] = _usage(input_tokens, 1)
    yield "message_start", {"type": "message_start", "message": start}, False
    if scenario == "stream_error":
        yield "error", {"type": "error", "error": {"type": "overloaded_error",
                                                    "message": "Overloaded"}}, False
        return
    for idx, block in enumerate(blocks):
        delta = "content_block_delta"
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": idx,
                                          "content_block": {"type": "text", "text": ""}}, False
            if idx == 0:
                yield "ping", {"type": "ping"}, False
            parts = block["text"].split(" ") if scenario == "slow" else _pieces(block["text"])
            if scenario == "slow":
                parts = [p + " " for p in parts if p]
            for part in parts:
                yield delta, {"type": delta, "index": idx,
                              "delta": {"type": "text_delta", "text": part}}, scenario == "slow"
        elif block["type"] == "thinking":
            yield "content_block_start", {
                "type": "content_block_start", "index": idx,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}, False
            yield "ping", {"type": "ping"}, False
            for part in _pieces(block["thinking"]):
                yield delta, {"type": delta, "index": idx,
                              "delta": {"type": "thinking_delta", "thinking": part}}, False
            yield delta, {"type": delta, "index": idx,
                          "delta": {"type": "signature_delta",
                                    "signature": block["signature"]}}, False
        elif block["type"] == "tool_use":
            yield "content_block_start", {
                "type": "content_block_start", "index": idx,
                "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"],
                                  "input": {}}}, False
            js = json.dumps(block["input"])
            cuts = [""] + [js[i:i + 7] for i in range(0, len(js), 7)]
            for part in cuts:
                yield delta, {"type": delta, "index": idx,
                              "delta": {"type": "input_json_delta", "partial_json": part}}, False
        yield "content_block_stop", {"type": "content_block_stop", "index": idx}, False
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": _stop_reason(blocks), "stop_sequence": None},
                            "usage": {"output_tokens": 12 + slow_chunks * (scenario == "slow")}
                            }, False
    yield "message_stop", {"type": "message_stop"}, False
