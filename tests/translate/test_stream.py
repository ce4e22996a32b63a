from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.translate import StreamPipeline, StreamTranslator, ToolNames, stream_from_response
from ccgate.translate.tokens import count_text
from tests.translate.grammar import validate
from tests.translate.helpers import pipe, split


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]
    out: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "choices": choices}
    if usage is not None:
        out["usage"] = usage
    return out


def run(chunks: list[dict[str, Any]], tools: ToolNames | None = None, estimate: int = 100) -> list[Any]:
    st_ = StreamTranslator(
        model="claude-x", tools=tools or ToolNames(), input_tokens_estimate=estimate, message_id="msg_t"
    )
    events = st_.start()
    for c in chunks:
        events += st_.feed(c)
    events += st_.finish()
    return events


def names(events: list[Any]) -> list[str]:
    return [n for n, _ in events]


def test_message_start_never_reports_zero_input_tokens() -> None:
    events = run([chunk({"content": "hi"}, "stop")], estimate=0)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 1


def test_usage_chunk_after_finish_reason_is_consumed() -> None:
    events = run(
        [
            chunk({"content": "Hello"}, "stop"),
            chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 7}),
        ]
    )
    message = validate(events)
    assert message["usage"]["input_tokens"] == 50 and message["usage"]["output_tokens"] == 7
    assert message["stop_reason"] == "end_turn"


def test_no_usage_falls_back_to_estimates() -> None:
    message = validate(run([chunk({"content": "Hello there"}, "stop")], estimate=321))
    assert message["usage"]["input_tokens"] == 321 and message["usage"]["output_tokens"] >= 1


def test_output_estimate_counts_every_piece_sent() -> None:
    pieces = ["Hello there, ", "general Kenobi. ", "x" * 40, "\n\n1234567"]
    message = validate(run([chunk({"content": p}) for p in pieces] + [chunk({}, "stop")]))
    assert message["usage"]["output_tokens"] == sum(count_text(p) for p in pieces)


def test_whitespace_only_text_opens_no_block() -> None:
    events = run([chunk({"content": "\n\n"}), chunk({"content": "  "}, "stop")])
    message = validate(events)
    assert message["content"] == []
    assert names(events) == ["message_start", "message_delta", "message_stop"]


def test_leading_whitespace_is_kept_once_text_arrives() -> None:
    message = validate(run([chunk({"content": "\n"}), chunk({"content": " hi"}, "stop")]))
    assert message["content"] == [{"type": "text", "text": "\n hi"}]


def test_tool_calls_with_finish_reason_stop_give_tool_use() -> None:
    message = validate(
        run(
            [
                chunk(
                    {
                        "tool_calls": [
                            {"index": 0, "id": "call_1", "function": {"name": "Bash", "arguments": "{}"}}
                        ]
                    }
                ),
                chunk({}, "stop"),
            ]
        )
    )
    assert message["stop_reason"] == "tool_use"


def test_tool_call_without_arguments_sends_empty_object() -> None:
    events = run([chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "Now"}}]}, "tool_calls")])
    assert (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
    ) in events
    assert validate(events)["content"][0]["input"] == {}


def test_arguments_before_name_are_held_until_the_name_arrives() -> None:
    message = validate(
        run(
            [
                chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"arguments": '{"a":'}}]}),
                chunk(
                    {"tool_calls": [{"index": 0, "function": {"name": "Read", "arguments": " 1}"}}]},
                    "tool_calls",
                ),
            ]
        )
    )
    assert message["content"][0] | {"input": None} == {
        "type": "tool_use",
        "id": "c",
        "name": "Read",
        "input": None,
    }
    assert message["content"][0]["input"] == {"a": 1}


def test_fragments_without_id_or_index_go_to_the_current_call() -> None:
    message = validate(
        run(
            [
                chunk({"tool_calls": [{"id": "c1", "function": {"name": "A", "arguments": '{"x"'}}]}),
                chunk({"tool_calls": [{"function": {"arguments": ": 2}"}}]}),
                chunk(
                    {"tool_calls": [{"id": "c2", "function": {"name": "B", "arguments": "{}"}}]}, "tool_calls"
                ),
            ]
        )
    )
    assert [(b["name"], b["input"]) for b in message["content"]] == [("A", {"x": 2}), ("B", {})]


def test_ollama_without_ids_same_index_complete_calls_are_separate() -> None:
    message = validate(
        run(
            [
                chunk({"tool_calls": [{"index": 0, "function": {"name": "A", "arguments": '{"q": 1}'}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"name": "A", "arguments": '{"q": 2}'}}]}),
                chunk({}, "stop"),
            ]
        )
    )
    assert [b["input"] for b in message["content"]] == [{"q": 1}, {"q": 2}]
    assert len({b["id"] for b in message["content"]}) == 2


def test_late_fragment_for_a_closed_call_is_dropped_with_a_warning() -> None:
    translator = StreamTranslator(model="m", tools=ToolNames(), input_tokens_estimate=5)
    events = translator.start()
    events += translator.feed(
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "A", "arguments": "{}"}}]})
    )
    events += translator.feed(
        chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "B", "arguments": "{}"}}]})
    )
    events += translator.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "  "}}]}))
    events += translator.finish()
    validate(events)
    assert translator.warnings and "late arguments" in translator.warnings[0]


def test_one_chunk_with_reasoning_text_and_tool_is_split_in_order() -> None:
    message = validate(
        run(
            [
                chunk(
                    {
                        "reasoning_content": "think",
                        "content": "say",
                        "tool_calls": [{"index": 0, "id": "t", "function": {"name": "T", "arguments": "{}"}}],
                    },
                    "tool_calls",
                )
            ]
        )
    )
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]


def test_interleaved_reasoning_and_text_make_new_blocks() -> None:
    message = validate(
        run(
            [
                chunk({"reasoning": "a"}),
                chunk({"content": "b"}),
                chunk({"reasoning": "c"}),
                chunk({"content": "d"}, "stop"),
            ]
        )
    )
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "thinking", "text"]
    assert all(b["signature"].startswith("ccgate:v1:") for b in message["content"] if b["type"] == "thinking")


def test_refusal_delta_gives_refusal_stop_reason() -> None:
    message = validate(run([chunk({"refusal": "I can't help with that."}, "stop")]))
    assert message["stop_reason"] == "refusal"


def test_content_filter_maps_to_refusal() -> None:
    assert validate(run([chunk({"content": "partial"}, "content_filter")]))["stop_reason"] == "refusal"


def test_vllm_error_object_mid_stream() -> None:
    translator = StreamTranslator(model="m", tools=ToolNames(), input_tokens_estimate=5)
    events = translator.start() + translator.feed(chunk({"content": "x"}))
    events += translator.feed(
        {"object": "error", "message": "CUDA out of memory", "type": "InternalServerError", "code": 500}
    )
    assert translator.finished
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "upstream (HTTP 500): CUDA out of memory"}},
    )
    assert translator.feed(chunk({"content": "more"})) == [] and translator.finish() == []
    validate(events)


def test_openai_error_chunk_with_context_overflow_keeps_the_phrase() -> None:
    translator = StreamTranslator(model="m", tools=ToolNames(), input_tokens_estimate=5, provider="vllm")
    events = translator.start() + translator.feed(
        {
            "error": {
                "message": "This model's maximum context length is "
                "4096 tokens. However, you requested 5000 tokens",
                "type": "BadRequestError",
                "code": 400,
            }
        }
    )
    assert events[-1][1]["error"]["type"] == "invalid_request_error"
    assert "prompt is too long: 5000 tokens > 4096 maximum" in events[-1][1]["error"]["message"]


def test_error_finish_reasons_end_with_an_error_event() -> None:
    for reason, kind in (("insufficient_system_resource", "overloaded_error"), ("error", "api_error")):
        events = run([chunk({"content": "half"}, reason)])
        assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == kind
        validate(events)


def test_truncated_stream_without_finish_reason_is_an_error() -> None:
    translator = StreamTranslator(model="m", tools=ToolNames(), input_tokens_estimate=5)
    events = translator.start() + translator.feed(chunk({"content": "half"}))
    events += translator.finish(truncated=True)
    assert events[-1][0] == "error"


def test_eof_without_done_but_with_finish_reason_is_a_normal_end() -> None:
    translator = StreamTranslator(model="m", tools=ToolNames(), input_tokens_estimate=5)
    events = translator.start() + translator.feed(chunk({"content": "whole"}, "stop"))
    events += translator.finish(truncated=True)
    assert validate(events)["stop_reason"] == "end_turn"


def test_finish_is_idempotent_and_start_once() -> None:
    translator = StreamTranslator(model="m", tools=ToolNames(), input_tokens_estimate=5)
    assert len(translator.start()) == 1 and translator.start() == []
    assert translator.finish()[-1][0] == "message_stop"
    assert translator.finish() == [] and translator.finished
    assert translator.fail("api_error", "x") == []


def test_feed_before_start_starts_implicitly() -> None:
    translator = StreamTranslator(model="m", tools=ToolNames(), input_tokens_estimate=5)
    assert translator.feed(chunk({"content": "x"}))[0][0] == "message_start"


def test_ping() -> None:
    translator = StreamTranslator(model="m", tools=ToolNames(), input_tokens_estimate=5)
    assert translator.ping() == [("ping", {"type": "ping"})]


def test_shortened_names_and_rewritten_ids_map_back() -> None:
    long = "mcp__" + "x" * 80
    tools = ToolNames([long], max_len=64, id_style="alnum9")
    history_id = "toolu_01ABCdef"
    upstream_id = tools.upstream_id(history_id)
    assert len(upstream_id) == 9 and upstream_id.isalnum()
    message = validate(
        run(
            [
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": upstream_id,
                                "function": {"name": tools.upstream_name(long), "arguments": "{}"},
                            }
                        ]
                    },
                    "tool_calls",
                )
            ],
            tools=tools,
        )
    )
    assert message["content"][0]["name"] == long and message["content"][0]["id"] == history_id


def test_invalid_provider_ids_become_valid_and_reversible() -> None:
    tools = ToolNames()
    message = validate(
        run(
            [
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "functions.Bash:0",
                                "function": {"name": "Bash", "arguments": "{}"},
                            }
                        ]
                    },
                    "tool_calls",
                )
            ],
            tools=tools,
        )
    )
    anthropic_id = message["content"][0]["id"]
    assert anthropic_id.replace("-", "").replace("_", "").isalnum()
    assert ToolNames().upstream_id(anthropic_id) == "functions.Bash:0"


def test_missing_ids_are_generated_deterministically_and_unique() -> None:
    first = run(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "function": {"name": "A", "arguments": "{}"}},
                        {"index": 1, "function": {"name": "B", "arguments": "{}"}},
                    ]
                },
                "tool_calls",
            )
        ]
    )
    second = run(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "function": {"name": "A", "arguments": "{}"}},
                        {"index": 1, "function": {"name": "B", "arguments": "{}"}},
                    ]
                },
                "tool_calls",
            )
        ]
    )
    ids = [b["id"] for b in validate(first)["content"]]
    assert len(set(ids)) == 2 and ids == [b["id"] for b in validate(second)["content"]]


def test_stream_from_response_is_a_valid_sequence() -> None:
    resp = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Running it.",
                    "reasoning_content": "plan",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "Bash", "arguments": '{"command": "ls"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 9},
    }
    events = stream_from_response(resp, model="claude-x", tools=ToolNames(), input_tokens_estimate=35)
    message = validate(events)
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][2]["input"] == {"command": "ls"}
    assert events[0][1]["message"]["usage"]["input_tokens"] == 40
    assert message["usage"]["output_tokens"] == 9


# -- generated provider streams -----------------------------------------------------------------

_text = st.text(alphabet=st.sampled_from(list("ab é日\n ")), min_size=1, max_size=6)
_args = st.dictionaries(
    st.sampled_from(["a", "b", "path"]), st.one_of(st.integers(), st.text(max_size=5)), max_size=3
)


@st.composite
def provider_streams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    chunks: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    style = draw(st.sampled_from(["openai", "no_index", "ollama"]))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["reasoning", "content", "tool"]))
        if kind == "reasoning":
            chunks.append(chunk({draw(st.sampled_from(["reasoning_content", "reasoning"])): draw(_text)}))
        elif kind == "content":
            chunks.append(chunk({"content": draw(_text)}))
        else:
            k = len(calls)
            args = draw(_args)
            calls.append(args)
            text = json.dumps(args)
            cuts = draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=4))
            pieces = split(text.encode(), cuts)
            head: dict[str, Any] = {
                "id": f"call_{k}",
                "type": "function",
                "function": {"name": f"T{k}", "arguments": ""},
            }
            if style == "openai":
                head["index"] = k
            elif style == "ollama":
                head["index"] = 0
                head["function"]["arguments"] = text
                pieces = []
            chunks.append(chunk({"tool_calls": [head]}))
            for piece in pieces:
                frag: dict[str, Any] = {"function": {"arguments": piece.decode()}}
                if style == "openai":
                    frag["index"] = k
                chunks.append(chunk({"tool_calls": [frag]}))
    finish = draw(st.sampled_from(["stop", "length", "tool_calls", None]))
    chunks.append(chunk({}, finish))
    if draw(st.booleans()):
        chunks.append(chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 3}))
    return chunks, calls


@settings(max_examples=200, deadline=None)
@given(stream=provider_streams())
def test_generated_streams_are_valid_and_keep_tool_inputs(
    stream: tuple[list[dict[str, Any]], list[Any]],
) -> None:
    chunks, calls = stream
    message = validate(run(chunks))
    assert [b["input"] for b in message["content"] if b["type"] == "tool_use"] == calls
    assert all(b["text"].strip() for b in message["content"] if b["type"] == "text")


@settings(max_examples=100, deadline=None)
@given(
    stream=provider_streams(),
    sep=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(1, 5000), max_size=50),
)
def test_generated_streams_survive_any_chunking(
    stream: tuple[list[dict[str, Any]], list[Any]], sep: str, cuts: list[int]
) -> None:
    chunks, _ = stream
    raw = "".join(f": keepalive{sep}data: {json.dumps(c, ensure_ascii=False)}{sep}{sep}" for c in chunks)
    raw_bytes = (raw + f"data: [DONE]{sep}{sep}").encode()

    def through_sse(pieces: list[bytes]) -> list[Any]:
        translator = StreamTranslator(
            model="claude-x", tools=ToolNames(), input_tokens_estimate=100, message_id="msg_t"
        )
        return pipe(StreamPipeline(translator, provider="upstream"), pieces)

    whole = through_sse([raw_bytes])
    assert whole == run(chunks)
    assert through_sse(split(raw_bytes, cuts)) == whole
