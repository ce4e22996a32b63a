"""The plain text fast path (``StreamPipeline.feed_sse``) against the generic one (``feed``).

Both roads take the same provider bytes, in the same reads; the client must get the same
bytes, and the pipeline must end with the same bookkeeping (usage, error, completion, time to
first token's flag, warnings). The corpus: every OpenAI stream fixture the tests use (the
recorded provider streams, the gateway tests' and the lab's chunk shapes, the bench's paced
stream), and generated streams mixing plain text chunks with everything that must not take
the short road, serialised and split every which way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from bench import answers
from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.translate import StreamPipeline, StreamTranslator, ToolNames
from ccgate.translate.response import DEFAULT_REASONING_FIELDS
from ccgate.wire.sse import encode_events
from tests.lab.scripted import openai_chunk, openai_sse
from tests.translate.helpers import STREAMS, split, stream_meta


class CountingTranslator(StreamTranslator):
    """Counts the chunks that took the fast path, so a test can tell it was taken."""

    fast = 0

    def plain_text(self, text: str) -> int:
        index = super().plain_text(text)
        self.fast += index >= 0
        return index


Make = Callable[[], tuple[StreamPipeline, CountingTranslator]]


def maker(*, provider: str = "local", tools: Iterable[str] = ("get_weather",), estimate: int = 50,
          reasoning_fields: tuple[str, ...] = DEFAULT_REASONING_FIELDS, emit_thinking: bool = True) -> Make:
    def make() -> tuple[StreamPipeline, CountingTranslator]:
        translator = CountingTranslator(
            model="claude-x", tools=ToolNames(list(tools)), input_tokens_estimate=estimate,
            message_id="msg_fast", provider=provider, reasoning_fields=reasoning_fields,
            emit_thinking=emit_thinking)
        return StreamPipeline(translator, provider=provider), translator
    return make


def outcome(pipeline: StreamPipeline, translator: StreamTranslator, out: bytes) -> dict[str, Any]:
    return {"bytes": out, "usage": pipeline.usage, "error": pipeline.error, "complete": pipeline.complete,
            "finished": pipeline.finished, "beyond_start": pipeline.beyond_start,
            "warnings": translator.warnings}


def generic(make: Make, pieces: list[bytes]) -> dict[str, Any]:
    pipeline, translator = make()
    out = encode_events(pipeline.start())
    for piece in pieces:
        out += encode_events(pipeline.feed(piece))
    out += encode_events(pipeline.close())
    assert translator.fast == 0
    return outcome(pipeline, translator, out)


def fast(make: Make, pieces: list[bytes]) -> tuple[dict[str, Any], int]:
    pipeline, translator = make()
    out = encode_events(pipeline.start())
    for piece in pieces:
        out += pipeline.feed_sse(piece)
    out += encode_events(pipeline.close())
    return outcome(pipeline, translator, out), translator.fast


def same(make: Make, pieces: list[bytes]) -> int:
    """Both roads over ``pieces``: identical; the number of chunks that took the short one."""
    want = generic(make, pieces)
    got, taken = fast(make, pieces)
    assert got == want
    return taken


def events_of(raw: bytes) -> list[bytes]:
    """One read per SSE event (a paced upstream), blank-line separated, LF or CRLF."""
    sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    parts = raw.split(sep)
    return [p + sep for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


# -- the fixtures the tests already use ------------------------------------------------------
FIXTURES = sorted(p.stem for p in STREAMS.glob("*.sse"))


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("emit_thinking", [True, False])
def test_recorded_provider_streams_give_the_same_bytes(name: str, emit_thinking: bool) -> None:
    meta = stream_meta(name)
    make = maker(provider=meta["provider"], tools=meta["tools"], estimate=meta["estimate"],
                 emit_thinking=emit_thinking)
    raw = (STREAMS / f"{name}.sse").read_bytes()
    same(make, [raw])
    same(make, events_of(raw))
    same(make, split(raw, range(7, len(raw), 61)))
    same(make, [bytes([b]) for b in raw[:400]] + [raw[400:]])
    same(make, longer(events_of(raw)))


def longer(events: list[bytes]) -> list[bytes]:
    """A recorded stream with each of its text chunks (content, no finish) sent three times:
    the recordings are short, a real answer has many such chunks in a row."""
    out = []
    for event in events:
        out.append(event)
        try:
            choice = json.loads(event.removeprefix(b"data: "))["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        if choice.get("delta", {}).get("content") and not choice.get("finish_reason"):
            out += [event, event]
    return out


def test_the_recorded_streams_take_the_short_road_where_they_are_plain_text() -> None:
    taken = {}
    for name in FIXTURES:
        meta = stream_meta(name)
        make = maker(provider=meta["provider"], tools=meta["tools"], estimate=meta["estimate"])
        taken[name] = same(make, longer(events_of((STREAMS / f"{name}.sse").read_bytes())))
    # OpenRouter's text chunks carry a role and "reasoning": null, vLLM's logprobs: plain all the same.
    assert taken["openrouter_reasoning"] >= 2 and taken["vllm_stop_sequence"] == 2, taken
    assert taken["deepseek_reasoning_tool"] >= 3, taken


def test_the_bench_paced_stream_takes_the_short_road_for_every_chunk_after_the_first() -> None:
    make = maker(provider="bench")
    assert same(make, events_of(answers.OAI_LONG_SSE)) == answers.N_CHUNKS - 1
    assert same(make, [answers.OAI_LONG_SSE]) == 0  # one read of many events: the generic road
    assert same(make, events_of(answers.OAI_SHORT_SSE)) == 1  # "Hello!" opens the block


def _gateway_chunk(delta: dict[str, Any], finish: str | None = None,
                   usage: dict[str, int] | None = None) -> bytes:
    # tests/gateway's builders: json.dumps with its default separators.
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "model": "qwen3",
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


def test_the_gateway_and_lab_chunk_shapes_give_the_same_bytes() -> None:
    make = maker()
    gateway = [_gateway_chunk({"role": "assistant", "content": "Hel"}), _gateway_chunk({"content": "lo"}),
               _gateway_chunk({"content": " there"}), _gateway_chunk({}, "stop"),
               b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}\n\n',
               b"data: [DONE]\n\n"]
    assert same(make, gateway) == 2
    lab = [openai_sse(openai_chunk({"role": "assistant", "content": ""})),
           *(openai_sse(openai_chunk({"content": f"piece {i} "})) for i in range(5)),
           openai_sse(openai_chunk({}, finish_reason="stop")),
           openai_sse(openai_chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 5})),
           b"data: [DONE]\n\n"]
    assert same(make, lab) == 4  # "usage": null in every chunk is plain too


def test_what_the_short_road_must_refuse_goes_the_generic_way() -> None:
    def data(obj: Any) -> bytes:
        return f"data: {json.dumps(obj)}\n\n".encode()

    def text(content: Any = "x", **choice: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": {"content": content}, **choice}]}

    opening = [data(text("Hi"))]
    for odd in [
        {**text(), "error": None}, {**text(), "object": "error"}, {**text(), "usage": {"completion_tokens": 4}},
        {**text(), "usage": {}}, {"choices": [*text()["choices"], *text()["choices"]]},
        text(index=1), text(finish_reason="stop"), text(stop_reason="</s>"), text(None), text(7),
        {"choices": [{"index": 0, "delta": {"content": "a", "refusal": "no"}}]},
        {"choices": [{"index": 0, "delta": {"content": "a", "reasoning_content": "hmm"}}]},
        {"choices": [{"index": 0, "delta": {"content": "a", "reasoning_details": [
            {"type": "reasoning.text", "text": "r"}]}}]},
        {"choices": [{"index": 0, "delta": {"content": "a", "tool_calls": [{"index": 0}]}}]},
        {"choices": [{"index": 0, "delta": {"content": "a", "tool_calls": [
            {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": "{}"}}]}}]},
        {"choices": [{"index": 0, "delta": {"content": "a", "function_call": {"name": "get_weather"}}}]},
        {"choices": [{"index": 0, "message": {"content": "whole"}}]},
    ]:
        assert same(maker(), [*opening, data(odd)]) == 0, odd
        same(maker(), [*opening, data(odd), data(text("after")), b"data: [DONE]\n\n"])
    raw_odd = [b'data: {"choices":[{"delta":{"content":"\xff"}}]}\n\n',  # bad UTF-8: replaced
               b'data: {"choices":[{"delta":{"content":"\\ud800"}}]}\n\n',  # a lone surrogate
               b'data: {"choices":[{"delta":{"content":"a"}}]} \x1c\n\n',  # str.strip() takes \x1c
               b'data:{"choices":[{"delta":{"content":"a"}}]}\n\n',
               b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n']
    for raw in raw_odd:
        assert same(maker(), [*opening, raw]) == 0, raw
        same(maker(), [*opening, raw, data(text("after")), b"data: [DONE]\n\n"])
    # Empty lists add nothing on either road; the short one takes them.
    for benign in ['"tool_calls":[]', '"reasoning_details":[]', '"tool_calls":null,"reasoning":null']:
        chunk = f'data: {{"choices":[{{"delta":{{"content":"a",{benign}}}}}]}}\n\n'.encode()
        assert same(maker(), [*opening, chunk, b"data: [DONE]\n\n"]) == 1, benign
    # Empty content: no event on either road, and not a refusal (no give-up after many).
    empty = data(text(""))
    assert same(maker(), [*opening, *[empty] * 20, data(text("after"))]) == 1
    # A repeated key: the last wins on both roads, so the short one may take it.
    assert same(maker(), [*opening, b'data: {"choices":[{"delta":{"content":"a","content":"b"}}]}\n\n']) == 1


def test_a_provider_whose_text_chunks_are_never_plain_stops_being_tried() -> None:
    # usage in every chunk (vLLM's continuous usage stats): each refusal costs a typed decode.
    def noisy(i: int) -> bytes:
        return openai_sse(openai_chunk({"content": f"n{i}"}, usage={"prompt_tokens": 3, "completion_tokens": i}))

    plain = [openai_sse(openai_chunk({"content": f"p{i}"})) for i in range(5)]
    assert same(maker(), [*(noisy(i) for i in range(16)), *plain]) == 5  # 15 refusals in a row: still tried
    assert same(maker(), [*(noisy(i) for i in range(17)), *plain]) == 0  # 16: given up for this stream
    mixed = [noisy(0)] + [p for i in range(20) for p in (noisy(i), plain[i % 5])]
    assert same(maker(), mixed) == 20  # a plain chunk in between starts the count again


def test_a_reasoning_field_that_is_also_the_content_key_disables_the_short_road() -> None:
    make = maker(reasoning_fields=("content",))
    chunks = [openai_sse(openai_chunk({"content": f"c{i}"})) for i in range(4)]
    assert same(make, chunks) == 0


# -- generated streams ---------------------------------------------------------------------
_texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=" \t\n\r\u00a0\u2028", max_size=4),  # whitespace only, JSON escapes
    st.sampled_from(['"', "\\", "\\u0041", "</s>", "\U0001f600", "é", "\x00\x1f", "k001@123|"]),
)
_NULLABLE_DELTA = ["refusal", "tool_calls", "function_call", "reasoning_content", "reasoning",
                   "reasoning_details", "thoughts"]


@st.composite
def text_chunks(draw: st.DrawFn) -> dict[str, Any]:
    """A text chunk, mostly plain, sometimes with one thing that makes it not plain."""
    delta: dict[str, Any] = {"content": draw(_texts)}
    if draw(st.booleans()):
        delta["role"] = "assistant"
    for key in draw(st.lists(st.sampled_from(_NULLABLE_DELTA), max_size=2)):
        delta[key] = draw(st.sampled_from([None, None, "", "why", [], [{"type": "reasoning.text", "text": "r"}]]))
    choice: dict[str, Any] = {"delta": delta, "logprobs": None}
    index = draw(st.sampled_from([0, 0, 0, None, 1, "absent"]))
    if index != "absent":
        choice["index"] = index
    if draw(st.integers(0, 5)) == 0:
        choice["finish_reason"] = draw(st.sampled_from([None, "", "stop", "length"]))
    if draw(st.integers(0, 7)) == 0:
        choice["stop_reason"] = draw(st.sampled_from([None, 2, "</s>"]))
    chunk: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
                             "choices": [choice]}
    if draw(st.integers(0, 5)) == 0:
        chunk["usage"] = draw(st.sampled_from([None, {}, {"prompt_tokens": 4, "completion_tokens": 2}]))
    if draw(st.integers(0, 20)) == 0:
        chunk["choices"].append({"index": 1, "delta": {"content": "second choice"}})
    return chunk


def _other_chunks() -> st.SearchStrategy[dict[str, Any]]:
    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **top: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": choices, **top}

    return st.one_of(
        st.just(chunk({"role": "assistant", "content": ""})),
        st.just(chunk({"role": "assistant", "content": None})),
        st.builds(lambda t: chunk({"reasoning_content": t}), _texts),
        st.builds(lambda t: chunk({"reasoning": t}), _texts),
        st.just(chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                       "function": {"name": "get_weather", "arguments": ""}}]})),
        st.builds(lambda a: chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}),
                  st.sampled_from(['{"city"', ': "Paris"}', "{}"])),
        st.sampled_from([chunk({}, "stop"), chunk({}, "length"), chunk({}, "tool_calls"), chunk({}, "error")]),
        st.just(chunk(None, usage={"prompt_tokens": 12, "completion_tokens": 7})),
        st.just(chunk(None, usage={"prompt_tokens": 12})),
        st.just({"error": {"message": "model overloaded", "code": 503}}),
    )


_RAW_EVENTS = [b": keep-alive\n\n", b"data:\n\n", b"data:   \n\n", b"event: noise\n", b"id: 7\n",
               b"data: {oops\n\n", b"data: [1]\n\n", b"data: [DONE]\n\n", b"retry: 10\n\n",
               b"\xe4", b"\xff", b"\r"]  # stray bytes between events: held, or a line of their own


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """The events of one stream, each serialised its own way."""
    items: list[dict[str, Any] | bytes] = []
    if draw(st.booleans()):
        items.append({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.integers(0, 9))
        if kind < 6:
            items.append(draw(text_chunks()))
        elif kind < 9:
            items.append(draw(_other_chunks()))
        else:
            items.append(draw(st.sampled_from(_RAW_EVENTS)))
    if draw(st.booleans()):
        items.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if draw(st.booleans()):
        items.append({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}})
    if draw(st.booleans()):
        items.append(b"data: [DONE]\n\n")
    events = []
    for item in items:
        if isinstance(item, bytes):
            events.append(item)
            continue
        text = json.dumps(item, ensure_ascii=draw(st.booleans()),
                          separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
        prefix = draw(st.sampled_from(["data: ", "data: ", "data: ", "data:", "data:  "]))
        end = draw(st.sampled_from(["\n\n", "\n\n", "\n\n", "\r\n\r\n", "\r\r", "\n \n\n"]))
        if draw(st.integers(0, 15)) == 0 and "," in text:  # the JSON over two data: lines
            head, _, tail = text.partition(",")
            text = head + ",\ndata: " + tail
        events.append((prefix + text + end).encode())
    if events and draw(st.integers(0, 10)) == 0:
        events[0] = b"\xef\xbb\xbf" + events[0]  # a byte-order mark
    return events


@st.composite
def reads(draw: st.DrawFn, events: list[bytes]) -> list[bytes]:
    """How the events arrive: one read each (paced), in groups, or cut anywhere."""
    how = draw(st.sampled_from(["each", "each", "groups", "cuts", "each-some-cut"]))
    raw = b"".join(events)
    if how == "each":
        return events
    if how == "cuts":
        return split(raw, draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=12)))
    if how == "groups":
        out, i = [], 0
        while i < len(events):
            n = draw(st.integers(1, 3))
            out.append(b"".join(events[i:i + n]))
            i += n
        return out
    out = []
    for event in events:
        if len(event) > 2 and draw(st.integers(0, 4)) == 0:
            out += split(event, [draw(st.integers(1, len(event) - 1))])
        else:
            out.append(event)
    return out


@settings(max_examples=400, deadline=None)
@given(data=st.data(), events=streams(), emit_thinking=st.booleans(),
       fields=st.sampled_from([DEFAULT_REASONING_FIELDS, ("reasoning",), (), ("thoughts", "reasoning_content")]))
def test_generated_streams_give_the_same_bytes_whatever_the_reads(
    data: st.DataObject, events: list[bytes], emit_thinking: bool, fields: tuple[str, ...],
) -> None:
    pieces = data.draw(reads(events))
    same(maker(reasoning_fields=fields, emit_thinking=emit_thinking), pieces)


def test_a_plain_chunk_after_a_partial_read_is_read_whole_by_the_generic_road() -> None:
    # The decoder holds half a line: the next read, though it looks like a lone event, is the
    # rest of that line plus more, and only the generic decoder knows.
    make = maker()
    first = openai_sse(openai_chunk({"content": "Hi"}))
    plain = openai_sse(openai_chunk({"content": "there"}))
    assert same(make, [first, b"data: {\"choi", plain]) == 0
    assert same(make, [first, plain, plain]) == 2
    # A read ending in a blank line and the first byte of a UTF-8 sequence: the decoder holds
    # that byte, and the next read, a lone event by its bytes, starts with its bad sequence.
    assert same(make, [first, plain + b"\xe4", plain, plain]) == 1
