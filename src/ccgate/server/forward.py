"""Passthrough: relay one request to a provider and its answer back, unchanged.

Request: the body goes as received (unless a model rewrite applies); end-to-end headers
pass, hop-by-hop headers do not; client credentials are swapped for the provider key
unless the provider runs bring-your-own-key. Response: status, headers (minus hop-by-hop)
and body bytes go back unchanged, so upstream errors arrive as the provider worded them.
A stream (or a body of unknown or large size) is relayed chunk by chunk as it arrives, so
SSE pings flow through; a non-streamed answer of known length up to ``WHOLE_BODY_LIMIT``
is read whole first (``_relay_whole``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from ccgate.errors import GatewayError, UpstreamError
from ccgate.server.asgi import Receive, Scope, Send
from ccgate.upstream.transport import UpstreamTransport
from ccgate.wire.usage import READABLE_ENCODINGS, UsageTap

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
        "content-length",
    }
)
CREDENTIALS = frozenset({"x-api-key", "authorization"})
# The same as raw ASGI header names, for the per-request filter.
_DROP = frozenset(name.encode() for name in HOP_BY_HOP)
_DROP_WITH_CREDENTIALS = _DROP | frozenset(name.encode() for name in CREDENTIALS)
# Seconds an exchange runs before a task starts watching for the client's disconnect.
WATCH_AFTER = 0.05
# Non-streamed answers up to this size are read whole before they are sent (``_relay_whole``).
WHOLE_BODY_LIMIT = 1024 * 1024
# Hop-by-hop headers, plus ``date`` because the server adds a fresh one of its own.
_RESPONSE_DROP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-connection", b"te",
     b"trailer", b"transfer-encoding", b"upgrade", b"date"}
)


@dataclass
class Exchange:
    """What happened on one forwarded request, for the access log and metrics."""

    status: int = 0
    bytes_out: int = 0
    streaming: bool = False
    client_gone: bool = False
    error: str | None = None
    # The response head went to the client: from here on nothing may be retried.
    started: bool = False
    # Read usage out of the relayed answer (usage recording or a key's tokens-per-minute).
    count_usage: bool = False
    # Anthropic usage of the answer, when known (recorded per key, model and provider).
    usage: dict[str, Any] | None = None
    # The provider that answered, and every attempt on the way ("anthropic#0 529, ...").
    provider: str | None = None
    trail: str = ""
    # The upstream broke the response after it started (counts against its breaker).
    upstream_broke: bool = False
    finished: bool = field(default=False, repr=False)


def outgoing_headers(
    scope: Scope, transport: UpstreamTransport, credentials: dict[str, str], *, forward_client: bool = True,
    readable_encoding: bool = False,
) -> list[tuple[str, str]]:
    """The client's end-to-end headers, with its credential replaced by ``credentials`` (or
    kept, for a bring-your-own-key provider when the client did not authenticate to us).

    ``readable_encoding``: the gateway reads usage out of the answer, so ``accept-encoding``
    is narrowed to the encodings ``UsageTap`` can inflate (a subset of what the client
    accepts, so the client still reads the answer it gets).
    """
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    drop = _DROP_WITH_CREDENTIALS if not (transport.byok and forward_client) else _DROP
    for name, value in raw:
        if name == b"connection":  # and the headers it lists are hop-by-hop too
            drop = drop | {t.strip().lower() for t in value.split(b",")}
    out = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw if name not in drop]
    if readable_encoding:
        out = [(name, readable_codings(value)) if name == "accept-encoding" else (name, value)
               for name, value in out]
    out.extend(credentials.items())
    return out


def readable_codings(accept_encoding: str) -> str:
    """``gzip, deflate, br, zstd`` -> ``gzip, deflate``; nothing readable left -> ``identity``."""
    kept = [part.strip() for part in accept_encoding.split(",")
            if part.split(";")[0].strip().lower() in (*READABLE_ENCODINGS, "identity")]
    return ", ".join(kept) or "identity"


def response_headers(
    response: aiohttp.ClientResponse, *, keep_length: bool = False
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers minus hop-by-hop ones (and its length, unless kept)."""
    drop = _RESPONSE_DROP if keep_length else _RESPONSE_DROP | {b"content-length"}
    return [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in drop]


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any], ex: Exchange) -> None:
    # The body has been read, so the next ASGI message is the disconnect (or the end of
    # our own response, which `finished` tells apart).
    message = await receive()
    if message["type"] == "http.disconnect" and not ex.finished:
        ex.client_gone = True
        task.cancel()


async def watch_disconnect(receive: Receive, ex: Exchange, work: Awaitable[None]) -> Exchange:
    """Run ``work`` (the whole upstream exchange), cancelling it if the client goes away.

    Cancelling closes the upstream response, which is what tells the provider to stop
    generating. Raises what ``work`` raises (an UpstreamError before the response started).
    The watcher task starts only once the exchange has run ``WATCH_AFTER`` seconds: most
    quick exchanges never pay for it, and a generation worth stopping lasts far longer.
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    watcher: asyncio.Task[None] | None = None

    def start_watching() -> None:
        nonlocal watcher
        if not ex.finished:
            watcher = loop.create_task(_cancel_on_disconnect(receive, task, ex))

    timer = loop.call_later(WATCH_AFTER, start_watching)
    try:
        await work
    except asyncio.CancelledError:
        if not ex.client_gone:
            raise
        task.uncancel()
        ex.error = "client disconnected"
    finally:
        ex.finished = True
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
    return ex


async def relay_passthrough(
    transport: UpstreamTransport, response: aiohttp.ClientResponse, send: Send, ex: Exchange
) -> None:
    """Relay status, headers and body as they arrive; closes or releases ``response``."""
    complete = False
    try:
        headers = response_headers(response, keep_length=True)
        content_type = response.headers.get("content-type", "")
        ex.streaming = content_type.startswith("text/event-stream")
        ex.status = response.status
        length = response.content_length
        if not ex.streaming and length is not None and length <= WHOLE_BODY_LIMIT:
            complete = await _relay_whole(transport, response, headers, send, ex)
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        ex.started = True
        tap = (UsageTap(sse=ex.streaming, encoding=response.headers.get("content-encoding"))
               if ex.count_usage and response.status < 400 else None)
        try:
            async for chunk in response.content.iter_any():
                ex.bytes_out += len(chunk)
                if tap is not None:
                    tap.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, TimeoutError) as exc:
            err: UpstreamError = transport.failure(exc, "read")
            ex.error = f"upstream broke mid-response: {err.message}"
            ex.upstream_broke = True
            if ex.streaming:
                # Headers are gone; tell an SSE client in-band, the way Anthropic does.
                await send({"type": "http.response.body", "body": sse_error(err), "more_body": True})
        else:
            complete = True
        ex.finished = True
        if tap is not None:
            ex.usage = tap.result()
        if complete or ex.streaming:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        # else: a JSON body cut short by the upstream; ending without the final message makes
        # the server close the connection, so the client sees a truncated response, not a
        # well-formed but wrong one.
    finally:
        # A fully read response returns its connection to the pool; anything else (client
        # gone, upstream broken) closes it, which is what cancels the upstream request.
        if complete:
            response.release()
        else:
            response.close()


async def _relay_whole(
    transport: UpstreamTransport, response: aiohttp.ClientResponse, headers: list[tuple[bytes, bytes]],
    send: Send, ex: Exchange,
) -> bool:
    """A complete answer of known, modest length: read it, then send head and body together.

    A JSON answer is useless to its client until its last byte anyway; holding it saves a
    send and an event-loop round per request, and an upstream that breaks mid-body becomes a
    clean 502 envelope instead of a truncated response.
    """
    try:
        body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        ex.upstream_broke = True
        ex.status = 0
        raise transport.failure(exc, "read") from exc
    if ex.count_usage and response.status < 400:
        tap = UsageTap(sse=False, encoding=response.headers.get("content-encoding"))
        tap.feed(body)
        ex.usage = tap.result()
    ex.finished = True
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    ex.started = True
    ex.bytes_out += len(body)
    await send({"type": "http.response.body", "body": body, "more_body": False})
    return True


def sse_error(err: GatewayError) -> bytes:
    data = msgspec.json.encode(
        {"type": "error", "error": {"type": err.error_type, "message": err.message}}
    )
    return b"event: error\ndata: " + data + b"\n\n"
