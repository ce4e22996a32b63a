import gzip
import json
import zlib
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccgate.server.forward import readable_codings
from ccgate.wire.usage import UsageTap

EVENTS = [
    ("message_start", {"type": "message_start", "message": {"id": "m", "usage": {
        "input_tokens": 377, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
        "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": 'mentions "usage" in text'}}),
    ("ping", {"type": "ping"}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                       "usage": {"output_tokens": 65}}),
    ("message_stop", {"type": "message_stop"}),
]
STREAM = "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in EVENTS).encode()
EXPECTED = {"input_tokens": 377, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
            "output_tokens": 65}


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_sse_usage_for_any_chunking(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    tap = UsageTap(sse=True)
    for a, b in pairwise(points):
        tap.feed(STREAM[a:b])
    assert tap.result() == EXPECTED


def test_json_usage_and_garbage() -> None:
    body = json.dumps({"type": "message", "usage": {"input_tokens": 5, "output_tokens": 7}}).encode()
    tap = UsageTap(sse=False)
    tap.feed(body[:10])
    tap.feed(body[10:])
    assert tap.result() == {"input_tokens": 5, "output_tokens": 7}
    bad = UsageTap(sse=False)
    bad.feed(b"<html>")
    assert bad.result() is None


def test_json_answer_reads_usage_model_and_stop_reason_and_nothing_from_other_shapes() -> None:
    body = json.dumps({"id": "m", "content": [{"type": "text", "text": '"usage": {"input_tokens": 1}'}],
                       "model": "claude-x", "stop_reason": "max_tokens", "usage": {
                           "input_tokens": 3, "output_tokens": 4, "cache_creation": {"ephemeral_1h_input_tokens": 2}},
                       "extra": {"usage": {"input_tokens": 99}}}).encode()
    tap = UsageTap(sse=False)
    tap.feed(body)
    assert tap.result() == {"input_tokens": 3, "output_tokens": 4, "cache_creation_1h_input_tokens": 2}
    assert (tap.model, tap.stop_reason) == ("claude-x", "max_tokens")
    for other in (b'[{"usage": {"input_tokens": 1}}]', b"7", b'"usage"', b'{"usage": [1, 2], "model": 3}',
                  b'{"usage": {"input_tokens": 1}', b""):
        tap = UsageTap(sse=False)
        tap.feed(other)
        assert tap.result() is None and tap.model is None, other


def test_stream_cut_before_message_delta_keeps_start_usage() -> None:
    tap = UsageTap(sse=True)
    tap.feed(STREAM[: STREAM.index(b"event: message_delta")])
    assert tap.result() == {**EXPECTED, "output_tokens": 1}


JSON_BODY = json.dumps({"id": "m", "type": "message", "usage": {"input_tokens": 9, "output_tokens": 4}}).encode()


def _deflate(data: bytes, wbits: int) -> bytes:
    c = zlib.compressobj(wbits=wbits)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(("encoding", "wbits"), [("gzip", 31), ("x-gzip", 31), ("deflate", 15), ("deflate", -15)])
def test_compressed_json_answer_is_read(encoding: str, wbits: int) -> None:
    tap = UsageTap(sse=False, encoding=encoding)
    body = _deflate(JSON_BODY, wbits)
    for i in range(0, len(body), 7):
        tap.feed(body[i:i + 7])
    assert tap.result() == {"input_tokens": 9, "output_tokens": 4}


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=20))
def test_gzip_sse_usage_for_any_chunking(cuts: list[int]) -> None:
    body = gzip.compress(STREAM)
    points = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    tap = UsageTap(sse=True, encoding="gzip")
    for a, b in pairwise(points):
        tap.feed(body[a:b])
    assert tap.result() == EXPECTED


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
def test_unreadable_encodings_are_not_guessed_at(encoding: str) -> None:
    tap = UsageTap(sse=False, encoding=encoding)
    tap.feed(JSON_BODY)  # even bytes that happen to be plain JSON: the header says otherwise
    assert not tap.readable and tap.result() is None


def test_corrupt_gzip_counts_nothing_and_raises_nothing() -> None:
    tap = UsageTap(sse=True, encoding="gzip")
    tap.feed(b"\x1f\x8b not really gzip")
    tap.feed(STREAM)
    assert tap.result() is None


def test_accept_encoding_is_narrowed_to_what_the_tap_reads() -> None:
    assert readable_codings("gzip, deflate, br, zstd") == "gzip, deflate"
    assert readable_codings("br;q=1.0, gzip;q=0.8") == "gzip;q=0.8"
    assert readable_codings("br, zstd") == "identity"
    assert readable_codings("identity") == "identity"


def _peak_while_feeding(tap: UsageTap, pieces: list[bytes]) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for piece in pieces:
            tap.feed(piece)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_a_line_without_newline_is_held_bounded_then_skipped() -> None:
    """An upstream sending one endless SSE line: the tap holds at most LINE_LIMIT of it (it
    used to re-copy the whole line per chunk), relays on, and reads the lines after it."""
    from ccgate.wire.usage import LINE_LIMIT

    tap = UsageTap(sse=True)
    piece = b"x" * 4096
    pieces = [b"data: " + piece] + [piece] * (8 * LINE_LIMIT // len(piece))  # 8x the limit
    peak = _peak_while_feeding(tap, pieces)
    assert peak < 2 * LINE_LIMIT + 256 * 1024
    tap.feed(b"\n\n" + STREAM)
    assert tap.result() == EXPECTED


def test_a_long_line_under_the_limit_is_still_read() -> None:
    start, rest = STREAM.split(b"\n\n", 1)
    padded = start.replace(b'"id": "m"', b'"id": "' + b"m" * 200_000 + b'"')
    tap = UsageTap(sse=True)
    for i in range(0, len(padded), 1000):  # held across 200 chunks, joined once
        tap.feed(padded[i:i + 1000])
    tap.feed(b"\n\n" + rest)
    assert tap.result() == EXPECTED
