"""Translated exchanges: Anthropic in, OpenAI Chat Completions out, Anthropic back.

The protocol work is done by the sans-IO translators in ``ccgate.translate``; this module
only moves bytes: it sends the translated request, turns an upstream error into an
Anthropic error *before* anything reached the client (so it is a real HTTP status), and
pumps the upstream SSE through the ``StreamTranslator``, sending a ping whenever the
upstream has been silent for ``ping_interval`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import msgspec

from ccgate.errors import GatewayError, InvalidRequest, UpstreamError
from ccgate.server.asgi import Send
from ccgate.server.forward import Exchange
from ccgate.translate import (
    Quirks,
    StreamTranslator,
    TranslatedRequest,
    stream_from_response,
    translate_response,
    translate_upstream_error,
)
from ccgate.upstream.transport import UpstreamTransport
from ccgate.wire.sse import SSEDecoder, encode_events

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class UpstreamProtocolError(UpstreamError):
    """The provider answered 200 with something that is not a chat completion."""

    status = 502
    error_type = "api_error"
    retryable = False


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
    transport: UpstreamTransport, status: int, body: bytes, headers: Mapping[str, str]
) -> GatewayError:
    """An OpenAI-style error answer as the Anthropic error the client gets. Providers echo
    the key they rejected, so the gateway's own keys are redacted from the message."""
    return translate_upstream_error(
        status, body, provider=transport.name, headers=headers,
        redact=[key.value for key in transport.keys],
    )


async def relay_translated(
    transport: UpstreamTransport,
    response: aiohttp.ClientResponse,
    request: TranslatedRequest,
    client_model: str,
    send: Send,
    ex: Exchange,
    ping_interval: float,
    quirks: Quirks,
) -> None:
    """Answer the client from a 2xx chat completion (JSON or SSE); closes ``response``.

    Error statuses never get here: the dispatcher reads and classifies them first.
    """
    upstream_streams = response.headers.get("content-type", "").startswith("text/event-stream")
    if request.stream and upstream_streams:
        await _relay_stream(transport, response, request, client_model, send, ex, ping_interval, quirks)
        return
    try:
        raw = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transport.failure(exc, "read") from exc
    finally:
        response.release()
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
        raise upstream_error(transport, 200, raw, response.headers)
    ex.status = 200
    if request.stream:
        # The provider was asked not to stream (Quirks.stream_with_tools): build the stream here.
        events = stream_from_response(
            data, model=client_model, tools=request.tools,
            input_tokens_estimate=request.input_tokens_estimate, provider=transport.name,
            reasoning_fields=quirks.reasoning_fields,
        )
        ex.streaming = True
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        ex.started = True
        body = encode_events(events)
        _note_usage(ex, events)
    else:
        message = translate_response(
            data, model=client_model, tools=request.tools,
            input_tokens_estimate=request.input_tokens_estimate, provider=transport.name,
            reasoning_fields=quirks.reasoning_fields,
        )
        ex.usage = message.get("usage")
        body = _json.encode(message)
        headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        ex.started = True
    ex.bytes_out += len(body)
    ex.finished = True
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _relay_stream(
    transport: UpstreamTransport,
    response: aiohttp.ClientResponse,
    request: TranslatedRequest,
    client_model: str,
    send: Send,
    ex: Exchange,
    ping_interval: float,
    quirks: Quirks,
) -> None:
    translator = StreamTranslator(
        model=client_model, tools=request.tools, input_tokens_estimate=request.input_tokens_estimate,
        provider=transport.name, reasoning_fields=quirks.reasoning_fields,
    )
    decoder = SSEDecoder()
    complete = False
    ex.status, ex.streaming = 200, True
    silence = SilenceWatch(ping_interval)
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        ex.started = True
        await _emit(send, ex, translator.start())
        while not translator.finished:
            try:
                chunk = await silence.read(response.content)
            except (aiohttp.ClientError, TimeoutError) as exc:
                err = transport.failure(exc, "read")
                ex.error = f"upstream broke mid-stream: {err.message}"
                ex.upstream_broke = True
                await _emit(send, ex, translator.fail(err.error_type, err.message))
                break
            if chunk is None:
                await _emit(send, ex, translator.ping())
                continue
            eof = not chunk
            events: list[tuple[str, dict[str, Any]]] = []
            for event in decoder.close() if eof else decoder.feed(chunk):
                if event.data == "[DONE]":
                    events.extend(translator.finish())
                    complete = True
                    break
                try:
                    payload = _decode.decode(event.data)
                except msgspec.DecodeError:
                    message = f"provider {transport.name!r} sent a malformed stream chunk"
                    ex.error = message
                    events.extend(translator.fail("api_error", message))
                    break
                if isinstance(payload, dict):
                    events.extend(translator.feed(payload))
                if translator.finished:
                    break
            if eof and not translator.finished:
                # Cut off before [DONE] or a finish reason: an error, not a quiet end_turn.
                events.extend(translator.finish(truncated=True))
                complete = True
            if events:
                await _emit(send, ex, events)
        ex.finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        silence.close()
        if complete:
            response.release()
        else:
            response.close()


class SilenceWatch:
    """Interrupts the relay's wait for upstream bytes after ``interval`` seconds of silence, so
    a ping goes out (Claude Code and proxies drop a stream that says nothing for too long).

    One timer per stream, re-armed lazily when it fires: a read only stamps the time. (An
    ``asyncio.timeout`` around each read set and cancelled a timer per chunk.) The interrupt
    is a cancel of the relay task, delivered only while it is parked in ``read``.
    """

    def __init__(self, interval: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._interval = interval
        self._last = self._loop.time()
        self._reading = False
        self._fired = False
        self._handle = self._loop.call_at(self._last + interval, self._check)

    async def read(self, content: aiohttp.StreamReader) -> bytes | None:
        """``content.readany()``, or None when the upstream stayed silent for the interval."""
        self._reading = True
        try:
            chunk = await content.readany()
        except asyncio.CancelledError:
            if not self._fired:
                raise
            self._fired = False
            self._last = self._loop.time()
            if self._task.uncancel() > 0:
                raise  # cancelled by someone else as well (the client went away)
            return None
        finally:
            self._reading = False
        self._last = self._loop.time()
        return chunk

    def close(self) -> None:
        self._handle.cancel()

    def _check(self) -> None:
        now = self._loop.time()
        due = self._last + self._interval
        if now >= due:
            if self._reading and not self._fired:
                self._fired = True
                self._task.cancel()
            due = now + self._interval
        self._handle = self._loop.call_at(due, self._check)


def _note_usage(ex: Exchange, events: list[tuple[str, dict[str, Any]]]) -> None:
    for name, data in events:
        if name == "message_delta" and "usage" in data:
            ex.usage = data["usage"]
        elif name == "error":
            ex.error = str(data.get("error", {}).get("message"))


async def _emit(send: Send, ex: Exchange, events: list[tuple[str, dict[str, Any]]]) -> None:
    if not events:
        return
    body = encode_events(events)
    _note_usage(ex, events)
    ex.bytes_out += len(body)
    await send({"type": "http.response.body", "body": body, "more_body": True})
