"""HTTP/1.1 on the wire for ccgate's own upstream client (``upstream/h1.py``), without I/O.

``request_head`` frames a request; ``ResponseParser`` takes the bytes of a keep-alive
connection as they arrive (httptools, i.e. llhttp, does the parsing) and exposes the answer
as state: head done, status, headers, body pieces, complete, reusable. The asyncio side feeds
it and reads that state, as h11's ``receive_data``/``next_event`` split works, so everything
here is tested without a socket.

The exceptions are what the client raises; ``upstream/failures.classify_failure`` turns them
into the same ``UpstreamError`` messages and hops as aiohttp's.
"""

from __future__ import annotations

import httptools
from multidict import CIMultiDict

# Status line and headers of one answer; more is a broken or hostile upstream. aiohttp allows
# 128 fields of 8,190 bytes each; every real provider's head is under 4 KiB.
HEAD_LIMIT = 64 * 1024
# Body bytes held unread before the socket stops being read (the provider is then slowed down
# by TCP, as aiohttp's StreamReader does at 2 x 64 KiB).
HIGH_WATER = 128 * 1024
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FRAMING = ("\ncontent-length:", "\ntransfer-encoding:")
_NO_HEADERS: CIMultiDict[str] = CIMultiDict()  # until an answer's head is in; never changed


class ProtocolError(Exception):
    """The provider's answer is not HTTP/1.1 this client reads (or its head is too large)."""


class ServerClosed(Exception):
    """The connection ended before the answer did."""


class ConnectError(Exception):
    """A new connection failed: DNS, TCP, TLS or the connect timeout (``os_error``)."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


def host_header(hostname: str, port: int | None, tls: bool) -> str:
    """``Host`` as aiohttp writes it: the port only when it is not the scheme's default."""
    try:
        host = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        host = hostname
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != (443 if tls else 80):
        host = f"{host}:{port}"
    return host


def request_head(
    method: str, target: str, host: str, headers: list[tuple[str, str]], body_length: int
) -> bytes:
    """The request line and headers, the caller's in its order, byte for byte (latin-1, as the
    server decoded them), plus ``Host`` (unless given) and ``Content-Length`` (for a body, or
    any method that carries one, as aiohttp does). Nothing else is added.

    The body's framing is ours: a ``Content-Length`` or ``Transfer-Encoding`` from the caller
    is a bug (``ValueError``), and so is a CR or LF inside a header (it would split the head).
    """
    lines = "".join([f"{name}: {value}\r\n" for name, value in headers])
    n = len(headers)
    if lines.count("\n") != n or lines.count("\r") != n or "\r" in target or "\n" in target or " " in target:
        raise ValueError("a header or the request target contains a line break or space")
    lowered = ("\n" + lines).lower() if lines else ""
    if any(name in lowered for name in _FRAMING):
        raise ValueError("the transport frames the body itself: no content-length or transfer-encoding")
    extra = "" if "\nhost:" in lowered else f"Host: {host}\r\n"
    if body_length or method not in _BODYLESS_METHODS:
        lines += f"Content-Length: {body_length}\r\n"
    text = f"{method} {target} HTTP/1.1\r\n{extra}{lines}\r\n"
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # a value we made (not the client's bytes) outside latin-1
        return text.encode("utf-8")


class ResponseParser:
    """The answers of one keep-alive connection, one at a time (``start`` before each).

    Interim ``1xx`` answers are skipped. A body delimited by the connection's end (no
    length, not chunked) is complete at ``feed_eof``; any other body cut short is an error.
    The answer to ``HEAD`` ends with its head and leaves the connection unusable (llhttp
    would read a body that never comes).
    """

    __slots__ = (
        "_fed", "_head_size", "_interim", "_parser", "body", "body_size", "complete", "head_done",
        "head_only", "headers", "keep_alive", "raw_headers", "status",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.start()

    def start(self, *, head_only: bool = False) -> None:
        self.head_only = head_only
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers: CIMultiDict[str] = _NO_HEADERS
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.body: list[bytes] = []
        self.body_size = 0
        self._fed = 0
        self._head_size = 0
        self._interim = False

    def feed(self, data: bytes) -> None:
        """Raises ProtocolError on a malformed or oversized answer."""
        if self.complete:  # bytes after the answer: the connection is not reused
            self.keep_alive = False
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            raise ProtocolError("the provider switched protocols (101), which ccgate did not ask for") from exc
        except httptools.HttpParserError as exc:
            raise ProtocolError(f"invalid HTTP response: {exc}") from exc
        if not self.head_done:
            self._fed += len(data)
            if self._fed > HEAD_LIMIT:
                raise ProtocolError(f"response head larger than {HEAD_LIMIT} bytes")
        elif self._head_size > HEAD_LIMIT:
            raise ProtocolError(f"response head larger than {HEAD_LIMIT} bytes")

    def feed_eof(self) -> None:
        """The connection ended: completes a close-delimited body, else raises ServerClosed."""
        if self.complete:
            return
        if not self.head_done:
            raise ServerClosed("Server disconnected")
        headers = self.headers
        if "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower():
            raise ServerClosed("Response payload is not completed")
        self.complete = True
        self.keep_alive = False

    def take(self) -> bytes:
        """Every body byte held, in one piece."""
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self.body = []
        self.body_size = 0
        return data

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue, 102, 103 Early Hints: wait for the real answer
            self._interim = True
            self.raw_headers = []
            self._head_size = self._fed = 0
            return
        self.status = status
        self.headers = CIMultiDict([
            (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
            for n, v in self.raw_headers
        ])
        self.head_done = True
        if self.head_only:
            self.complete = True

    def on_body(self, body: bytes) -> None:
        if not self.head_only:
            self.body.append(body)
            self.body_size += len(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
        elif not self.head_only:
            self.complete = True
            self.keep_alive = self._parser.should_keep_alive()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None


__all__ = [
    "HEAD_LIMIT", "HIGH_WATER", "ConnectError", "ProtocolError", "ResponseParser", "ServerClosed",
    "host_header", "request_head",
]
