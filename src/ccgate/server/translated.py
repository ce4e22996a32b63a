"""Translated exchanges: Anthropic in, OpenAI Chat Completions out, Anthropic back.

The protocol work is done by the sans-IO translators in ``ccgate.translate``; this module
only moves bytes: it sends the translated request, turns an upstream error into an
Anthropic error *before* anything reached the client (so it is a real HTTP status), and
feeds the upstream's SSE bytes to ``translate.StreamPipeline``, sending a ping whenever the
upstream has been silent for ``ping_interval`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from ccgate.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamProtocolError
from ccgate.server.exchange import Exchange
from ccgate.server.response import Response
from ccgate.translate import (
    Quirks,
    StreamPipeline,
    StreamTranslator,
    TranslatedRequest,
    stream_from_response,
    translate_response,
    translate_upstream_error,
)
from ccgate.upstream.response import UpstreamResponse
from ccgate.upstream.transport import Transport
from ccgate.wire.sse import encode_events

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_JSON_HEADERS = [(b"content-type", b"application/json")]
# A non-streamed chat completion is read whole before it is translated; a real one is a few
# hundred KiB at most. Larger is refused (502) rather than held: memory must not grow with
# what an upstream chooses to send.
COMPLETION_LIMIT = 16 * 1024 * 1024


def openai_headers(credentials: dict[str, str]) -> list[tuple[str, str]]:
    # Nothing of the client's headers goes on: anthropic-* headers mean nothing to an OpenAI
    # server and the client's credential belongs to ccgate.
    return [("content-type", "application/json"), ("accept", "application/json, text/event-stream"),
            *credentials.items()]


def check_context_window(request: TranslatedRequest, context_window: int | None) -> None:
    """Refuse a prompt the model cannot hold, in the words that make Claude Code compact."""
    if context_window is not None and request.input_tokens_estimate > context_window:
        raise InvalidRequest(
            f"prompt is too long: about {request.input_tokens_estimate} tokens > "
            f"{context_window} maximum (the configured context window of this model)"
        )


def upstream_error(
    transport: Transport, status: int, body: bytes, headers: Mapping[str, str]
) -> GatewayError:
    """An OpenAI-style error answer as the Anthropic error the client gets. Providers echo
    the key they rejected, so the gateway's own keys are redacted from the message."""
    return translate_upstream_error(
        status, body, provider=transport.name, headers=headers,
        redact=[key.value for key in transport.keys],
    )


async def relay_translated(
    transport: Transport, response: UpstreamResponse, request: TranslatedRequest, client_model: str,
    ex: Exchange, ping_interval: float, quirks: Quirks,
) -> None:
    """Answer the client from a 2xx chat completion (JSON or SSE); closes ``response``.

    Error statuses never get here: the dispatcher reads and classifies them first.
    """
    if request.stream and response.is_event_stream:
        await _relay_stream(transport, response, request, client_model, ex, ping_interval, quirks)
        return
    try:
        raw = await _read_completion(transport, response)
    except BaseException:
        response.close()
        raise
    response.release()
    data = _completion(transport, raw, response.headers)
    if not request.stream:
        message = translate_response(
            data, model=client_model, tools=request.tools,
            input_tokens_estimate=request.input_tokens_estimate, provider=transport.name,
            reasoning_fields=quirks.reasoning_fields, emit_thinking=request.thinking,
        )
        ex.usage = message.get("usage")
        model, stop = data.get("model"), message.get("stop_reason")
        ex.response_model = model if isinstance(model, str) else None
        ex.stop_reason = stop if isinstance(stop, str) else None
        body = _json.encode(message)
        await ex.response.whole(
            200, [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), _request_id(ex)], body)
        return
    # The provider was asked not to stream (Quirks.stream_with_tools): build the stream here.
    events = stream_from_response(
        data, model=client_model, tools=request.tools,
        input_tokens_estimate=request.input_tokens_estimate, provider=transport.name,
        reasoning_fields=quirks.reasoning_fields, emit_thinking=request.thinking,
    )
    ex.streaming = True
    for name, payload in events:
        if name == "message_delta" and "usage" in payload:
            ex.usage = payload["usage"]
    await ex.response.whole(200, [*_SSE_HEADERS, _request_id(ex)], encode_events(events))


def _request_id(ex: Exchange) -> tuple[bytes, bytes]:
    """Anthropic's API names every answer with a ``request-id`` header; the gateway's own id
    stands in for it on an answer it built (errors carry it already, errors.to_envelope)."""
    return (b"request-id", ex.request_id.encode())


async def _read_completion(transport: Transport, response: UpstreamResponse) -> bytes:
    """The whole body, refused (502, naming the limit) past ``COMPLETION_LIMIT`` bytes."""
    declared = response.content_length
    too_big = declared is not None and declared > COMPLETION_LIMIT
    raw = b"" if too_big else await response.read(COMPLETION_LIMIT + 1)
    if too_big or len(raw) > COMPLETION_LIMIT:
        raise UpstreamProtocolError(
            f"provider {transport.name!r} answered with a completion larger than the gateway's "
            f"limit of {COMPLETION_LIMIT} bytes (server/translated.py COMPLETION_LIMIT); "
            "ask for a stream or fewer max_tokens", hop="upstream",
        )
    return raw


def _completion(transport: Transport, raw: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object of a 200 chat completion, or the GatewayError it stands for."""
    try:
        data = _decode.decode(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (msgspec.DecodeError, ValueError):
        raise UpstreamProtocolError(
            f"provider {transport.name!r} answered 200 with a body that is not a chat completion "
            f"({raw[:80]!r})", hop="upstream",
        ) from None
    if "error" in data:  # OpenRouter and vLLM can put an error in a 200 body (status in error.code)
        raise upstream_error(transport, 200, raw, headers)
    return data


async def _relay_stream(
    transport: Transport, response: UpstreamResponse, request: TranslatedRequest, client_model: str,
    ex: Exchange, ping_interval: float, quirks: Quirks,
) -> None:
    """Bytes from the provider into ``translate.StreamPipeline``, its events to the client,
    and a ping whenever the client has had nothing for ``ping_interval``.

    The head and ``message_start`` wait for the first thing the client is sent anyway (the
    provider's first events, a ping, an error): one write instead of two (server/protocol.py's
    cork sends the head with the first body write), and a short answer is one write whole. The
    client's wait for them is never longer than the ping interval."""
    pipeline = StreamPipeline(
        StreamTranslator(
            model=client_model, tools=request.tools, input_tokens_estimate=request.input_tokens_estimate,
            provider=transport.name, reasoning_fields=quirks.reasoning_fields,
            emit_thinking=request.thinking,
        ),
        provider=transport.name,
    )
    ex.streaming = True
    relay = _StreamRelay(ex.response, pipeline, _request_id(ex))
    broke: str | None = None
    silence = SilenceWatch(ping_interval)
    read_chunk, feed = response.read_chunk, pipeline.feed_sse
    try:
        while not pipeline.finished:
            try:
                # SilenceWatch.read, inlined: one coroutine fewer per chunk.
                silence.reading = True
                try:
                    chunk = await read_chunk()
                finally:
                    silence.reading = False
            except asyncio.CancelledError:
                if not silence.interrupted():
                    raise
                chunk = None
            except UpstreamError as err:
                ex.upstream_broke = True
                broke = f"upstream broke mid-stream: {err.message}"
                await relay.send(encode_events(pipeline.fail(err.error_type, err.message)), ours=True)
                break
            if chunk is None:
                await relay.send(encode_events(pipeline.ping()), ours=True)
                continue
            data = feed(chunk) if chunk else encode_events(pipeline.close())
            if data:
                silence.sent()
                # Time to first token: not a message_start alone (a first chunk with only the
                # role in it); an error about the provider's answer counts, as its events do.
                ours = not pipeline.beyond_start
                if ours or not relay.write(data):
                    await relay.send(data, ours=ours)
            elif silence.overdue():
                # Bytes arrive but none reach the client (comments, chunks without content):
                # the client still gets its ping, which is no token either.
                await relay.send(encode_events(pipeline.ping()), ours=True)
        await relay.end()
    finally:
        silence.close()
        ex.usage = pipeline.usage
        ex.error = broke or pipeline.error
        if pipeline.complete:
            response.release()
        else:
            response.close()


class _StreamRelay:
    """The client's side of a translated stream: the head and ``message_start`` go out with the
    first events, the stream's last events carry its end (one write, not two), and time to
    first token counts only the provider's events (``message_start`` and pings are ours)."""

    __slots__ = ("_head", "_out", "_pipeline", "_started")

    def __init__(self, out: Response, pipeline: StreamPipeline, request_id: tuple[bytes, bytes]) -> None:
        self._out = out
        self._pipeline = pipeline
        self._head = [*_SSE_HEADERS, request_id]
        self._started = False

    async def send(self, data: bytes, *, ours: bool) -> None:
        """Encoded events to the client; ``ours``: none of them is the provider's (a ping, an
        error the gateway words, ``message_start``), so they do not stop the time to first
        token."""
        out = self._out
        if not self._started:
            self._started = True
            await out.start(200, self._head)
            data = encode_events(self._pipeline.start()) + data
        if not data:
            return
        waiting = not out.first_byte_at
        # Straight to the connection when the server offers it (Response.write); the stream's
        # last events carry its end, so they go through body(): one write, not two.
        finished = self._pipeline.finished
        if finished or not out.write(data):
            await out.body(data, more=not finished)
        if ours and waiting:
            out.first_byte_at = 0.0

    def write(self, data: bytes) -> bool:
        """``send(data, ours=False)`` when that needs no await (the head is out, the stream
        goes on, the connection takes it now: ``Response.write``); False when nothing was
        done: ``send`` it. Most chunks of a stream go this way, without a coroutine."""
        return self._started and not self._pipeline.finished and self._out.write(data)

    async def end(self) -> None:
        if not self._started:  # nothing at all was sent (cannot happen: the pipeline ends with events)
            await self.send(b"", ours=True)
        if not self._out.finished:
            await self._out.body(b"", more=False)


class SilenceWatch:
    """Interrupts the relay's wait for upstream bytes after ``interval`` seconds in which the
    *client* got nothing, so a ping goes out (Claude Code and proxies drop a stream that says
    nothing for too long). Keyed on what the client receives (``sent()``), not on what the
    upstream sends: an upstream sending only comments or empty chunks still means silence.

    One timer per stream, re-armed lazily when it fires: sending only stamps the time. (An
    ``asyncio.timeout`` around each read set and cancelled a timer per chunk.) The interrupt
    is a cancel of the relay task, delivered only while it is parked in ``read`` (or in its
    own await with ``reading`` set, as the relay does); a relay busy with chunks that give the
    client nothing asks ``overdue()`` instead.
    """

    def __init__(self, interval: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._loop = task.get_loop()  # not get_running_loop(): a getpid() syscall each, on 3.11
        self._interval = interval
        self._last = self._loop.time()
        self.reading = False  # the task is parked in the upstream read: it may be interrupted
        self._fired = False
        self._handle = self._loop.call_at(self._last + interval, self._check)

    async def read(self, read_chunk: Callable[[], Awaitable[bytes]]) -> bytes | None:
        """``read_chunk()``, or None when the upstream stayed silent for the interval. (The
        relay inlines this: ``reading`` set around its await, ``interrupted()`` on a cancel.)"""
        self.reading = True
        try:
            chunk = await read_chunk()
        except asyncio.CancelledError:
            if not self.interrupted():
                raise
            return None
        finally:
            self.reading = False
        return chunk

    def interrupted(self) -> bool:
        """On a ``CancelledError`` out of the read: True when it was this watch's interrupt
        alone (the clock restarts, as a ping goes out); False when it must propagate (someone
        else cancelled the task too: the client went away)."""
        if not self._fired:
            return False
        self._fired = False
        self._last = self._loop.time()
        return self._task.uncancel() == 0

    def sent(self) -> None:
        """The client was just sent something."""
        self._last = self._loop.time()

    def overdue(self) -> bool:
        """True (and the clock restarted, as a ping goes out) when the client has had nothing
        for the interval."""
        now = self._loop.time()
        if now - self._last < self._interval:
            return False
        self._last = now
        return True

    def close(self) -> None:
        self._handle.cancel()

    def _check(self) -> None:
        now = self._loop.time()
        due = self._last + self._interval
        if now >= due:
            if self.reading and not self._fired:
                self._fired = True
                self._task.cancel()
            due = now + self._interval
        self._handle = self._loop.call_at(due, self._check)

