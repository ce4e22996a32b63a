"""translate.StreamPipeline: provider SSE bytes in, Anthropic events out, as the relay runs it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.translate import StreamPipeline, StreamTranslator, ToolNames
from tests.translate.grammar import validate
from tests.translate.helpers import pipe, split


def pipeline() -> StreamPipeline:
    translator = StreamTranslator(model="claude-x", tools=ToolNames(), input_tokens_estimate=10,
                                  message_id="msg_t", provider="local")
    return StreamPipeline(translator, provider="local")


def data(obj: Any) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def text(content: str, finish: str | None = None) -> bytes:
    return data({"id": "c", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]})


def names(events: list[Any]) -> list[str]:
    return [name for name, _ in events]


def test_done_ends_the_stream_and_what_follows_is_ignored() -> None:
    p = pipeline()
    events = pipe(p, [text("Hi", "stop"), b"data: [DONE]\n\n", text("late")])
    assert names(events)[-1] == "message_stop"
    assert "late" not in json.dumps(events)
    assert p.complete and p.finished and p.error is None
    validate(events)


def test_malformed_chunk_is_an_error_event_not_an_exception() -> None:
    p = pipeline()
    events = pipe(p, [text("Hi"), b"data: {oops\n\n", text("more")])
    assert events[-1][0] == "error"
    assert p.error == "provider 'local' sent a malformed stream chunk"
    assert not p.complete  # the relay stopped reading: the connection must be closed, not reused


def test_a_json_value_that_is_not_an_object_is_malformed_too() -> None:
    p = pipeline()
    assert pipe(p, [b"data: [1, 2]\n\n"])[-1][0] == "error"


def test_comments_and_empty_payloads_are_skipped() -> None:
    p = pipeline()
    events = pipe(p, [b": OPENROUTER PROCESSING\n\n", b"data:\n\n", b"data:   \n\n", text("Hi", "stop"),
                      b"data: [DONE]\n\n"])
    assert names(events)[-1] == "message_stop" and p.error is None


def test_eof_before_done_without_a_finish_reason_is_an_error() -> None:
    p = pipeline()
    events = pipe(p, [text("Hi")])
    assert events[-1][0] == "error" and "closed the stream before it finished" in (p.error or "")
    assert p.complete  # read to EOF: nothing left on the connection


def test_eof_before_done_after_a_finish_reason_is_a_normal_end() -> None:
    p = pipeline()
    events = pipe(p, [text("Hi", "stop")])
    assert names(events)[-1] == "message_stop" and p.error is None


def test_event_without_final_blank_line_is_dispatched_at_eof() -> None:
    p = pipeline()
    events = pipe(p, [text("Hi", "stop"), b"data: [DONE]\n"])
    assert names(events)[-1] == "message_stop" and p.complete


def test_usage_is_remembered_for_accounting() -> None:
    p = pipeline()
    usage = data({"id": "c", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}})
    pipe(p, [text("Hi", "stop"), usage, b"data: [DONE]\n\n"])
    assert p.usage is not None and p.usage["output_tokens"] == 2


def test_fail_after_start_ends_with_the_transport_error() -> None:
    p = pipeline()
    p.start()
    p.feed(text("Hi"))
    events = p.fail("api_error", "provider closed the connection")
    assert events[-1][0] == "error" and p.error == "provider closed the connection"
    assert p.finished and p.feed(text("more")) == [] and p.close() == []


def test_error_chunk_from_the_provider_ends_the_stream() -> None:
    p = pipeline()
    events = pipe(p, [text("Hi"), data({"error": {"message": "model overloaded", "code": 503}})])
    assert events[-1][0] == "error" and "overloaded" in (p.error or "")


@settings(max_examples=60, deadline=None)
@given(bad_at=st.integers(0, 3), cuts=st.lists(st.integers(1, 400), max_size=20),
       sep=st.sampled_from(["\n", "\r\n"]))
def test_any_chunking_gives_the_same_events_errors_included(bad_at: int, cuts: list[int], sep: str) -> None:
    parts = [text(f"t{i}").decode().replace("\n", sep) for i in range(4)]
    parts[bad_at] = f"data: {{broken{sep}{sep}"
    raw = "".join(parts).encode()
    whole = pipe(pipeline(), [raw])
    assert whole[-1][0] == "error"
    assert pipe(pipeline(), split(raw, cuts)) == whole


def test_an_endless_line_ends_the_stream_with_an_error_not_unbounded_memory() -> None:
    from ccgate.wire.sse import MAX_EVENT_CHARS

    p = pipeline()
    events = p.start() + p.feed(text("Hi"))
    piece = b"data: " + b"z" * 65536
    for _ in range(MAX_EVENT_CHARS // 65536 + 2):
        events += p.feed(piece)
        if p.finished:
            break
    assert p.finished and events[-1][0] == "error"
    assert p.error is not None and "longer than" in p.error and "'local'" in p.error
    assert not p.complete
