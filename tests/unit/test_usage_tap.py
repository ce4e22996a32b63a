import json
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

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


def test_stream_cut_before_message_delta_keeps_start_usage() -> None:
    tap = UsageTap(sse=True)
    tap.feed(STREAM[: STREAM.index(b"event: message_delta")])
    assert tap.result() == {**EXPECTED, "output_tokens": 1}
