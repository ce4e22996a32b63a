"""server/protocol.py without sockets: the guarded protocol fed bytes through a recording
transport, its sweep run by hand with deadlines set in the past (no waiting). The same
limits over real sockets are in tests/gateway/test_connection_limits.py (lab)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from ccgate.config.model import Limits
from ccgate.server.protocol import IDLE, ClientLink, ConnectionGuard, GuardedProtocol, protocol_for
from ccgate.server.response import LINK


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.writes = 0  # calls: one per syscall a real transport would make
        self.closed = False
        self.eof = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 4545)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)
        self.writes += 1

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Harness:
    def __init__(self, app: Any = None, **limits: Any) -> None:
        self.refused: list[str] = []
        self.guard = ConnectionGuard(lambda: Limits(**limits), self.refused.append)
        self.app_calls = 0

        async def whole(scope: Any, receive: Any, send: Any) -> None:
            self.app_calls += 1
            while (await receive()).get("more_body"):  # the whole body first, as the gateway does
                pass
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

        # access_log=False as `ccgate serve` runs uvicorn (its access logger then has no handlers).
        self.config = Config(app or whole, http=protocol_for(self.guard), lifespan="off", log_config=None,
                             access_log=False)
        self.config.load()
        self.state = ServerState()

    def connect(self) -> tuple[GuardedProtocol, RecordingTransport]:
        cls = self.config.http_protocol_class
        proto = cls(config=self.config, server_state=self.state, app_state={})  # type: ignore[call-arg]
        assert isinstance(proto, GuardedProtocol)
        transport = RecordingTransport()
        proto.connection_made(transport)
        return proto, transport


def status(transport: RecordingTransport) -> int:
    return int(transport.written.split(b" ", 2)[1])


async def test_an_ordinary_request_reaches_the_app() -> None:
    h = Harness()
    proto, transport = h.connect()
    proto.data_received(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0.01)
    assert h.app_calls == 1 and status(transport) == 200 and not transport.closed
    h.guard.stop()


async def test_headers_over_the_byte_limit_get_431_before_the_app() -> None:
    h = Harness(max_header_bytes=4096)
    proto, transport = h.connect()
    proto.data_received(b"GET / HTTP/1.1\r\nx-big: " + b"a" * 5000 + b"\r\n\r\n")
    await asyncio.sleep(0.01)
    assert status(transport) == 431 and b"server.limits.max_header_bytes" in transport.written
    assert transport.eof and h.app_calls == 0 and h.refused == ["header_bytes"]
    proto.data_received(b"more bytes after the answer are dropped")
    h.guard.stop()


async def test_an_endless_head_is_cut_after_the_limit_plus_one_read() -> None:
    h = Harness(max_header_bytes=4096, max_headers=10)
    proto, transport = h.connect()
    proto.data_received(b"GET / HTTP/1.1\r\nx-big: ")
    for _ in range(10):  # never a line end: httptools would hold it all
        proto.data_received(b"a" * 1024)
        if transport.written:
            break
    assert status(transport) == 431 and h.refused == ["header_bytes"] and h.app_calls == 0
    h.guard.stop()


async def test_too_many_headers_get_431() -> None:
    h = Harness(max_headers=5)
    proto, transport = h.connect()
    proto.data_received(b"GET / HTTP/1.1\r\n" + b"".join(b"x-%d: v\r\n" % i for i in range(6)) + b"\r\n")
    assert status(transport) == 431 and b"the limit is 5" in transport.written
    assert h.refused == ["header_count"]
    h.guard.stop()


async def test_the_sweep_answers_408_past_the_header_and_body_deadlines() -> None:
    h = Harness(header_timeout=5, body_timeout=5)
    silent, silent_t = h.connect()
    partial, partial_t = h.connect()
    partial.data_received(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n12345")
    _, fresh_t = h.connect()
    await asyncio.sleep(0.01)  # the app runs, waiting for the rest of the body
    assert h.app_calls == 1
    h.guard.sweep()  # nothing is late yet
    assert not (silent_t.written or partial_t.written or fresh_t.written)
    silent.since -= 10  # as if 10 s had passed for these two
    partial.since -= 10
    h.guard.sweep()
    assert status(silent_t) == 408 and b"header_timeout" in silent_t.written
    assert status(partial_t) == 408 and b"body_timeout" in partial_t.written
    assert not fresh_t.written and sorted(h.refused) == ["body_timeout", "header_timeout"]
    partial.connection_lost(None)  # the transport closes: the app sees the disconnect and ends
    await asyncio.sleep(0.01)
    h.guard.stop()


async def test_the_sweep_closes_a_connection_idle_past_idle_timeout() -> None:
    """No keep-alive timer per request: an answered connection is IDLE, stamped when its answer
    completed, and the sweep closes it once idle_timeout has passed; a new request makes it busy
    again, and the interval follows a short idle_timeout."""
    h = Harness(idle_timeout=2)
    assert h.guard.interval == 0.5
    proto, transport = h.connect()
    proto.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await until(lambda: transport.written.endswith(b"ok") and not h.state.tasks)
    assert proto.phase == IDLE and proto.timeout_keep_alive_task is None
    h.guard.sweep()
    assert not transport.closed  # answered just now
    proto.since -= 1.5
    h.guard.sweep()
    assert not transport.closed
    proto.since -= 1.0  # 2.5 s idle
    proto.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")  # ...but a request came first
    assert proto.phase != IDLE
    h.guard.sweep()
    assert not transport.closed
    await until(lambda: transport.written.count(b"HTTP/1.1 200 ") == 2 and not h.state.tasks)
    proto.since -= 2.5
    h.guard.sweep()
    assert transport.closed and not h.refused  # closed, not refused: nothing is written
    assert transport.written.endswith(b"ok")
    h.guard.stop()


async def test_a_connection_over_the_cap_gets_503_and_is_closed() -> None:
    h = Harness(max_connections=2)
    h.connect()
    h.connect()
    proto, transport = h.connect()
    assert status(transport) == 503 and transport.closed and b"retry-after: 5" in transport.written
    assert h.refused == ["connection_limit"] and len(h.guard.connections) == 2
    proto.connection_lost(None)
    assert len(h.guard.connections) == 2
    h.guard.stop()


async def test_the_limits_follow_the_live_config_at_each_sweep() -> None:
    """A reload replaces the config; the sweep reads the limits from it, so they apply
    without a restart (idle_timeout to new connections)."""
    live = {"limits": Limits(max_headers=5)}
    guard = ConnectionGuard(lambda: live["limits"], lambda reason: None)
    assert guard.max_headers == 5
    live["limits"] = Limits(max_headers=50, max_header_bytes=8192, idle_timeout=3)
    guard.start(asyncio.get_running_loop())
    guard.sweep()
    assert (guard.max_headers, guard.max_header_bytes, guard.idle_timeout) == (50, 8192, 3)
    guard.stop()


async def test_the_inlined_header_callback_still_matches_uvicorns() -> None:
    """``GuardedProtocol.on_header`` inlines uvicorn's (a call less per header). If an uvicorn
    release changes what its callback does, this fails and the inlined copy must follow."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    h = Harness()
    ours, _ = h.connect()
    theirs, _ = h.connect()
    ours.on_message_begin()
    theirs.on_message_begin()
    headers = [(b"Host", b"x"), (b"X-Trailing", b"value \t"), (b"EXPECT", b"100-Continue"),
               (b"x-dup", b"1"), (b"X-Dup", b"2"), (b"empty", b""), (b"x-inner", b"a  b")]
    for name, value in headers:
        ours.on_header(name, value)
        HttpToolsProtocol.on_header(theirs, name, value)
    assert ours.headers == theirs.headers
    assert ours.expect_100_continue is theirs.expect_100_continue is True
    # Every attribute uvicorn's callback touches is one ours sets too (nothing new upstream).
    touched = set(HttpToolsProtocol.on_header.__code__.co_names)
    assert touched <= {"lower", "rstrip", "expect_100_continue", "headers", "append"}, touched
    h.guard.stop()


async def test_a_whole_answer_leaves_in_one_write() -> None:
    h = Harness()
    proto, transport = h.connect()
    proto.data_received(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0.01)
    assert transport.writes == 1
    assert transport.written.startswith(b"HTTP/1.1 200 ") and transport.written.endswith(b"\r\n\r\nok")
    h.guard.stop()


async def test_a_stream_head_is_not_held_while_the_app_waits() -> None:
    upstream = asyncio.Event()

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await upstream.wait()  # the provider has not sent its first event yet
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    h = Harness(stream)
    proto, transport = h.connect()
    proto.data_received(b"GET /s HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0.01)
    assert status(transport) == 200 and transport.written.endswith(b"\r\n\r\n") and transport.writes == 1
    upstream.set()
    await asyncio.sleep(0.01)
    assert transport.written.endswith(b"data: 1\n\n\r\n0\r\n\r\n") and transport.writes == 3
    h.guard.stop()


async def test_100_continue_goes_before_the_held_head() -> None:
    h = Harness()
    proto, transport = h.connect()
    proto.data_received(b"POST / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n")
    await asyncio.sleep(0.01)
    assert transport.written == b"HTTP/1.1 100 Continue\r\n\r\n"
    proto.data_received(b"hi")
    await asyncio.sleep(0.01)
    assert transport.writes == 2 and transport.written.endswith(b"ok")
    assert transport.written.count(b"HTTP/1.1 200 ") == 1
    h.guard.stop()


async def test_the_cork_passes_other_transport_calls_through() -> None:
    from ccgate.server.protocol import _HeadCork

    transport = RecordingTransport()
    cork = _HeadCork(transport, asyncio.get_running_loop())
    assert cork.get_extra_info("peername") == ("127.0.0.1", 50000)
    cork.write(b"HTTP/1.1 200 OK\r\n\r\n")  # a head: held for the end of this turn
    assert transport.writes == 0
    cork.close()  # flushed before the close, never lost
    assert transport.written == b"HTTP/1.1 200 OK\r\n\r\n" and transport.closed


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Wait for ``condition()`` (a busy machine may take more than one loop turn)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


# The request's ClientLink (scope["extensions"]["ccgate.link"]) ----------------------------------

PIECES = [b"event: a\ndata: 1\n\n", b"x" * 70_000, b"data: \xff\x00 binary\n\n", b"z"]


def _streaming_app(use_link: bool, seen: list[Any]) -> Any:
    """Streams PIECES: through the link where it takes them, else (or always) through send."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        link = scope["extensions"][LINK]
        seen.append(link)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for piece in PIECES:
            if not (use_link and link.write_body(piece)):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


async def _stream_bytes(use_link: bool, request: bytes = b"GET /s HTTP/1.1\r\nhost: x\r\n\r\n") -> tuple[bytes, int, list[Any]]:
    seen: list[Any] = []
    h = Harness(_streaming_app(use_link, seen))
    proto, transport = h.connect()
    proto.data_received(request)
    await until(lambda: transport.written.endswith(b"0\r\n\r\n"))
    h.guard.stop()
    return transport.written, transport.writes, seen


async def test_body_pieces_through_the_link_are_the_bytes_send_writes() -> None:
    # Byte for byte what uvicorn's own send frames (chunk sizes, the binary piece, the end),
    # with the head still leaving with the first piece.
    via_send, writes_send, _ = await _stream_bytes(use_link=False)
    via_link, writes_link, seen = await _stream_bytes(use_link=True)
    assert via_link == via_send and writes_link == writes_send == len(PIECES) + 1
    assert b"\r\n\r\n12\r\nevent: a\ndata: 1\n\n\r\n" in via_link and via_link.endswith(b"\r\nz\r\n0\r\n\r\n")
    assert isinstance(seen[0], ClientLink)


async def test_the_link_declines_what_send_does_more_for() -> None:
    link_answers: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        link = scope["extensions"][LINK]
        link_answers.append(link.write_body(b"early"))  # no head yet
        length = scope["path"] == "/sized"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")] if length else []})
        link_answers.append(link.write_body(b""))  # nothing to frame
        link_answers.append(link.write_body(b"ok"))  # sized: send counts the length; HEAD: no body
        if not link_answers[-1]:
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else b"ok"})
        else:
            await send({"type": "http.response.body", "body": b""})

    h = Harness(app)
    proto, transport = h.connect()
    proto.data_received(b"GET /sized HTTP/1.1\r\nhost: x\r\n\r\n")
    await until(lambda: transport.written.endswith(b"ok"))
    assert link_answers == [False, False, False] and transport.written.endswith(b"\r\n\r\nok")
    link_answers.clear()
    proto.data_received(b"HEAD /chunked HTTP/1.1\r\nhost: x\r\n\r\n")
    await until(lambda: len(link_answers) == 3 and not h.state.tasks)
    assert link_answers == [False, False, False] and transport.written.endswith(b"\r\n\r\n")
    h.guard.stop()


async def test_a_slow_client_pauses_the_link_and_send_waits_for_it() -> None:
    wrote_one, proceed, checked, finished = (asyncio.Event() for _ in range(4))
    answers: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        link = scope["extensions"][LINK]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        answers.append(link.write_body(b"one"))
        wrote_one.set()
        await proceed.wait()
        answers.append(link.write_body(b"two"))  # the transport said pause: send drains first
        done = asyncio.ensure_future(send({"type": "http.response.body", "body": b"two", "more_body": True}))
        await asyncio.sleep(0.01)
        answers.append(done.done())  # still waiting: only resume_writing (below) lets it go
        checked.set()
        await done
        await send({"type": "http.response.body", "body": b""})
        finished.set()

    h = Harness(app)
    proto, transport = h.connect()
    proto.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.wait_for(wrote_one.wait(), 10)
    proto.pause_writing()
    proceed.set()
    await asyncio.wait_for(checked.wait(), 10)
    proto.resume_writing()
    await asyncio.wait_for(finished.wait(), 10)
    assert answers == [True, False, False]
    assert transport.written.endswith(b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")
    h.guard.stop()


async def test_a_lost_connection_calls_on_lost_once_and_lets_the_cycle_go() -> None:
    import gc
    import weakref

    calls: list[str] = []
    started, finish = asyncio.Event(), asyncio.Event()
    refs: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        link = scope["extensions"][LINK]
        link.on_lost = lambda: (calls.append("lost"), finish.set())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        assert link.write_body(b"a")
        refs.append(weakref.ref(link._cycle))
        started.set()
        await finish.wait()  # the gateway's exchange, cancelled when on_lost is called

    h = Harness(app)
    proto, transport = h.connect()
    proto.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await started.wait()
    link = proto.cycle.scope["extensions"][LINK]
    assert proto.cycle.transport is transport  # the head is out: the cork stepped aside
    gc.disable()  # what follows must not need the cyclic collector
    try:
        proto.connection_lost(None)
        assert calls == ["lost"] and link.gone and link.on_lost is None
        assert not link.write_body(b"late")  # the cycle is over for the link
        await until(lambda: not h.state.tasks)  # the app returned
        proto.cycle = None  # what the next request on this protocol would replace
        proto.scope = None
        assert refs[0]() is None, "the request cycle is kept alive by a reference cycle"
    finally:
        gc.enable()
    h.guard.stop()


async def test_the_link_of_a_completed_response_is_released() -> None:
    _, _, seen = await _stream_bytes(use_link=True)
    link = seen[0]
    assert link._cycle is None and not link.write_body(b"after the end")
    assert not link.gone  # it completed: nobody was lost


async def test_the_light_event_behaves_as_asyncios() -> None:
    from ccgate.server.protocol import _Event

    for make in (asyncio.Event, _Event):
        event = make()
        assert not event.is_set()
        first = asyncio.ensure_future(event.wait())
        second = asyncio.ensure_future(event.wait())
        cancelled = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        assert not first.done() and not second.done() and cancelled.cancelled()
        event.set()
        assert await first is True and await second is True and event.is_set()
        assert await asyncio.wait_for(event.wait(), 1) is True  # set: returns at once
        event.clear()
        late = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0.01)
        assert not late.done(), make
        event.set()
        assert await late is True


async def test_pipelined_requests_are_answered_in_order() -> None:
    # The second request's body arrives while it waits behind the first: its message event is
    # replaced by the light one when it starts, with what it had seen carried over.
    bodies: list[bytes] = []

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        bodies.append(body)
        await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    h = Harness(echo)
    proto, transport = h.connect()
    proto.data_received(b"POST /1 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\none"
                        b"POST /2 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\ntwo")
    await until(lambda: transport.written.endswith(b"two"))
    assert bodies == [b"one", b"two"]
    assert transport.written.count(b"HTTP/1.1 200 ") == 2 and transport.written.endswith(b"\r\n\r\ntwo")
    h.guard.stop()


# A whole answer through the link (ClientLink.write_whole) -----------------------------------------

WHOLE_HEADERS = [(b"content-type", b"application/json"), (b"Request-Id", b"req_1\tx"),
                 (b"content-length", b"7")]


def _whole_app(use_link: bool, headers: list[tuple[bytes, bytes]], body: bytes, taken: list[bool]) -> Any:
    """Answers ``body`` whole: through the link where it takes it, else through send (a fixed
    valid answer when the link declined a response send would refuse)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        took = use_link and scope["extensions"][LINK].write_whole(200, headers, body)
        taken.append(took)
        if took:
            return
        valid = use_link and headers is not WHOLE_HEADERS
        head = [(b"content-length", b"2")] if valid else headers
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": b"ok" if valid else body})

    return app


async def _whole_bytes(use_link: bool, headers: list[tuple[bytes, bytes]] = WHOLE_HEADERS, body: bytes = b'{"a":1}',
                       request: bytes = b"GET /w HTTP/1.1\r\nhost: x\r\n\r\n") -> tuple[bytes, int, list[bool], Any]:
    taken: list[bool] = []
    h = Harness(_whole_app(use_link, headers, body, taken))
    h.state.default_headers = [(b"date", b"Thu, 03 Dec 2026 18:00:00 GMT"), (b"x-served-by", b"ccgate")]
    proto, transport = h.connect()
    proto.data_received(request * 2)  # the second, pipelined, is answered once the first is complete
    await until(lambda: len(taken) == 2 and not h.state.tasks)
    h.guard.stop()
    return transport.written, transport.writes, taken, proto


async def test_a_whole_answer_through_the_link_is_the_bytes_send_writes() -> None:
    via_send, writes_send, _, _ = await _whole_bytes(use_link=False)
    via_link, writes_link, taken, proto = await _whole_bytes(use_link=True)
    assert taken == [True, True] and via_link == via_send and writes_link == writes_send == 2
    head = (b"HTTP/1.1 200 OK\r\ndate: Thu, 03 Dec 2026 18:00:00 GMT\r\nx-served-by: ccgate\r\n"
            b"content-type: application/json\r\nrequest-id: req_1\tx\r\ncontent-length: 7\r\n\r\n")
    assert via_link == (head + b'{"a":1}') * 2
    # The cycle is left as send leaves it: complete, the connection idle, the link let go.
    assert proto.cycle.response_complete and proto.phase == IDLE
    assert proto.cycle.scope["extensions"][LINK]._cycle is None


async def test_the_link_leaves_to_send_every_whole_answer_it_does_not_frame_as_send_would() -> None:
    body = b"ok"
    declined = {
        "no length": [(b"content-type", b"text/plain")],
        "another length": [(b"content-length", b"3")],
        "two lengths": [(b"content-length", b"2"), (b"content-length", b"2")],
        "chunked": [(b"content-length", b"2"), (b"transfer-encoding", b"chunked")],
        "connection": [(b"content-length", b"2"), (b"connection", b"close")],
        "a control byte in a value": [(b"content-length", b"2"), (b"x-a", b"a\x01b")],
        "a separator in a name": [(b"content-length", b"2"), (b"x a", b"b")],
    }
    for why, headers in declined.items():
        written, _, taken, _ = await _whole_bytes(True, headers, body)
        assert taken == [False, False], why
        assert written.count(b"HTTP/1.1 200 OK\r\n") == 2 and written.endswith(b"\r\n\r\nok"), why
    sized = [(b"content-length", b"2")]
    for why, request in {"HEAD": b"HEAD /w HTTP/1.1\r\nhost: x\r\n\r\n",
                         "closing": b"GET /w HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                         "HTTP/1.0": b"GET /w HTTP/1.0\r\n\r\n"}.items():
        taken_once: list[bool] = []
        h = Harness(_whole_app(True, sized, body, taken_once))
        proto, transport = h.connect()
        proto.data_received(request)
        await until(lambda t=taken_once, s=h.state: len(t) == 1 and not s.tasks)  # type: ignore[misc]
        h.guard.stop()
        assert taken_once == [False], why
        assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n"), why
async def test_a_body_is_handed_over_whole_one_piece_uncopied_several_joined() -> None:
    bodies: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message["body"])
            if not message.get("more_body"):
                break
        bodies.append(b"".join(chunks))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    h = Harness(app)
    payload = bytes(range(256)) * 400  # 100 KB: over uvicorn's 64 KB high-water mark
    head = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(payload)
    held: list[Any] = []
    original = GuardedProtocol.on_body

    def spy(self: GuardedProtocol, body: bytes) -> None:
        original(self, body)
        held.append((body, self.cycle.body))

    GuardedProtocol.on_body = spy  # type: ignore[method-assign]
    try:
        proto, transport = h.connect()  # the parser takes its callbacks when it is made
        proto.data_received(head + payload)  # the body in one read: kept as the parser gave it
        await asyncio.sleep(0.01)
        assert held[0][1] is held[0][0]
        for cut in (1, 5000, 70_000, len(payload) - 1):  # in two reads: joined, in order
            proto.data_received(head + payload[:cut])
            proto.data_received(payload[cut:])
            await asyncio.sleep(0.01)
    finally:
        GuardedProtocol.on_body = original  # type: ignore[method-assign]
    assert bodies == [payload] * 5
    assert status(transport) == 200
    h.guard.stop()
