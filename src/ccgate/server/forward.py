"""Passthrough: relay one request to a provider and its answer back, unchanged.

Request: the body goes as received (unless a model rewrite applies); end-to-end headers
pass, hop-by-hop headers do not; client credentials are swapped for the provider key
unless the provider runs bring-your-own-key, or the client brings its own Anthropic
credential (gateway key in ``x-ccgate-key``) to a ``kind: anthropic`` provider. Response:
status, headers (minus hop-by-hop) and body bytes go back unchanged, so upstream errors
arrive as the provider worded them (an error body is held first, and a configured key it
quotes is redacted: ``dispatch.redact_held``). ``Expect`` is answered here, never forwarded.
A stream (or a body of unknown or large size) is relayed chunk by chunk as it arrives, so
SSE pings flow through; a non-streamed answer of known length up to ``WHOLE_BODY_LIMIT``
is read whole first (``_relay_whole``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import msgspec

from ccgate.errors import GatewayError, UpstreamError
from ccgate.server.asgi import RawHeaders, Scope
from ccgate.server.auth import CCGATE_KEY_HEADER
from ccgate.server.exchange import Exchange
from ccgate.upstream.response import UpstreamResponse
from ccgate.upstream.transport import Transport
from ccgate.wire.usage import READABLE_ENCODINGS, UsageTap

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
        "content-length",
    }
)
CREDENTIALS = frozenset({"x-api-key", "authorization"})
# The same as raw ASGI header names, for the per-request filter. The gateway credential's own
# header (``x-ccgate-key``) is ours alone: it never goes upstream, whatever the provider.
#
# ``expect`` too: ``100-continue`` is between the client and us, and the server has answered
# it already (uvicorn sends 100 when the app first reads the body), so by the time a request
# goes upstream its body is complete. Forwarded, an upstream that never sends 100 would make
# the transport wait for it past the read timeout.
_DROP = frozenset(name.encode() for name in HOP_BY_HOP) | {CCGATE_KEY_HEADER, b"expect"}
_DROP_WITH_CREDENTIALS = _DROP | frozenset(name.encode() for name in CREDENTIALS)
# Non-streamed answers up to this size are read whole before they are sent (``_relay_whole``).
WHOLE_BODY_LIMIT = 1024 * 1024
# Hop-by-hop headers, plus ``date`` because the server adds a fresh one of its own.
_RESPONSE_DROP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-connection", b"te",
     b"trailer", b"transfer-encoding", b"upgrade", b"date"}
)
_RESPONSE_DROP_LENGTH = _RESPONSE_DROP | {b"content-length"}


def outgoing_headers(
    scope: Scope, transport: Transport, credentials: dict[str, str], *, forward_client: bool = True,
    readable_encoding: bool = False, forward_beta: bool = True, own_credential: bool = False,
) -> list[tuple[str, str]]:
    """The client's end-to-end headers, with its credential replaced by ``credentials`` (or
    kept, for a bring-your-own-key provider when the client did not authenticate to us).

    ``own_credential``: the client sent the gateway key in ``x-ccgate-key``, so its
    ``Authorization``/``x-api-key`` are its own Anthropic credential (a Claude subscription's
    OAuth token, say). They go byte for byte to a ``kind: anthropic`` provider only (the
    caller then passes no ``credentials``); any other provider gets its own key instead, so
    an Anthropic token never reaches a third party.

    ``readable_encoding``: the gateway reads usage out of the answer, so ``accept-encoding``
    is narrowed to the encodings ``UsageTap`` can inflate (a subset of what the client
    accepts, so the client still reads the answer it gets). ``forward_beta`` False drops
    ``anthropic-beta`` (an Anthropic-compatible provider that rejects betas it does not know).
    """
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    if own_credential:
        keep_client_credential = transport.provider.kind == "anthropic"
    else:
        keep_client_credential = transport.byok and forward_client
    drop = _DROP if keep_client_credential else _DROP_WITH_CREDENTIALS
    if not forward_beta:
        drop = drop | {b"anthropic-beta"}
    for name, value in raw:
        if name == b"connection":  # and the headers it lists are hop-by-hop too
            drop = drop | {t.strip().lower() for t in value.split(b",")}
    # One pass, the common case first (a Claude Code request has ~25 headers: this is per request).
    out: list[tuple[str, str]] = []
    add = out.append
    for name, value in raw:
        if name in drop:
            continue
        if readable_encoding and name == b"accept-encoding":
            add(("accept-encoding", _readable(value)))
        else:
            add((name.decode("latin-1"), value.decode("latin-1")))
    out.extend(credentials.items())
    return out


_readable_seen: dict[bytes, str] = {}  # a client sends the same accept-encoding every time


def _readable(accept_encoding: bytes) -> str:
    known = _readable_seen.get(accept_encoding)
    if known is None:
        known = readable_codings(accept_encoding.decode("latin-1"))
        if len(_readable_seen) < 64:  # bounded: the values are the client's
            _readable_seen[accept_encoding] = known
    return known


def readable_codings(accept_encoding: str) -> str:
    """``gzip, deflate, br, zstd`` -> ``gzip, deflate``; nothing readable left -> ``identity``."""
    kept = [part.strip() for part in accept_encoding.split(",")
            if part.split(";")[0].strip().lower() in (*READABLE_ENCODINGS, "identity")]
    return ", ".join(kept) or "identity"


def response_headers(response: UpstreamResponse, *, keep_length: bool = False) -> RawHeaders:
    """The upstream's response headers minus hop-by-hop ones (and its length, unless kept)."""
    drop = _RESPONSE_DROP if keep_length else _RESPONSE_DROP_LENGTH
    return [(name, v) for k, v in response.raw_headers if (name := k.lower()) not in drop]


def relay_passthrough(response: UpstreamResponse, ex: Exchange) -> Awaitable[None]:
    """Relay status, headers and body as they arrive; closes or releases ``response``.

    A plain function handing back the relay to await: a stream's await chain (held by every
    open stream for its whole life) is one frame shorter."""
    try:
        headers = response_headers(response, keep_length=True)
        ex.streaming = response.is_event_stream
        length = response.content_length
    except BaseException:
        response.close()
        raise
    if not ex.streaming and length is not None and length <= WHOLE_BODY_LIMIT:
        return _relay_whole(response, headers, ex)
    return _relay_chunks(response, headers, ex)


def _done(response: UpstreamResponse, complete: bool) -> None:
    # A fully read response returns its connection to the pool; anything else (client gone,
    # upstream broken) closes it, which is what cancels the upstream request.
    if complete:
        response.release()
    else:
        response.close()


async def _relay_chunks(response: UpstreamResponse, headers: RawHeaders, ex: Exchange) -> None:
    """Each chunk as it arrives (streams, large or unsized bodies)."""
    complete = False
    try:
        out = ex.response
        await out.start(response.status, headers)
        del headers  # sent: not held for the rest of the stream
        tap = (UsageTap(sse=ex.streaming, encoding=response.headers.get("content-encoding"))
               if ex.count_usage and response.status < 400 else None)
        try:
            # Per chunk: one read, the tap's look, one write (``Response.write``: straight to
            # the connection when the server offers it, else an ASGI message).
            while chunk := await response.read_chunk():
                if tap is not None:
                    tap.feed(chunk)
                if not out.write(chunk):
                    await out.body(chunk, more=True)
        except UpstreamError as err:
            ex.error = f"upstream broke mid-response: {err.message}"
            ex.upstream_broke = True
            if tap is not None:
                _took(ex, tap)
            if not ex.streaming:
                # A JSON body cut short: no final message, so the client sees a truncated
                # response, not a well-formed but wrong one.
                out.abandon()
                return
            # Headers are gone; tell an SSE client in-band, the way Anthropic does.
            await out.body(sse_error(err), more=False)
            return
        except asyncio.CancelledError:
            # The client left mid-stream: the provider bills what it read (message_start's
            # input and cache tokens, and any output already counted), so the usage row and
            # the key's budget get what the stream said so far, not nothing.
            if tap is not None:
                _took(ex, tap)
            raise
        if tap is not None:
            _took(ex, tap)
        await out.body(b"", more=False)
        complete = True
    finally:
        _done(response, complete)


async def _relay_whole(response: UpstreamResponse, headers: RawHeaders, ex: Exchange) -> None:
    """A complete answer of known, modest length: read it, then send head and body together.

    A JSON answer is useless to its client until its last byte anyway; holding it saves a
    send and an event-loop round per request, and an upstream that breaks mid-body becomes a
    clean 502 envelope instead of a truncated response.
    """
    complete = False
    try:
        try:
            body = await response.read()
        except UpstreamError:
            ex.upstream_broke = True
            raise
        if ex.count_usage and response.status < 400:
            tap = UsageTap(sse=False, encoding=response.headers.get("content-encoding"))
            tap.feed(body)
            _took(ex, tap)
        await ex.response.whole(response.status, headers, body)
        complete = True
    finally:
        _done(response, complete)


def _took(ex: Exchange, tap: UsageTap) -> None:
    ex.usage = tap.result()
    ex.response_model, ex.stop_reason = tap.model, tap.stop_reason


def sse_error(err: GatewayError) -> bytes:
    data = msgspec.json.encode(
        {"type": "error", "error": {"type": err.error_type, "message": err.message}}
    )
    return b"event: error\ndata: " + data + b"\n\n"
