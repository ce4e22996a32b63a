"""The HTTP/1.1 wire format of ccgate's own upstream client (upstream/h1wire.py), without sockets:
the request head as bytes, and answers fed to the parser in every split a network can make."""

from __future__ import annotations

import pytest

from ccgate.upstream.h1wire import (
    HEAD_LIMIT,
    ProtocolError,
    ResponseParser,
    ServerClosed,
    host_header,
    request_head,
)

CHUNKED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"request-id: req_1\r\n\r\n"
    b"9\r\ndata: 0\n\n\r\n9\r\ndata: 1\n\n\r\n0\r\n\r\n"
)


def test_request_head_is_the_callers_headers_in_order_plus_host_and_length() -> None:
    headers = [("x-api-key", "sk-up"), ("anthropic-beta", "a,b"), ("X-Odd", " spaced  "), ("x-caf", "caf\xe9")]
    head = request_head("POST", "/v1/messages?beta=true", "api.example.test", headers, 42)
    assert head == (
        b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: api.example.test\r\n"
        b"x-api-key: sk-up\r\nanthropic-beta: a,b\r\nX-Odd:  spaced  \r\nx-caf: caf\xe9\r\n"
        b"Content-Length: 42\r\n\r\n"
    )  # latin-1 both ways: the client's header bytes are the bytes sent


def test_content_length_as_aiohttp_sends_it() -> None:
    assert b"Content-Length" not in request_head("GET", "/v1/models", "h", [], 0)
    assert b"Content-Length" not in request_head("HEAD", "/", "h", [], 0)
    assert b"Content-Length: 0\r\n" in request_head("POST", "/x", "h", [], 0)
    assert request_head("GET", "/", "h", [("host", "other")], 0) == b"GET / HTTP/1.1\r\nhost: other\r\n\r\n"


@pytest.mark.parametrize("headers", [
    [("x-a", "1\r\nx-injected: 2")], [("x-a", "1\nx-b: 2")], [("x-a", "1\rx")],
    [("content-length", "5")], [("Transfer-Encoding", "chunked")],
])
def test_a_header_that_would_change_the_framing_is_refused(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        request_head("POST", "/v1/messages", "h", headers, 2)


def test_host_header_port_only_when_not_the_default() -> None:
    assert host_header("api.example.test", None, True) == "api.example.test"
    assert host_header("api.example.test", 443, True) == "api.example.test"
    assert host_header("127.0.0.1", 8443, True) == "127.0.0.1:8443"
    assert host_header("::1", 8080, False) == "[::1]:8080"
    assert host_header("bücher.example", None, False) == "xn--bcher-kva.example"


def _feed_split(parser: ResponseParser, data: bytes, size: int) -> list[bytes]:
    bodies = []
    for i in range(0, len(data), size):
        parser.feed(data[i:i + size])
        if parser.body:
            bodies.append(parser.take())
    return bodies


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 64, 1000])
def test_chunked_answer_in_any_split(size: int) -> None:
    parser = ResponseParser()
    bodies = _feed_split(parser, CHUNKED, size)
    assert b"".join(bodies) == b"data: 0\n\ndata: 1\n\n"
    assert parser.status == 200 and parser.complete and parser.keep_alive
    assert parser.raw_headers[0] == (b"content-type", b"text/event-stream")  # as received
    assert parser.headers["Content-Type"] == "text/event-stream" and parser.content_length is None


def test_the_next_answer_on_the_same_connection() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert parser.complete and parser.keep_alive and parser.take() == b"ok" and parser.content_length == 2
    parser.start()
    parser.feed(CHUNKED)
    assert parser.complete and parser.take() == b"data: 0\n\ndata: 1\n\n"


def test_interim_answers_are_skipped() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
    assert not parser.head_done
    parser.feed(b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx")
    assert parser.status == 201 and parser.raw_headers == [(b"Content-Length", b"1")] and parser.complete


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
])
def test_connection_close_and_http10_are_not_reused(head: bytes) -> None:
    parser = ResponseParser()
    parser.feed(head)
    assert parser.complete and not parser.keep_alive


def test_a_body_delimited_by_the_end_of_the_connection() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome ")
    parser.feed(b"bytes")
    assert not parser.complete
    parser.feed_eof()
    assert parser.complete and not parser.keep_alive and parser.take() == b"some bytes"


@pytest.mark.parametrize("cut", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
])
def test_a_body_cut_short_is_an_error(cut: bytes) -> None:
    parser = ResponseParser()
    parser.feed(cut)
    with pytest.raises(ServerClosed, match="payload is not completed"):
        parser.feed_eof()


def test_no_answer_at_all() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-")
    with pytest.raises(ServerClosed, match="Server disconnected"):
        parser.feed_eof()


def test_answer_to_head_ends_with_its_head_and_is_not_reused() -> None:
    parser = ResponseParser()
    parser.start(head_only=True)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")
    assert parser.complete and not parser.keep_alive and not parser.body


def test_a_large_head_under_the_limit_is_read() -> None:
    parser = ResponseParser()
    big = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 1000) for i in range(40))  # ~40 KiB
    _feed_split(parser, b"HTTP/1.1 200 OK\r\n" + big + b"Content-Length: 0\r\n\r\n", 4096)
    assert parser.complete and len(parser.raw_headers) == 41


@pytest.mark.parametrize("size", [1000, 200_000])  # split across reads, or in one read with the body
def test_a_head_over_the_limit_is_refused(size: int) -> None:
    parser = ResponseParser()
    big = b"x-big: " + b"v" * HEAD_LIMIT + b"\r\n"
    data = b"HTTP/1.1 200 OK\r\n" + big + b"Content-Length: 2\r\n\r\nok"
    with pytest.raises(ProtocolError, match="response head larger than"):
        _feed_split(parser, data, size)


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"])
def test_not_http_is_a_protocol_error(garbage: bytes) -> None:
    with pytest.raises(ProtocolError, match="invalid HTTP response"):
        ResponseParser().feed(garbage)


def test_bytes_after_a_complete_answer_stop_reuse() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    assert parser.complete and not parser.keep_alive and parser.take() == b"ok"
