"""One HTTP response over ASGI ``send``, with its lifecycle in one place.

Like uvicorn's ``send()``, this is the only writer of the response's state: the status sent,
whether the head has gone out (from then on nothing may be retried or turned into an error
envelope), the body bytes sent, and whether the final message is on its way (from then on a
disconnect is the normal end of the exchange, not the client going away). Handlers and relays
call it and never set those facts by hand; the access log and metrics read them from here.

A stream's body pieces, and a whole answer of known length, may go out through the server's
``ClientLink`` instead (``write``, ``whole``: no ASGI message, no await; server/protocol.py),
when the gateway runs on its own server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from ccgate.errors import GatewayError, to_envelope
from ccgate.server.asgi import RawHeaders, Scope, Send

log = logging.getLogger("ccgate")

_JSON = (b"content-type", b"application/json")
# Where the gateway's own server puts a request's ``ClientLink`` (= server.protocol.LINK).
LINK = "ccgate.link"


class ClientLink(Protocol):
    """What ``server.protocol.ClientLink`` offers (this side of it: server/ does not import
    uvicorn outside protocol.py)."""

    gone: bool
    on_lost: Callable[[], None] | None

    def write_body(self, data: bytes) -> bool: ...

    def write_whole(self, status: int, headers: RawHeaders, body: bytes) -> bool: ...


def client_link(scope: Scope) -> ClientLink | None:
    """The request's link to its connection, when the server is the gateway's own."""
    extensions = scope.get("extensions")
    return extensions.get(LINK) if extensions else None


class Response:
    __slots__ = ("_send", "bytes_out", "finished", "first_byte_at", "link", "started", "status")

    def __init__(self, send: Send, link: ClientLink | None = None) -> None:
        self._send = send
        self.link = link
        self.status = 0  # what the client was sent; 0 while nothing was
        self.started = False
        self.finished = False
        self.bytes_out = 0
        # perf_counter() when the first body byte was sent (time to first token); a relay that
        # sends bytes of its own first (a translated stream's message_start) sets it back to 0.
        self.first_byte_at = 0.0

    async def start(self, status: int, headers: RawHeaders) -> None:
        """Send the head; the body follows with ``body()``."""
        self.status = status
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, *, more: bool) -> None:
        if not self.first_byte_at and data:
            self.first_byte_at = time.perf_counter()
        self.bytes_out += len(data)
        if not more:
            self.finished = True  # set before the await: the server may report the end at once
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    def write(self, data: bytes) -> bool:
        """A body piece straight to the connection, more to follow (``ClientLink.write_body``);
        False when that cannot be done now: send it with ``body()``. A stream's chunk this way
        costs two calls and a framed write instead of an ASGI message and two awaits."""
        link = self.link
        if link is None or not link.write_body(data):
            return False
        if not self.first_byte_at:
            self.first_byte_at = time.perf_counter()
        self.bytes_out += len(data)
        return True

    async def whole(self, status: int, headers: RawHeaders, body: bytes = b"", *,
                    head_only: bool = False) -> None:
        """A complete response, head and body: straight to the connection when the server
        offers it (``ClientLink.write_whole``: one write, no ASGI message), else two messages."""
        self.finished = True
        link = self.link
        if link is not None and not head_only and link.write_whole(status, headers, body):
            self.status = status
            self.started = True
            if body and not self.first_byte_at:
                self.first_byte_at = time.perf_counter()
            self.bytes_out += len(body)
            return
        await self.start(status, headers)
        await self.body(b"" if head_only else body, more=False)

    async def json(self, status: int, body: bytes, *, head_only: bool = False) -> None:
        await self.whole(status, [_JSON, (b"content-length", str(len(body)).encode())], body,
                         head_only=head_only)

    async def error(self, err: GatewayError, request_id: str) -> None:
        """The Anthropic error envelope for ``err`` (errors.to_envelope). Once the head has
        gone out there is no way to send one: the connection is ended instead."""
        if self.started:
            log.warning("error after the response started (request %s): %s", request_id, err.message)
            self.abandon()
            return
        status, headers, body = to_envelope(err, request_id)
        headers.append((b"content-length", str(len(body)).encode()))
        await self.whole(status, headers, body)

    def abandon(self) -> None:
        """End without the final body message: the server closes the connection, so the client
        sees a truncated response rather than a well-formed but wrong one."""
        self.finished = True


__all__ = ["LINK", "ClientLink", "Response", "client_link"]
