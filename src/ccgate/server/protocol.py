"""The client connection: uvicorn's httptools protocol with the limits it lacks.

llhttp (httptools) accepts headers of any size and uvicorn has no header, body or first-byte
timeout and no connection cap, so a client could hold memory and file descriptors for as
long as it liked (issue 13). ``GuardedProtocol`` adds, before any application work:

* header limits (``server.limits.max_header_bytes`` / ``max_headers``): the request target,
  header names and values are counted as the parser hands them over, and the raw bytes of a
  head still arriving are counted per read, so an endless header is cut after the limit
  plus one read (httptools itself would concatenate it without end). Over: a plain 431 and
  the connection closed; the app never sees the request.
* ``header_timeout`` (from the connection, or a request's first byte, to its last header
  byte) and ``body_timeout`` (from the headers to the body's last byte): a plain 408 and close.
* ``max_connections``: a connection over the cap gets a plain 503 and is closed at once.
* ``idle_timeout``: a keep-alive connection with no request for that long is closed (uvicorn's
  keep-alive timer did this with a timer armed and cancelled per request; the sweep does it).

And one thing uvicorn does not do: it writes a response's head the moment the app sends
``http.response.start`` and its body in a second write, so a whole answer costs two ``send``
syscalls (on loopback each also runs the receiver's TCP stack: tens of µs). ``_HeadCork``
holds the head until the first body write of the same event-loop turn, or the end of that
turn, and sends both in one (docs/benchmarks.md, "Where the time goes ([perf])"). Nor does it
hand a body read in one piece to the app without copying it twice (``on_body``).

Each request also gets a ``ClientLink`` in ``scope["extensions"]["ccgate.link"]`` (the ASGI way
for a server to offer more than the spec): the gateway learns that its client went away from
``connection_lost`` itself, instead of a task per stream parked on ``receive()``, and writes a
stream's body pieces straight to the connection, framed exactly as uvicorn's ``send`` frames
them, without an ASGI message and two awaits per chunk (docs/benchmarks.md, "Where the time
goes: streams"). An app that finds no link (another server, the in-process tests) uses plain
ASGI; the link falls back to it whenever ``send`` would do more than frame and write.

Timeouts cost the request path no timer: each connection stamps its phase with a coarse
clock (``ConnectionGuard.now``, an attribute) and one sweep per server, a few times per
timeout, closes the connections past their deadline. The settings are read from the live
config at each sweep, so a reload applies them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE, HttpToolsProtocol

from ccgate.config.model import Limits
from ccgate.server.response import LINK

log = logging.getLogger("ccgate")

# A connection's phase, for the sweep. BUSY: the app has the whole request: no deadline of ours.
# IDLE: an answer is complete and the connection waits for the next request (idle_timeout).
HEAD, BODY, BUSY, IDLE = 1, 2, 3, 4
# Room for the request line's method and version and each header's ": " and CRLF, which the
# exact count (target, names, values) leaves out, when raw bytes of an unfinished head are counted.
_FRAMING_PER_HEADER = 4
_FRAMING = 1024
# After a 431 or 408 the gateway stops writing but reads (and drops) for this long before
# closing: closing with the client's unread bytes pending would send a reset, which can destroy
# the answer before the client reads it (the "lingering close" of Apache and nginx).
LINGER_SECONDS = 1.0
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


class HeadTooLarge(Exception):
    """Raised inside a parser callback: httptools stops parsing and uvicorn calls
    ``send_400_response``, which answers 431 instead."""


class ConnectionGuard:
    """Shared by every connection of one server: the limits, the coarse clock, the sweep,
    and ``on_refuse(reason)`` (the metrics hook)."""

    def __init__(self, limits: Callable[[], Limits], on_refuse: Callable[[str], None]) -> None:
        self._limits = limits
        self.on_refuse = on_refuse
        self.connections: set[GuardedProtocol] = set()
        self.now = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.refresh()

    def refresh(self) -> None:
        limits = self._limits()
        self.max_header_bytes = limits.max_header_bytes
        self.max_headers = limits.max_headers
        # An unfinished head is cut here: the exact limit plus its framing.
        self.max_raw_head = limits.max_header_bytes + limits.max_headers * _FRAMING_PER_HEADER + _FRAMING
        self.header_timeout = limits.header_timeout
        self.body_timeout = limits.body_timeout
        self.idle_timeout = limits.idle_timeout
        self.max_connections = limits.max_connections
        # Deadlines are met to within two sweeps: a quarter of the shortest timeout, at most 1 s.
        self.interval = min(1.0, limits.header_timeout / 4, limits.body_timeout / 4, limits.idle_timeout / 4)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called by the first connection (the server's loop is running by then)."""
        self._loop = loop
        self.now = loop.time()
        self._handle = loop.call_later(self.interval, self.sweep)

    def sweep(self) -> None:
        assert self._loop is not None
        self.now = now = self._loop.time()
        try:
            self.refresh()
        except Exception:  # a config being replaced mid-read: keep the last good limits
            log.exception("connection limits: cannot read the config")
        for conn in [c for c in self.connections if c.phase != BUSY]:
            if conn.phase == HEAD and now - conn.since > self.header_timeout:
                conn.refuse(408, "header_timeout", f"request headers not received within "
                            f"{self.header_timeout:g} s (server.limits.header_timeout)")
            elif conn.phase == BODY and now - conn.since > self.body_timeout:
                conn.refuse(408, "body_timeout", f"request body not received within "
                            f"{self.body_timeout:g} s (server.limits.body_timeout)")
            elif conn.phase == IDLE and now - conn.since > self.idle_timeout:
                conn.timeout_keep_alive_handler()  # uvicorn's: closes the connection
        self._handle = self._loop.call_later(self.interval, self.sweep)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the limits above; ``guard`` is set by ``protocol_for``."""

    guard: ConnectionGuard
    # Ours in slots: uvicorn's instance dict is near a resize, and these would take it there
    # (1.5 KB more per connection, measured with bench/scale_memory.py --trace).
    __slots__ = ("_head_size", "_link", "_raw_head", "_refused", "_too_large", "phase", "since")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = _Pipeline()  # type: ignore[assignment]  # deque's interface, as uvicorn uses it
        guard = self.guard
        self.phase = HEAD
        self.since = guard.now
        self._head_size = 0  # target + header names and values of the head being parsed
        self._raw_head = 0  # raw bytes fed while a head is unfinished
        self._refused = False
        self._too_large: tuple[str, str] | None = None  # (reason, message) of a 431
        self._link: ClientLink | None = None  # the running request cycle's

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        guard = self.guard
        if guard._handle is None:
            guard.start(self.loop)
        if len(guard.connections) >= guard.max_connections:
            self.transport = transport
            self.refuse(503, "connection_limit", f"the gateway holds its limit of "
                        f"{guard.max_connections} connections (server.limits.max_connections)")
            return
        guard.connections.add(self)
        self.since = guard.now
        super().connection_made(transport)
        self.flow = _Flow(transport)  # type: ignore[assignment]  # FlowControl's interface, lighter

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.connections.discard(self)
        super().connection_lost(exc)
        link = self._release_link()
        if link is not None:
            link.lost()

    def on_response_complete(self) -> None:
        # Before a pipelined request's cycle (and its link) is started from here.
        self._release_link()
        # uvicorn's, line for line, except that an idle connection is left to the sweep (phase
        # IDLE, stamped now) instead of a keep-alive timer armed here and cancelled by the next
        # request's first bytes: a timer handle made and dropped per request.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.phase = IDLE
            self.since = self.loop.time()

    def _release_link(self) -> ClientLink | None:
        """The running cycle's link, detached: the cycle, its cork and its link refer to one
        another only while the request runs, so none of them waits for the cyclic collector."""
        link = self._link
        if link is None:
            return None
        self._link = None
        cycle = link._cycle
        link._cycle = None
        if isinstance(cycle.transport, _HeadCork):
            cycle.transport._cycle = None
        return link

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self.phase == HEAD and self.parser is not None:
            self._raw_head += len(data)
            if self._raw_head > self.guard.max_raw_head:
                self.refuse(431, "header_bytes", self._header_bytes_message())

    # Parser callbacks: uvicorn's, plus counting.
    def on_message_begin(self) -> None:
        self.phase = HEAD
        self.since = self.guard.now
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's on_header, inlined (a call less per header), plus the byte count.
        self._head_size += len(name) + len(value)
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        # uvicorn's on_body, except that a piece arriving while nothing is held is kept as it
        # is, not copied into the cycle's bytearray: ``receive()`` hands the app
        # ``bytes(cycle.body)``, which for a bytes object is that object, so a body read in one
        # piece (a Claude Code request: ~90 KB) is never copied (two copies before, each a
        # fresh ~90 KB allocation). A second piece before the app takes the first joins them
        # in a bytearray, as uvicorn does (the flow control below bounds how much waits).
        cycle: Any = self.cycle  # its ``body`` is typed bytearray; here it may be bytes
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        held = cycle.body
        if not held and type(body) is bytes:  # httptools hands over bytes of its own
            cycle.body = body
        elif isinstance(held, bytearray):
            held += body
        else:
            cycle.body = bytearray(held) + body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_headers_complete(self) -> None:
        guard = self.guard
        if self._head_size > guard.max_header_bytes:
            self._too_large = ("header_bytes", self._header_bytes_message())
            raise HeadTooLarge(self._too_large[1])
        if len(self.headers) > guard.max_headers:
            self._too_large = ("header_count", f"{len(self.headers)} request headers; the limit "
                               f"is {guard.max_headers} (server.limits.max_headers)")
            raise HeadTooLarge(self._too_large[1])
        self.phase = BODY
        self.since = guard.now
        self._raw_head = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.phase = BUSY
        super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # Every request cycle (pipelined ones too) starts here: its writes go through a cork,
        # and the app gets the cycle's link.
        cycle.transport = _HeadCork(self.transport, self.loop, cycle)
        event = _Event()
        if cycle.message_event.is_set():  # a pipelined request's body arrived while it queued
            event.set()
        cycle.message_event = event
        self._link = link = ClientLink(cycle)
        extensions = cycle.scope.get("extensions")
        if extensions is None:
            cycle.scope["extensions"] = {LINK: link}
        else:  # a later uvicorn's own
            extensions[LINK] = link
        super()._start_asgi_task(cycle, app)

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for any parser error, ours (HeadTooLarge) included.
        if self._too_large is not None:
            self.refuse(431, *self._too_large)
            return
        super().send_400_response(msg)

    def _header_bytes_message(self) -> str:
        return (f"request headers exceed {self.guard.max_header_bytes} bytes "
                "(server.limits.max_header_bytes)")

    def refuse(self, status: int, reason: str, message: str) -> None:
        """Answer ``status`` in plain text, close the connection, count ``reason``."""
        if self._refused:
            return
        self._refused = True
        self.phase = BUSY
        self.guard.on_refuse(reason)
        transport = self.transport
        if transport.is_closing():
            return
        # A request whose answer has begun (the app refused it before reading the whole body)
        # is only closed. Otherwise the app, if it runs, sees the disconnect and sends nothing.
        cycle: Any = self.cycle
        if cycle is None or not cycle.response_started:
            body = message.encode("ascii", "replace") + b"\n"
            retry = b"retry-after: 5\r\n" if status == 503 else b""
            transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\n%sconnection: close\r\n\r\n%s"
                % (status, _REASONS[status], len(body), retry, body))
        if status == 503 or not transport.can_write_eof():
            transport.close()  # over the connection cap: the descriptor is what is short
            return
        transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.close)


class _Pipeline(list[Any]):
    """uvicorn's queue of pipelined requests (``appendleft``, ``pop``, truth) on a list: its
    deque is 760 bytes per connection, and hardly any connection ever queues a request."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class _Event:
    """``asyncio.Event`` as uvicorn uses it (``set``, ``clear``, ``is_set``, ``wait``) without its
    instance dict and its 760-byte deque: the waiters' list exists only while someone waits.
    uvicorn makes two per stream (the connection's flow control, the request's message event):
    about 2 KB an open stream holds for nothing (issue 13)."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = [waiter]
        else:
            self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class _Flow:
    """uvicorn's ``FlowControl`` (the same methods, line for line) on an ``_Event``, with slots."""

    __slots__ = ("_transport", "_writable", "read_paused", "write_paused")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.read_paused = False
        self.write_paused = False
        self._writable = _Event(True)

    async def drain(self) -> None:
        await self._writable.wait()

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        if not self.write_paused:
            self.write_paused = True
            self._writable.clear()

    def resume_writing(self) -> None:
        if self.write_paused:
            self.write_paused = False
            self._writable.set()


class ClientLink:
    """What the server offers one request cycle beyond ASGI (``scope["extensions"][LINK]``).

    ``on_lost``: called once, from ``connection_lost``, if the connection goes while the
    request runs (set it to None when done watching; set after the loss, it is never called:
    check ``gone``). ``write_body(data)``: one piece of a chunked response body written
    straight to the connection, as uvicorn's ``send`` would write it; False when ``send``
    would do more than that (the head not sent, not chunked, a HEAD request, writing paused
    for a slow client, the client gone, the response complete): then send it through ASGI.
    """

    __slots__ = ("_cycle", "gone", "on_lost")

    def __init__(self, cycle: Any) -> None:
        self._cycle: Any = cycle  # None once the cycle is over (GuardedProtocol._release_link)
        self.gone = False
        self.on_lost: Callable[[], None] | None = None

    def lost(self) -> None:
        self.gone = True
        callback = self.on_lost
        if callback is not None:
            self.on_lost = None
            callback()

    def write_whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
        """A complete response of known length (``content-length`` given, equal to the body's),
        head and body, written as uvicorn's ``send`` writes them for ``http.response.start``
        then the final ``http.response.body``: the same bytes, the same checks, the same state
        left on the cycle, in one write and with no ASGI message, no await and no cork handle.
        False, with nothing done, whenever ``send`` would do anything else (a head already out,
        a HEAD request, no or a second length, ``transfer-encoding`` or ``connection`` given,
        a connection that closes after this answer, writing paused, the client gone, uvicorn's
        access log on, a header ``send`` refuses): then send it through ASGI."""
        cycle = self._cycle
        if (cycle is None or cycle.response_started or cycle.disconnected or cycle.flow.write_paused
                or not cycle.keep_alive or cycle.access_log or cycle.scope["method"] == "HEAD"):
            return False
        line = STATUS_LINE.get(status)
        if line is None:
            return False
        every = [*cycle.default_headers, *headers]
        # uvicorn checks each name and value with these two patterns (character classes, no
        # anchors): one search over all of them at once finds exactly what the searches one by
        # one would.
        if (HEADER_RE.search(b"".join([name for name, _ in every]))
                or HEADER_VALUE_RE.search(b"".join([value for _, value in every]))):
            return False
        length = None
        content = [line]
        for name, value in every:
            name = name.lower()
            if name == b"content-length":
                if length is not None:
                    return False
                length = value
            elif name == b"transfer-encoding" or name == b"connection":
                return False
            content += (name, b": ", value, b"\r\n")
        if length is None or length != b"%d" % len(body):
            return False
        content.append(b"\r\n")
        cycle.response_started = True
        cycle.waiting_for_100_continue = False
        cycle.chunked_encoding = False
        cycle.expected_content_length = 0
        transport = cycle.transport
        if isinstance(transport, _HeadCork):
            transport.write_whole(b"".join(content), body)
        else:
            transport.writelines((b"".join(content), body))
        cycle.response_complete = True
        cycle.message_event.set()
        cycle.on_response()  # the next pipelined request, or the keep-alive timer; releases this link
        return True

    def write_body(self, data: bytes) -> bool:
        cycle = self._cycle
        if (cycle is None or not cycle.chunked_encoding or cycle.flow.write_paused or cycle.disconnected
                or cycle.response_complete or not data or cycle.scope["method"] == "HEAD"):
            return False
        cycle.transport.write(b"%x\r\n%b\r\n" % (len(data), data))  # uvicorn's chunk framing
        return True


class _HeadCork:
    """The request cycle's view of the connection: the response head is held, not written,
    until the next write (the body: one ``writelines``, one syscall) or the end of the current
    event-loop turn, whichever comes first; so a stream's head never waits on its upstream.
    Once the head is out the cork hands the cycle its real transport back, so a stream's
    chunks pay nothing for it.

    uvicorn's cycle writes an interim ``100 Continue`` before the head (passed through), then
    the head, then body pieces, and may close the transport; nothing else.
    """

    __slots__ = ("_cycle", "_flush", "_head", "_loop", "_transport", "_waiting")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 cycle: Any = None) -> None:
        self._transport = transport
        self._loop = loop
        self._cycle = cycle  # whose ``transport`` this cork is, until the head is out
        self._waiting = True  # for the head: the first write that is not a 100 Continue
        self._head: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._cancel_flush()
            self._transport.writelines((head, data))
            self._uncork()
        elif self._waiting and not data.startswith(b"HTTP/1.1 100 "):
            self._waiting = False
            self._head = data
            self._flush = self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def write_whole(self, head: bytes, body: bytes) -> None:
        """A whole response, head and body, when no head is held (``ClientLink.write_whole``)."""
        self._waiting = False
        self._transport.writelines((head, body))
        self._uncork()

    def flush(self) -> None:
        self._flush = None  # no handle -> cork -> handle cycle left for the collector
        head = self._head
        if head is not None:
            self._head = None
            if not self._transport.is_closing():  # the connection was dropped meanwhile
                self._transport.write(head)
            self._uncork()

    def _uncork(self) -> None:
        """The head is out: the cycle writes to the connection itself from now on."""
        cycle = self._cycle
        if cycle is not None:
            self._cycle = None
            if cycle.transport is self:
                cycle.transport = self._transport

    def _cancel_flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._cancel_flush()
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # Anything else a later uvicorn may ask of its transport goes to the real one.
        return getattr(self._transport, name)


def protocol_for(guard: ConnectionGuard) -> type[GuardedProtocol]:
    """A ``GuardedProtocol`` class bound to ``guard``, for ``uvicorn.Config(http=...)``."""
    return type("GuardedProtocol", (GuardedProtocol,), {"guard": guard})


def fit_open_files(max_connections: int) -> str | None:
    """Raise the soft open-files limit to what ``max_connections`` streams need (each holds a
    client and an upstream socket), up to the hard limit, as Go's runtime does at start (the
    soft default of 1,024 is a leftover of select()). A warning when even that is too low;
    None when it fits. Unix only: Windows has no such limit to raise."""
    if sys.platform == "win32":
        return None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * max_connections + 64
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # macOS caps it below RLIM_INFINITY (kern.maxfilesperproc)
        target = soft
    if target >= needed:
        return None
    return (f"the open-files limit ({target}) is below what server.limits.max_connections "
            f"({max_connections}) streams need (about {needed}); raise it (ulimit -n {needed}, "
            "LimitNOFILE= in a systemd unit) or lower max_connections")


__all__ = ["LINK", "ClientLink", "ConnectionGuard", "GuardedProtocol", "fit_open_files", "protocol_for"]
