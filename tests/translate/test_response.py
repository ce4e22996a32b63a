from __future__ import annotations

from typing import Any

import pytest

from ccgate.errors import BillingError, UpstreamOverloaded, UpstreamServerError
from ccgate.translate import ToolNames, translate_response
from ccgate.translate.response import parse_arguments


def resp(
    message: dict[str, Any], finish: str | None = "stop", usage: dict[str, Any] | None = None, **choice: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}
        ],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def tr(r: dict[str, Any], tools: ToolNames | None = None, estimate: int = 42) -> dict[str, Any]:
    return translate_response(
        r, model="claude-sonnet-4-5", tools=tools or ToolNames(), input_tokens_estimate=estimate
    )


def test_text_response_shape() -> None:
    out = tr(
        resp({"content": "Hello"}, usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})
    )
    assert out["id"].startswith("msg_ccgate_")
    assert out == {
        "id": out["id"],
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 3,
        },
    }


@pytest.mark.parametrize("content", [None, "", "  \n", []])
def test_no_empty_text_blocks(content: Any) -> None:
    out = tr(
        resp(
            {
                "content": content,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": '{"command":"ls"}'},
                    }
                ],
            }
        )
    )
    assert [b["type"] for b in out["content"]] == ["tool_use"]


def test_reasoning_becomes_signed_thinking_first() -> None:
    for field in ("reasoning_content", "reasoning"):
        out = tr(resp({"content": "42", field: "compute"}))
        assert out["content"][0]["type"] == "thinking" and out["content"][0]["thinking"] == "compute"
        assert out["content"][0]["signature"].startswith("ccgate:v1:")


def test_openrouter_reasoning_details_fallback() -> None:
    out = tr(
        resp(
            {
                "content": "x",
                "reasoning_details": [
                    {"type": "reasoning.text", "text": "a"},
                    {"type": "reasoning.encrypted", "data": "zz"},
                ],
            }
        )
    )
    assert out["content"][0]["thinking"] == "a"


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "end_turn"),
        ("function_call", "end_turn"),
        (None, "end_turn"),
        ("weird", "end_turn"),
    ],
)
def test_stop_reason_mapping_without_tools(finish: str | None, expected: str) -> None:
    assert tr(resp({"content": "x"}, finish))["stop_reason"] == expected


@pytest.mark.parametrize("finish", ["stop", "length", "tool_calls", None])
def test_any_tool_call_means_tool_use(finish: str | None) -> None:
    out = tr(resp({"tool_calls": [{"id": "c", "function": {"name": "a", "arguments": "{}"}}]}, finish))
    assert out["stop_reason"] == "tool_use"


def test_vllm_stop_reason_string_is_a_stop_sequence() -> None:
    out = tr(resp({"content": "x"}, "stop", stop_reason="</answer>"))
    assert (out["stop_reason"], out["stop_sequence"]) == ("stop_sequence", "</answer>")
    assert tr(resp({"content": "x"}, "stop", stop_reason=128001))["stop_reason"] == "end_turn"


def test_refusal_field() -> None:
    out = tr(resp({"content": None, "refusal": "I can't help with that."}))
    assert out["stop_reason"] == "refusal" and out["content"] == [
        {"type": "text", "text": "I can't help with that."}
    ]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 60}},
            (40, 0, 60, 5),
        ),
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 5,
                "prompt_cache_hit_tokens": 70,
                "prompt_cache_miss_tokens": 30,
            },
            (30, 0, 70, 5),
        ),
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 50, "cache_write_tokens": 20},
            },
            (30, 20, 50, 5),
        ),
        ({"prompt_tokens": 0, "completion_tokens": 0}, (42, 0, 0, None)),
        (None, (42, 0, 0, None)),
    ],
)
def test_usage_mapping(usage: dict[str, Any] | None, expected: tuple[int, int, int, int | None]) -> None:
    u = tr(resp({"content": "hello"}, usage=usage))["usage"]
    got = (u["input_tokens"], u["cache_creation_input_tokens"], u["cache_read_input_tokens"])
    assert got == expected[:3]
    assert u["output_tokens"] == expected[3] if expected[3] is not None else u["output_tokens"] >= 1


def test_tool_names_and_ids_map_back() -> None:
    long = "mcp__server__" + "y" * 70
    tools = ToolNames([long])
    out = tr(
        resp(
            {
                "tool_calls": [
                    {"id": "call_1", "function": {"name": tools.upstream_name(long), "arguments": ""}},
                    {"id": "call_1", "function": {"name": "ghost", "arguments": "{}"}},
                    {"function": {"name": "noid", "arguments": "{}"}},
                ]
            }
        ),
        tools,
    )
    assert [b["name"] for b in out["content"]] == [long, "ghost", "noid"]
    ids = [b["id"] for b in out["content"]]
    assert ids[0] == "call_1" and len(set(ids)) == 3 and out["content"][0]["input"] == {}


def test_legacy_function_call() -> None:
    out = tr(resp({"function_call": {"name": "a", "arguments": '{"x": 1}'}}, "function_call"))
    assert out["content"][0]["input"] == {"x": 1} and out["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("", {}),
        (None, {}),
        ({"a": 2}, {"a": 2}),
        ('```json\n{"a": 3}\n```', {"a": 3}),
        ('"{\\"a\\": 4}"', {"a": 4}),
        ('{"description ": "x"}', {"description": "x"}),
        ("{broken", {"raw_input": "{broken"}),
        ("[1, 2]", {"raw_input": "[1, 2]"}),
    ],
)
def test_parse_arguments(arguments: Any, expected: dict[str, Any]) -> None:
    assert parse_arguments(arguments) == expected


def test_error_bodies_and_failed_finishes_raise() -> None:
    with pytest.raises(BillingError):
        tr({"error": {"code": 402, "message": "Insufficient credits"}})
    with pytest.raises(UpstreamServerError):
        tr({"id": "x", "choices": []})
    with pytest.raises(UpstreamOverloaded):
        tr(resp({"content": "partial"}, "insufficient_system_resource"))
    with pytest.raises(UpstreamServerError):
        tr(resp({"content": "partial"}, "error"))


def test_message_ids_are_the_gateways_own_and_unique_even_when_the_upstream_repeats_its_id() -> None:
    # llama.cpp and caching proxies repeat upstream ids; Anthropic message ids never repeat.
    ids = {tr({**resp({"content": "x"}), "id": "chatcmpl-same"})["id"] for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("msg_ccgate_") and len(i) == 35 for i in ids)
    assert tr({k: v for k, v in resp({"content": "x"}).items() if k != "id"})["id"].startswith("msg_ccgate_")


def test_reasoning_is_a_thinking_block_only_when_the_client_enabled_thinking() -> None:
    answer = resp({"content": "4", "reasoning_content": "2+2 is 4"})
    shown = translate_response(answer, model="m", tools=ToolNames(), input_tokens_estimate=1)
    hidden = translate_response(answer, model="m", tools=ToolNames(), input_tokens_estimate=1,
                                emit_thinking=False)
    assert [b["type"] for b in shown["content"]] == ["thinking", "text"]
    assert hidden["content"] == [{"type": "text", "text": "4"}]
