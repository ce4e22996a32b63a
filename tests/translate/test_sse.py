from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ccgate.wire.openai import ChunkDecodeError, decode_chunk, iter_chunks
from ccgate.wire.sse import SSEDecoder, SSEEvent, encode_event, encode_events
from tests.translate.helpers import split


def decode_all(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.close()


def test_lf_crlf_and_cr_line_endings_are_equivalent() -> None:
    for sep in (b"\n", b"\r\n", b"\r"):
        raw = b"event: a" + sep + b"data: 1" + sep + sep + b"data: 2" + sep + sep
        assert decode_all([raw]) == [SSEEvent("1", "a"), SSEEvent("2")]


def test_crlf_split_between_cr_and_lf_is_one_line_ending() -> None:
    assert decode_all([b"data: x\r", b"\n\r", b"\ndata: y\r\n\r\n"]) == [SSEEvent("x"), SSEEvent("y")]


def test_comments_are_skipped_and_counted() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b": OPENROUTER PROCESSING\n\n: keep-alive\n\ndata: {}\n\n")
    assert events == [SSEEvent("{}")]
    assert decoder.comments == 2


def test_multi_line_data_is_joined_with_newline() -> None:
    assert decode_all([b"data: a\ndata:b\ndata:  c\n\n"]) == [SSEEvent("a\nb\n c")]


def test_field_without_colon_and_unknown_fields() -> None:
    assert decode_all([b"data\nretry: 10\nfoo: bar\n\n"]) == [SSEEvent("")]


def test_event_without_data_is_not_dispatched() -> None:
    assert decode_all([b"event: ping\n\ndata: x\n\n"]) == [SSEEvent("x")]


def test_id_is_remembered() -> None:
    assert decode_all([b"id: 7\ndata: x\n\ndata: y\n\n"]) == [SSEEvent("x", id="7"), SSEEvent("y", id="7")]


def test_bom_is_dropped_only_at_start() -> None:
    assert decode_all([b"\xef\xbb", b"\xbfdata: x\n\n"]) == [SSEEvent("x")]


def test_utf8_split_inside_a_sequence() -> None:
    raw = "data: température 日本\n\n".encode()
    for cut in range(1, len(raw)):
        assert decode_all([raw[:cut], raw[cut:]]) == [SSEEvent("température 日本")]


def test_trailing_event_without_blank_line_is_dispatched_on_close() -> None:
    assert decode_all([b"data: [DONE]\n"]) == [SSEEvent("[DONE]")]
    assert decode_all([b"data: [DONE]"]) == [SSEEvent("[DONE]")]
    assert decode_all([b"data: x\r"]) == [SSEEvent("x")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_all([b"data: \xff\n\n"]) == [SSEEvent("\ufffd")]


def test_encoder_round_trips() -> None:
    events = [("message_start", {"type": "message_start", "text": "a\nb"}), ("ping", {"type": "ping"})]
    raw = encode_events(events)
    assert raw.startswith(b"event: message_start\ndata: {")
    assert encode_event("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    decoded = decode_all([raw])
    assert [(e.event, e.data) for e in decoded] == [
        ("message_start", '{"type":"message_start","text":"a\\nb"}'),
        ("ping", '{"type":"ping"}'),
    ]


def test_decode_chunk() -> None:
    assert decode_chunk(" [DONE] ") is None
    assert decode_chunk('{"a": 1}') == {"a": 1}
    for bad in ("nope", "[1]"):
        try:
            decode_chunk(bad)
        except ChunkDecodeError:
            continue
        raise AssertionError(bad)
    assert list(iter_chunks([SSEEvent(""), SSEEvent('{"x":1}'), SSEEvent("[DONE]")])) == [{"x": 1}, None]


_line = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20)


@given(
    payloads=st.lists(_line, min_size=1, max_size=6),
    sep=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=30),
)
def test_any_split_of_any_stream_decodes_the_same(
    payloads: list[str], sep: str, comments: bool, cuts: list[int]
) -> None:
    text = ""
    for p in payloads:
        if comments:
            text += ": keepalive" + sep
        text += "data: " + p + sep + sep
    raw = text.encode()
    whole = decode_all([raw])
    assert [e.data for e in whole] == payloads  # "data: " loses exactly its one space
    assert decode_all(split(raw, cuts)) == whole


def test_a_held_line_is_joined_once_and_bounded() -> None:
    import pytest

    from ccgate.wire.sse import SSEEventTooLarge

    decoder = SSEDecoder(max_chars=10_000)
    for _ in range(9):  # 9,000 characters of one line, no end yet: held, nothing decoded
        assert decoder.feed(b"x" * 1000) == []
    assert decoder.feed(b"\n\ndata: ok\n\n") == [SSEEvent(data="ok")]  # the long line was "xxx...": no field
    with pytest.raises(SSEEventTooLarge):
        for _ in range(11):
            decoder.feed(b"data: " + b"y" * 994)  # one line past 10,000 characters
    many = SSEDecoder(max_chars=10_000)
    with pytest.raises(SSEEventTooLarge):  # many short data lines, no blank line to end the event
        for _ in range(2000):
            many.feed(b"data: 12345678\n")


_FRAGMENTS = [b"data: {\"a\":1}", b"\n", b"\r", b"\r\n", b"\n\n", b"\xe4", b"\xb8\xad", b"\xef\xbb\xbf",
              b": comment", b"event: x", b"id: 9", b"data:", b" ", b"data: [DONE]"]


@given(before=st.lists(st.lists(st.sampled_from(_FRAGMENTS), max_size=5).map(b"".join), max_size=6),
       candidate=st.sampled_from([b"data: {\"b\":2}\n\n", b"data: \xe4\xb8\xad\n\n", b"data: \xe4\n\n",
                                  b"data:  x\n\n", b"data: x\r\n\n", b"data: x\n\n\n", b"data: x\n",
                                  b"data: a\ndata: b\n\n", b"data: \n\n"]),
       after=st.sampled_from([b"", b"data: after\n\n", b"\n", b"\xad rest\n\n"]))
def test_lone_data_is_what_feed_would_have_done(before: list[bytes], candidate: bytes, after: bytes) -> None:
    """Wherever ``lone_data`` takes a read, ``feed`` would have given that one event and left the
    decoder as ``lone_data`` leaves it: the events after it are the same either way."""
    taken, fed = SSEDecoder(), SSEDecoder()
    for piece in before:
        assert taken.feed(piece) == fed.feed(piece)
    payload = taken.lone_data(candidate)
    events = fed.feed(candidate)
    if payload is None:
        taken.feed(candidate)
    else:
        assert [e.data for e in events] == [payload.decode("utf-8", errors="replace")]
    assert taken.feed(after) + taken.close() == fed.feed(after) + fed.close()


def test_lone_data_only_when_nothing_is_held() -> None:
    lone = b'data: {"b":2}\n\n'
    decoder = SSEDecoder()
    assert decoder.lone_data(lone) is None  # nothing fed yet: a byte-order mark may still come
    decoder.feed(b"data: 1\n\n")
    assert decoder.lone_data(lone) == b'{"b":2}'
    for held in (b"data: par", b"data: 1\n", b"data: 1\n\n\xe4", b"data: 1\r\n\r"):
        d = SSEDecoder()
        d.feed(b"data: 0\n\n" + held)
        assert d.lone_data(lone) is None, held
    assert decoder.lone_data(b'data: {"b":2}\n\ndata: 3\n\n') is None  # two events: feed them
    assert decoder.lone_data(b'data: x\r\n\r\n') is None
_TRICKY = [
    b"data: a\n\n",
    b"data:b\n\n",  # no space after the colon
    b"event: ping\ndata: {}\n\n",
    b": keepalive\n\ndata: c\n\n",
    b"id: 9\ndata: d\n\n\n\ndata: e\n\n",  # blank lines between events
    b"data: f\ndata: g\n\n",
    b"event: x\n\ndata: h\n\n",  # an event name with no data is dropped
    b"\n\n\ndata: i\n\n",
    b"data: j\n\ndata: k",  # the last event never ended
    b"data: \n\n",  # empty data
    b"retry: 5\ndata: l\n\nevent: done\ndata: [DONE]\n\n",
]


@given(st.lists(st.sampled_from(_TRICKY), min_size=1, max_size=6), st.lists(st.integers(0, 400), max_size=4))
def test_whole_events_split_at_once_decode_as_line_by_line(parts: list[bytes], cuts: list[int]) -> None:
    """The split of whole events at an event boundary (the common case: a chunk of complete
    one-line ``data:`` events) gives what feeding one byte at a time, line by line, gives."""
    raw = b"".join(parts)
    one_by_one = decode_all([raw[i : i + 1] for i in range(len(raw))])
    assert decode_all([raw]) == one_by_one
    assert decode_all(split(raw, cuts)) == one_by_one


def test_the_size_limit_holds_for_events_split_whole() -> None:
    import pytest

    from ccgate.wire.sse import SSEEventTooLarge

    assert SSEDecoder(max_chars=100).feed(b"data: " + b"y" * 99 + b"\n\n") == [SSEEvent("y" * 99)]
    with pytest.raises(SSEEventTooLarge):
        SSEDecoder(max_chars=100).feed(b"data: " + b"y" * 100 + b"\n\n")


def test_events_encoded_together_are_each_encoded_in_turn() -> None:
    events = [("message_start", {"type": "message_start"}), ("ping", {"type": "ping"}),
              ("custom_event", {"a": [1, "é"]}), ("error", {"error": {"message": "x\ny"}})]
    assert encode_events(events) == b"".join(encode_event(n, d) for n, d in events)
