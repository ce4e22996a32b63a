"""Relay one request to a provider and its answer back, unbuffered.

Request: the body goes as received (unless a model rewrite applies); end-to-end headers
pass, hop-by-hop headers do not; client credentials are swapped for the provider key
unless the provider runs bring-your-own-key. Response: status, headers (minus hop-by-hop)
and body bytes reach the client as they arrive, so upstream errors arrive unchanged and
SSE pings flow through.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import msgspec

from ccgate.errors import UpstreamError
from ccgate.server.asgi import Receive, Scope, Send
from ccgate.upstream.transport import UpstreamTransport

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
        "content-length",
    }
)
CREDENTIALS = frozenset({"x-api-key", "authorization"})
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
    finished: bool = field(default=False, repr=False)


def outgoing_headers(scope: Scope, transport: UpstreamTransport) -> list[tuple[str, str]]:
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    listed = {b"connection"}
    for name, value in raw:
        if name == b"connection":
            listed.update(t.strip().lower() for t in value.split(b","))
    drop_credentials = not transport.byok
    out: list[tuple[str, str]] = []
    for name, value in raw:
        key = name.decode("latin-1")
        if key in HOP_BY_HOP or name in listed:
            continue
        if drop_credentials and key in CREDENTIALS:
            continue
        out.append((key, value.decode("latin-1")))
    out.extend(transport.credential_headers().items())
    return out


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[None], ex: Exchange) -> None:
    # The body has been read, so the next ASGI message is the disconnect (or the end of
    # our own response, which `finished` tells apart).
    message = await receive()
    if message["type"] == "http.disconnect" and not ex.finished:
        ex.client_gone = True
        task.cancel()


async def forward(
    transport: UpstreamTransport,
    method: str,
    path_and_query: str,
    scope: Scope,
    body: bytes,
    receive: Receive,
    send: Send,
) -> Exchange:
    """Relay the exchange. Raises UpstreamError only before the response has started."""
    ex = Exchange()
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.create_task(_cancel_on_disconnect(receive, task, ex))
    try:
        await _relay(transport, method, path_and_query, scope, body, send, ex)
    except asyncio.CancelledError:
        if not ex.client_gone:
            raise
        task.uncancel()
        ex.error = "client disconnected"
    finally:
        ex.finished = True
        watcher.cancel()
    return ex


async def _relay(
    transport: UpstreamTransport,
    method: str,
    path_and_query: str,
    scope: Scope,
    body: bytes,
    send: Send,
    ex: Exchange,
) -> None:
    response = await transport.send(method, path_and_query, outgoing_headers(scope, transport), body)
    complete = False
    try:
        headers = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in _RESPONSE_DROP]
        content_type = response.headers.get("content-type", "")
        ex.streaming = content_type.startswith("text/event-stream")
        ex.status = response.status
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        try:
            async for chunk in response.content.iter_any():
                ex.bytes_out += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, TimeoutError) as exc:
            err: UpstreamError = transport.failure(exc, "read")
            ex.error = f"upstream broke mid-response: {err.message}"
            if ex.streaming:
                # Headers are gone; tell an SSE client in-band, the way Anthropic does.
                await send({"type": "http.response.body", "body": _sse_error(err), "more_body": True})
        else:
            complete = True
        ex.finished = True
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


def _sse_error(err: UpstreamError) -> bytes:
    data = msgspec.json.encode(
        {"type": "error", "error": {"type": err.error_type, "message": err.message}}
    )
    return b"event: error\ndata: " + data + b"\n\n"
