"""A scripted upstream for tests: a real HTTP(S) server on 127.0.0.1 that answers each request
with the next action from a queue the test wrote.

Where :mod:`tests.lab.fake_anthropic` models *the* Anthropic API with knobs, this server has no
behaviour of its own: a test lists what the upstream does, request by request, e.g. "429 with
retry-after, then a reset after the first byte, then an OpenAI tool call", and afterwards reads
what each request looked like. It serves any method and any path (``/v1/chat/completions``,
``/v1/messages``, ...), so the same server plays an OpenAI-compatible provider, an
Anthropic-compatible one, a primary or a fallback.

It runs aiohttp.web on its own event loop in a background thread (like the other lab fakes),
on an OS-assigned port on 127.0.0.1: plain HTTP always (``http_url``), TLS too when started with
an SSL context (``https_url``; the fixture uses the lab CA's server leaf).

Actions (small dataclasses; anything not listed is a bug in the test):

``OpenAIText(text, chunks=3, reasoning=None, usage=..., finish_reason="stop", delay=0)``
    an OpenAI chat completion: streamed as ``data: {chunk}`` lines ending ``data: [DONE]`` when
    the request body has ``"stream": true``, else one ``chat.completion`` JSON object.
``OpenAIToolCall(name, arguments, id=None, text_before=None, fragments=4, usage=...)``
    an OpenAI tool call: first fragment with id/type/name and ``arguments: ""``, then the JSON
    arguments over ``fragments`` fragments, ``finish_reason: "tool_calls"``, a usage chunk,
    ``[DONE]`` (or the non-streaming ``chat.completion`` with ``tool_calls``).
``AnthropicText(text, chunks=3, ...)`` / ``AnthropicToolUse(name, input, id=None, ...)``
    Anthropic-shaped message JSON or SSE (``message_start`` ... ``message_stop``, with a ping).
``Status(code, body, headers={})``
    any status with a raw (bytes) or JSON (dict) body; ``Status.openai_error(...)``,
    ``Status.anthropic_error(...)``, ``Status.rate_limited(...)``, ``Status.overloaded()`` and
    ``Status.context_overflow()`` build the usual ones.
``ResetBeforeHeaders()``
    read the request, then close the TCP connection abruptly (RST) without answering.
``ResetAfterFirstByte(first=None)``
    send ``200`` SSE headers and a first event (an OpenAI role chunk on ``.../chat/completions``,
    else an Anthropic ``message_start``), then abort the connection.
``SlowHeaders(seconds, then=None)``
    wait before answering, then play ``then`` (default: the server's default action).
``Hang()``
    never answer; returns only when the client goes away (recorded as ``disconnected``).
``Chunks(raw, delay=0, status=200, headers=...)``
    raw body pieces written as they are (``delay`` seconds between pieces); a number in ``raw``
    is a pause of that many seconds. For golden streams and silences.
``Callback(fn)`` (or a bare callable in the script)
    ``fn(request: ScriptedRequest) -> action``: decide from the request, e.g. to play a whole
    conversation or to answer a client's side requests differently from its main turn.

When the script is empty the ``default`` action answers (``Auto()`` unless given: OpenAI text on
``*/chat/completions``, Anthropic text on ``*/messages``, ``{"input_tokens": N}`` on
``*/count_tokens``, ``{"data": []}`` on ``*/models``, else 404).

Every request is recorded as a :class:`ScriptedRequest` (method, raw path, headers, body bytes,
parsed JSON, the action played, the status sent, whether the client disconnected first) in
``requests``, in arrival order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import json
import secrets
import socket
import ssl
import string
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiohttp import web

from tests.lab.threaded import ThreadedServer

_ALNUM = string.ascii_letters + string.digits
DONE = b"data: [DONE]\n\n"
#: What OpenAI itself says when the prompt does not fit (vLLM and most compatible servers copy it).
CONTEXT_OVERFLOW_MESSAGE = (
    "This model's maximum context length is 32768 tokens. However, you requested 40211 tokens "
    "(8211 in the messages, 32000 in the completion). Please reduce the length of the messages "
    "or completion."
)


def _rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def default_openai_usage() -> dict[str, int]:
    return {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}


def default_anthropic_usage() -> dict[str, int]:
    return {"input_tokens": 21, "output_tokens": 9}


def split_text(text: str, n: int) -> list[str]:
    """Split ``text`` into ``n`` (or fewer, never empty) pieces whose concatenation is ``text``."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size = -(-len(text) // n)
    return [text[i:i + size] for i in range(0, len(text), size)]


# --- actions ------------------------------------------------------------------------------
@dataclass
class OpenAIText:
    """An OpenAI chat completion with text (and optional ``reasoning_content``)."""

    text: str = "Hello from the scripted upstream."
    chunks: int = 3
    reasoning: str | None = None
    #: The final usage (``None``: the stream has no usage chunk and the JSON no ``usage``).
    usage: dict[str, Any] | None = field(default_factory=default_openai_usage)
    finish_reason: str = "stop"
    delay: float = 0.0  # seconds between streamed chunks
    model: str | None = None  # default: the request's model


@dataclass
class OpenAIToolCall:
    """An OpenAI assistant turn that calls one function tool."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: "call_" + _rand(24))
    text_before: str | None = None
    fragments: int = 4  # how many pieces the JSON arguments are streamed in
    usage: dict[str, Any] | None = field(default_factory=default_openai_usage)
    finish_reason: str = "tool_calls"
    delay: float = 0.0
    model: str | None = None


@dataclass
class AnthropicText:
    """An Anthropic Messages API answer with one text block."""

    text: str = "Hello from the scripted upstream."
    chunks: int = 3
    usage: dict[str, Any] = field(default_factory=default_anthropic_usage)
    stop_reason: str = "end_turn"
    delay: float = 0.0
    model: str | None = None


@dataclass
class AnthropicToolUse:
    """An Anthropic Messages API answer calling one tool (optionally after some text)."""

    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: "toolu_01" + _rand(22))
    text_before: str | None = None
    usage: dict[str, Any] = field(default_factory=default_anthropic_usage)
    delay: float = 0.0
    model: str | None = None


@dataclass
class Status:
    """Any status with a body: ``bytes`` as they are, a ``dict`` as JSON."""

    code: int
    body: bytes | dict[str, Any] = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def openai_error(cls, code: int, message: str, type: str = "invalid_request_error",
                     err_code: str | None = None, headers: dict[str, str] | None = None) -> Status:
        """OpenAI's envelope: ``{"error": {"message", "type", "param", "code"}}``."""
        return cls(code, {"error": {"message": message, "type": type, "param": None,
                                    "code": err_code}}, dict(headers or {}))

    @classmethod
    def anthropic_error(cls, code: int, type: str, message: str,
                        headers: dict[str, str] | None = None) -> Status:
        """Anthropic's envelope, with a request id."""
        return cls(code, {"type": "error", "error": {"type": type, "message": message},
                          "request_id": "req_011C" + _rand(20)}, dict(headers or {}))

    @classmethod
    def context_overflow(cls) -> Status:
        """OpenAI/vLLM's 400 for a prompt that does not fit the model's context."""
        return cls.openai_error(400, CONTEXT_OVERFLOW_MESSAGE, err_code="context_length_exceeded")

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1, *, anthropic: bool = False) -> Status:
        """429 in OpenAI's (default) or Anthropic's shape, with ``retry-after`` unless None."""
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        if anthropic:
            return cls.anthropic_error(429, "rate_limit_error", "Number of request tokens has "
                                       "exceeded your per-minute rate limit", headers)
        return cls.openai_error(429, "Rate limit reached for requests", "requests",
                                "rate_limit_exceeded", headers)

    @classmethod
    def overloaded(cls) -> Status:
        """Anthropic's 529 ``overloaded_error``."""
        return cls.anthropic_error(529, "overloaded_error", "Overloaded")


@dataclass
class ResetBeforeHeaders:
    """Read the request, then reset the TCP connection without sending a byte."""


@dataclass
class ResetAfterFirstByte:
    """``200`` SSE headers and one event (``first``, else a shape chosen from the path), then
    the connection is aborted (RST)."""

    first: bytes | None = None


@dataclass
class SlowHeaders:
    """Wait ``seconds`` (or until the client leaves) before playing ``then``."""

    seconds: float
    then: Action | None = None


@dataclass
class Hang:
    """Never answer; end when the client goes away (or the server stops)."""


@dataclass
class Chunks:
    """Raw body pieces; a number in ``raw`` is a pause in seconds."""

    raw: list[bytes | float]
    delay: float = 0.0
    status: int = 200
    headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})


@dataclass
class Callback:
    """``fn(request) -> action``, called when the request arrives."""

    fn: Callable[[ScriptedRequest], Action]


@dataclass
class Auto:
    """A plausible answer chosen from the path (the default default action)."""

    text: str = "Hello from the scripted upstream."


Action: TypeAlias = (
    OpenAIText | OpenAIToolCall | AnthropicText | AnthropicToolUse | Status | ResetBeforeHeaders
    | ResetAfterFirstByte | SlowHeaders | Hang | Chunks | Callback | Auto
    | Callable[["ScriptedRequest"], Any]
)


# --- recorded requests ----------------------------------------------------------------------
@dataclass
class ScriptedRequest:
    """One request as the scripted upstream received it, and what it did."""

    method: str
    path: str  # raw path with the query string, e.g. "/v1/chat/completions"
    headers: list[tuple[str, str]]  # raw pairs, original case and order
    body: bytes
    json: Any  # the parsed body (gzip undone), or None when it is not JSON
    received_at: float  # time.monotonic()
    index: int = 0  # position in the server's ``requests``
    action: Any = None  # the action played (after resolving callbacks)
    status: int = 0  # status sent (0: none, e.g. a reset before headers)
    response_body: bytes = b""  # the bytes written as the body
    disconnected: bool = False  # the client went away before the answer was complete
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    @property
    def header_names(self) -> list[str]:
        return [k.lower() for k, _ in self.headers]

    @property
    def stream(self) -> bool:
        """True when the body asked for a stream (``"stream": true``)."""
        return isinstance(self.json, dict) and self.json.get("stream") is True

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The body's ``messages`` (empty when absent)."""
        msgs = self.json.get("messages") if isinstance(self.json, dict) else None
        return list(msgs or [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self.json.get("tools") if isinstance(self.json, dict) else None
        return list(tools or [])

    def __repr__(self) -> str:  # never show header values (credentials)
        return f"ScriptedRequest(#{self.index} {self.method} {self.path} -> {self.status})"


class _ClientGone(Exception):
    pass


# --- the server -----------------------------------------------------------------------------
class ScriptedUpstream(ThreadedServer):
    """See the module docstring. Use as a context manager, or ``start()``/``stop()``.

    Script: ``script(*actions)`` appends, ``default`` answers when the script is empty.
    Observations: ``requests``, ``last``, ``wait_for_requests(n)``, ``wait_disconnect()``,
    ``pending`` (actions not played yet). Addresses: ``url`` (https when TLS, else http),
    ``http_url``, ``https_url``, ``openai_base_url`` (``url + "/v1"``).
    ``bearer_keys``: when set, a request whose ``Authorization: Bearer`` is not one of them gets
    OpenAI's 401 (``invalid_api_key``) and does not consume a scripted action.
    """

    def __init__(self, *actions: Action, default: Action | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 bearer_keys: Iterable[str] | None = None, name: str = "scripted") -> None:
        super().__init__()
        self.thread_name = f"scripted-{name}"
        self.name = name
        self.ssl_context = ssl_context
        self.default: Action = default if default is not None else Auto()
        self.bearer_keys: set[str] | None = set(bearer_keys) if bearer_keys is not None else None
        self.requests: list[ScriptedRequest] = []
        self.http_port = 0
        self.https_port = 0
        self._script: collections.deque[Action] = collections.deque(actions)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._runner: web.AppRunner | None = None
        self._stopping = False

    # --- script -------------------------------------------------------------------------
    def script(self, *actions: Action) -> ScriptedUpstream:
        """Append actions to the script (played in order, one per request)."""
        with self._lock:
            self._script.extend(actions)
        return self

    @property
    def pending(self) -> list[Action]:
        with self._lock:
            return list(self._script)

    def _next_action(self) -> Action:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    # --- addresses ----------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        if not self.https_port:
            raise RuntimeError("this scripted upstream was started without TLS")
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def url(self) -> str:
        return self.https_url if self.https_port else self.http_url

    @property
    def openai_base_url(self) -> str:
        """OpenAI-style base URL including ``/v1`` (clients append ``/chat/completions``)."""
        return self.url + "/v1"

    # --- observations -------------------------------------------------------------------
    @property
    def last(self) -> ScriptedRequest:
        with self._lock:
            return self.requests[-1]

    def requests_to(self, path_part: str) -> list[ScriptedRequest]:
        """Requests whose raw path contains ``path_part``."""
        with self._lock:
            return [r for r in self.requests if path_part in r.path]

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[ScriptedRequest]:
        """Wait until at least ``n`` requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: expected {n} requests, got {len(self.requests)}")
                self._changed.wait(left)
            return list(self.requests)

    def wait_done(self, request: ScriptedRequest, timeout: float = 10.0) -> ScriptedRequest:
        """Wait until the server has finished handling ``request``."""
        if not request.done.wait(timeout):
            raise TimeoutError(f"{self.name}: {request!r} still being handled")
        return request

    def wait_disconnect(self, timeout: float = 10.0) -> ScriptedRequest:
        """Wait until some request's client went away before its answer was complete."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                gone = [r for r in self.requests if r.disconnected]
                if gone:
                    return gone[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no client disconnected")
                self._changed.wait(left)

    def reset(self) -> None:
        """Forget recorded requests and the remaining script."""
        with self._lock:
            self.requests.clear()
            self._script.clear()

    # --- lifecycle ----------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping = True
        super().stop()

    async def _astart(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, auto_decompress=False, access_log=None,
                                     handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = _bound_port(site)
        if self.ssl_context is not None:
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
            await site.start()
            self.https_port = _bound_port(site)

    async def _astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- request handling ---------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = ScriptedRequest(
            method=request.method, path=request.raw_path,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body=body, json=_parse_json(body, request.headers.get("content-encoding")),
            received_at=time.monotonic(),
        )
        with self._changed:
            rec.index = len(self.requests)
            self.requests.append(rec)
            self._changed.notify_all()
        try:
            action: Any
            if self.bearer_keys is not None and not self._bearer_ok(rec):
                # refused before the script: the scripted action stays for the next request
                action = Status.openai_error(401, "Incorrect API key provided.",
                                             err_code="invalid_api_key")
            else:
                action = self._next_action()
            return await self._play(request, rec, action)
        finally:
            rec.done.set()
            with self._changed:
                self._changed.notify_all()

    def _bearer_ok(self, rec: ScriptedRequest) -> bool:
        auth = rec.header("authorization") or ""
        return auth[:7].lower() == "bearer " and auth[7:].strip() in (self.bearer_keys or set())

    def _mark_gone(self, rec: ScriptedRequest) -> None:
        with self._changed:
            rec.disconnected = True
            self._changed.notify_all()

    async def _play(self, request: web.Request, rec: ScriptedRequest,
                    action: Any) -> web.StreamResponse:
        for _ in range(20):  # callbacks may return callbacks
            if isinstance(action, Callback):
                action = action.fn(rec)
            elif callable(action) and not isinstance(action, type):
                action = action(rec)
            else:
                break
        if action is None:
            action = self.default
        rec.action = action
        try:
            return await self._answer(request, rec, action)
        except _ClientGone:
            self._mark_gone(rec)
            return web.Response(status=499)
        except (ConnectionError, asyncio.CancelledError) as exc:
            self._mark_gone(rec)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return web.Response(status=499)

    async def _answer(self, request: web.Request, rec: ScriptedRequest,
                      action: Any) -> web.StreamResponse:
        if isinstance(action, Auto):
            return await self._answer(request, rec, _auto(rec, action))
        if isinstance(action, Status):
            return self._status(rec, action)
        if isinstance(action, OpenAIText | OpenAIToolCall):
            if rec.stream:
                return await self._write_stream(request, rec, _openai_stream(rec, action),
                                                action.delay)
            return self._status(rec, Status(200, _openai_completion(rec, action)))
        if isinstance(action, AnthropicText | AnthropicToolUse):
            if rec.stream:
                return await self._write_stream(request, rec, _anthropic_stream(rec, action),
                                                action.delay)
            return self._status(rec, Status(200, _anthropic_message(rec, action),
                                            {"request-id": "req_011C" + _rand(20)}))
        if isinstance(action, Chunks):
            return await self._write_stream(request, rec, list(action.raw), action.delay,
                                            status=action.status, headers=action.headers)
        if isinstance(action, ResetBeforeHeaders):
            _abort(request)
            return web.Response(status=200)
        if isinstance(action, ResetAfterFirstByte):
            first = action.first if action.first is not None else _first_event(rec)
            resp = await self._start_stream(request, rec, 200, None)
            await resp.write(first)
            rec.response_body += first
            _abort(request)
            return resp
        if isinstance(action, SlowHeaders):
            await self._sleep(request, action.seconds)
            return await self._answer(request, rec, action.then if action.then is not None
                                      else self.default)
        if isinstance(action, Hang):
            while not self._stopping:
                await self._sleep(request, 3600)
            return web.Response(status=503)
        raise TypeError(f"not a scripted action: {action!r}")

    async def _sleep(self, request: web.Request, seconds: float) -> None:
        """Sleep, but notice a client that goes away (raises _ClientGone)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise _ClientGone
            if self._stopping:
                return
            await asyncio.sleep(min(0.02, left))

    def _status(self, rec: ScriptedRequest, action: Status) -> web.Response:
        headers = dict(action.headers)
        if isinstance(action.body, dict):
            body = _dumps(action.body)
            headers.setdefault("Content-Type", "application/json")
        else:
            body = action.body
            if not any(k.lower() == "content-type" for k in headers):
                looks_json = body.lstrip()[:1] in (b"{", b"[")
                headers["Content-Type"] = "application/json" if looks_json else "text/plain"
        rec.status, rec.response_body = action.code, body
        return web.Response(status=action.code, body=body, headers=headers)

    async def _start_stream(self, request: web.Request, rec: ScriptedRequest, status: int,
                            headers: dict[str, str] | None) -> web.StreamResponse:
        hdrs = headers if headers is not None else {"Content-Type": "text/event-stream",
                                                    "Cache-Control": "no-cache"}
        resp = web.StreamResponse(status=status, headers=hdrs)
        rec.status = status
        await resp.prepare(request)
        return resp

    async def _write_stream(self, request: web.Request, rec: ScriptedRequest,
                            pieces: list[bytes | float], delay: float, *, status: int = 200,
                            headers: dict[str, str] | None = None) -> web.StreamResponse:
        resp = await self._start_stream(request, rec, status, headers)
        first = True
        for piece in pieces:
            if isinstance(piece, int | float):
                await self._sleep(request, float(piece))
                continue
            if delay and not first:
                await self._sleep(request, delay)
            first = False
            transport = request.transport
            if transport is None or transport.is_closing():
                raise _ClientGone
            await resp.write(piece)
            rec.response_body += piece
        await resp.write_eof()
        return resp


# --- builders -------------------------------------------------------------------------------
def openai_sse(obj: Any) -> bytes:
    """One OpenAI stream line: ``data: {json}\\n\\n``."""
    return b"data: " + _dumps(obj) + b"\n\n"


def anthropic_sse(obj: dict[str, Any]) -> bytes:
    """One Anthropic SSE event: ``event: <type>\\ndata: {json}\\n\\n``."""
    return f"event: {obj['type']}\ndata: ".encode() + _dumps(obj) + b"\n\n"


def openai_chunk(delta: dict[str, Any] | None, *, finish_reason: str | None = None,
                 model: str = "scripted-model", id: str = "chatcmpl-scripted",
                 usage: dict[str, Any] | None = None, created: int = 1767225600) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta=None`` gives the usage chunk (``choices: []``)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish_reason}]
    return {"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None, "choices": choices, "usage": usage}


def _parse_json(body: bytes, encoding: str | None) -> Any:
    if not body:
        return None
    try:
        if (encoding or "").lower() == "gzip":
            body = gzip.decompress(body)
        return json.loads(body)
    except (ValueError, OSError):
        return None


def _model(rec: ScriptedRequest, override: str | None, fallback: str) -> str:
    return override or (rec.model if isinstance(rec.model, str) else None) or fallback


def _openai_stream(rec: ScriptedRequest, action: OpenAIText | OpenAIToolCall) -> list[bytes | float]:
    cid = "chatcmpl-" + _rand(24)
    model = _model(rec, action.model, "scripted-model")

    def chunk(delta: dict[str, Any] | None, finish: str | None = None,
              usage: dict[str, Any] | None = None) -> bytes:
        return openai_sse(openai_chunk(delta, finish_reason=finish, model=model, id=cid,
                                       usage=usage, created=int(time.time())))

    out: list[bytes | float] = [chunk({"role": "assistant", "content": ""})]
    if isinstance(action, OpenAIText):
        if action.reasoning:
            for part in split_text(action.reasoning, action.chunks):
                out.append(chunk({"reasoning_content": part}))
        for part in split_text(action.text, action.chunks):
            out.append(chunk({"content": part}))
    else:
        for part in split_text(action.text_before or "", 2):
            out.append(chunk({"content": part}))
        out.append(chunk({"tool_calls": [{"index": 0, "id": action.id, "type": "function",
                                          "function": {"name": action.name, "arguments": ""}}]}))
        for part in split_text(json.dumps(action.arguments), action.fragments):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
    out.append(chunk({}, action.finish_reason))
    if action.usage is not None:
        out.append(chunk(None, usage=action.usage))
    out.append(DONE)
    return out


def _openai_completion(rec: ScriptedRequest, action: OpenAIText | OpenAIToolCall) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "refusal": None}
    if isinstance(action, OpenAIText):
        message["content"] = action.text
        if action.reasoning:
            message["reasoning_content"] = action.reasoning
    else:
        message["content"] = action.text_before
        message["tool_calls"] = [{"id": action.id, "type": "function",
                                  "function": {"name": action.name,
                                               "arguments": json.dumps(action.arguments)}}]
    out: dict[str, Any] = {
        "id": "chatcmpl-" + _rand(24), "object": "chat.completion", "created": int(time.time()),
        "model": _model(rec, action.model, "scripted-model"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": action.finish_reason}],
    }
    if action.usage is not None:
        out["usage"] = action.usage
    return out


def _anthropic_blocks(action: AnthropicText | AnthropicToolUse) -> list[dict[str, Any]]:
    if isinstance(action, AnthropicText):
        return [{"type": "text", "text": action.text}]
    blocks: list[dict[str, Any]] = []
    if action.text_before:
        blocks.append({"type": "text", "text": action.text_before})
    blocks.append({"type": "tool_use", "id": action.id, "name": action.name, "input": action.input})
    return blocks


def _anthropic_usage(usage: dict[str, Any]) -> dict[str, Any]:
    return {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": 0, "service_tier": "standard", **usage}


def _anthropic_message(rec: ScriptedRequest, action: AnthropicText | AnthropicToolUse) -> dict[str, Any]:
    stop = action.stop_reason if isinstance(action, AnthropicText) else "tool_use"
    return {"id": "msg_01" + _rand(22), "type": "message", "role": "assistant",
            "model": _model(rec, action.model, "claude-scripted"),
            "content": _anthropic_blocks(action), "stop_reason": stop, "stop_sequence": None,
            "usage": _anthropic_usage(action.usage)}


def _anthropic_stream(rec: ScriptedRequest, action: AnthropicText | AnthropicToolUse) -> list[bytes | float]:
    msg = _anthropic_message(rec, action)
    start = {**msg, "content": [], "stop_reason": None,
             "usage": _anthropic_usage({**action.usage, "output_tokens": 1})}
    out: list[bytes | float] = [anthropic_sse({"type": "message_start", "message": start})]
    chunks = action.chunks if isinstance(action, AnthropicText) else 2
    for idx, block in enumerate(msg["content"]):
        if block["type"] == "text":
            out.append(anthropic_sse({"type": "content_block_start", "index": idx,
                                      "content_block": {"type": "text", "text": ""}}))
            if idx == 0:
                out.append(anthropic_sse({"type": "ping"}))
            deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"], chunks)]
        else:
            out.append(anthropic_sse({"type": "content_block_start", "index": idx,
                                      "content_block": {"type": "tool_use", "id": block["id"],
                                                        "name": block["name"], "input": {}}}))
            deltas = [{"type": "input_json_delta", "partial_json": p}
                      for p in ["", *split_text(json.dumps(block["input"]), 3)]]
        for delta in deltas:
            out.append(anthropic_sse({"type": "content_block_delta", "index": idx, "delta": delta}))
        out.append(anthropic_sse({"type": "content_block_stop", "index": idx}))
    out.append(anthropic_sse({"type": "message_delta",
                              "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                              "usage": {"output_tokens": msg["usage"]["output_tokens"]}}))
    out.append(anthropic_sse({"type": "message_stop"}))
    return out


def _first_event(rec: ScriptedRequest) -> bytes:
    if "chat/completions" in rec.path:
        return openai_sse(openai_chunk({"role": "assistant", "content": ""},
                                       model=_model(rec, None, "scripted-model")))
    msg = _anthropic_message(rec, AnthropicText(""))
    start = {**msg, "content": [], "stop_reason": None}
    return anthropic_sse({"type": "message_start", "message": start})


def _auto(rec: ScriptedRequest, action: Auto) -> Any:
    path = rec.path.split("?", 1)[0]
    if path.endswith("/chat/completions"):
        return OpenAIText(action.text)
    if path.endswith("/count_tokens"):
        return Status(200, {"input_tokens": max(1, len(rec.body) // 4)})
    if path.endswith("/messages"):
        return AnthropicText(action.text)
    if path.endswith("/models"):
        return Status(200, {"object": "list", "data": []})
    return Status(404, {"error": {"message": f"no route for {path}", "type": "not_found"}})


def _abort(request: web.Request) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), not an orderly FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # the asyncio Server aiohttp created for this site
    assert server is not None
    return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


def sse_data(raw: bytes) -> Iterator[str]:
    """The ``data:`` payloads of an SSE body, in order (for assertions on raw streams)."""
    for frame in raw.decode().split("\n\n"):
        for line in frame.split("\n"):
            if line.startswith("data:"):
                yield line[5:].strip()

