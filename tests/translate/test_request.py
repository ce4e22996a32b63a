from __future__ import annotations

from typing import Any

import pytest

from ccgate.errors import InvalidRequest
from ccgate.translate import Quirks, translate_request
from ccgate.translate.reasoning import sign


def tr(body: dict[str, Any], **quirks: Any) -> Any:
    base = {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    return translate_request({**base, **body}, model="up", quirks=Quirks(**quirks))


def msgs(body: dict[str, Any], **quirks: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = tr(body, **quirks).body["messages"]
    return result


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "foo"}]}]},
            "messages.0.content.0: unknown block type 'foo'",
        ),
        (
            {"messages": [{"role": "bot", "content": "x"}]},
            "messages.0.role: must be 'user', 'assistant' or 'system'",
        ),
        ({"messages": []}, "messages: must be a non-empty list"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages.0.content: must be a string or a list"),
        (
            {"messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "messages.0.content.0.type: Field required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text: Field required",
        ),
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": -1}, "max_tokens: must be a non-negative integer"),
        ({"max_tokens": True}, "max_tokens: must be a non-negative integer"),
        ({"temperature": "hot"}, "temperature: must be a number"),
        ({"stream": "yes"}, "stream: must be a boolean"),
        ({"tools": [{"name": "a"}]}, "tools.0.input_schema: Field required"),
        ({"tools": [{"input_schema": {}}]}, "tools.0.name: Field required"),
        (
            {"tools": [{"name": "a", "input_schema": {}}, {"name": "a", "input_schema": {}}]},
            "tools.1.name: tool names must be unique",
        ),
        ({"tool_choice": {"type": "maybe"}}, "tool_choice.type"),
        (
            {"tools": [{"name": "a", "input_schema": {}}], "tool_choice": {"type": "tool", "name": "b"}},
            "tool_choice.name: no tool named 'b' in tools",
        ),
        ({"stop_sequences": "END"}, "stop_sequences: must be a list of strings"),
        ({"system": [{"type": "image"}]}, "system.0: expected a text block, found 'image'"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}]}
                ]
            },
            "messages.0.content.0: tool_use blocks may only appear in assistant messages",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "x", "input": {}}]}]},
            "messages.0.content.0.id: Field required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "ftp"}}]}]},
            "messages.0.content.0.source.type: unknown image source type 'ftp'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "system", "content": [{"type": "image"}]},
                ]
            },
            "messages.1.content.0: expected a text block",
        ),
        ({"output_config": {"format": {"type": "xml"}}}, "output_config.format"),
    ],
)
def test_malformed_input_is_a_400_naming_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        tr(body)
    assert info.value.status == 400
    assert message in info.value.message


def test_body_must_be_an_object() -> None:
    with pytest.raises(InvalidRequest):
        translate_request([], model="m", quirks=Quirks())  # type: ignore[arg-type]


def test_system_string_and_blocks() -> None:
    assert msgs({"system": "Be brief."})[0] == {"role": "system", "content": "Be brief."}
    blocks = [
        {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "B"},
    ]
    assert msgs({"system": blocks}, system_role="developer")[0] == {"role": "developer", "content": "A\n\nB"}


def test_billing_header_is_dropped_only_when_asked() -> None:
    system = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
        {"type": "text", "text": "S"},
    ]
    assert msgs({"system": system})[0]["content"] == "S"
    assert "x-anthropic" in msgs({"system": system}, drop_billing_header=False)[0]["content"]


def test_max_tokens_clamp_zero_and_field_name() -> None:
    body = {"model": "c", "max_tokens": 64000, "messages": [{"role": "user", "content": "x"}]}
    assert (
        translate_request(body, model="m", quirks=Quirks(), max_output_tokens=8192).body["max_tokens"] == 8192
    )
    assert tr({"max_tokens": 0}).body["max_tokens"] == 1
    assert tr({}, max_tokens_field="max_completion_tokens").body["max_completion_tokens"] == 100


def test_stream_options() -> None:
    assert tr({"stream": True}).body["stream_options"] == {"include_usage": True}
    assert "stream_options" not in tr({"stream": True}, stream_usage=False).body
    assert tr({}).body["stream"] is False and tr({}).stream is False


def test_stream_with_tools_off_asks_upstream_not_to_stream() -> None:
    result = tr({"stream": True, "tools": [{"name": "a", "input_schema": {}}]}, stream_with_tools=False)
    assert result.stream is True and result.upstream_stream is False and "stream_options" not in result.body
    assert tr({"stream": True}, stream_with_tools=False).upstream_stream is True  # no tools: stream


TOOLS = [{"name": "a", "input_schema": {"type": "object"}}]


@pytest.mark.parametrize(
    ("choice", "quirks", "expected"),
    [
        ({"type": "auto"}, {}, "auto"),
        ({"type": "any"}, {}, "required"),
        ({"type": "none"}, {}, "none"),
        ({"type": "tool", "name": "a"}, {}, {"type": "function", "function": {"name": "a"}}),
        ({"type": "any"}, {"tool_choice_required": False}, "auto"),
        ({"type": "tool", "name": "a"}, {"tool_choice_required": False}, "auto"),
    ],
)
def test_tool_choice(choice: dict[str, Any], quirks: dict[str, Any], expected: Any) -> None:
    assert tr({"tools": TOOLS, "tool_choice": choice}, **quirks).body["tool_choice"] == expected


def test_disable_parallel_tool_use() -> None:
    body = {"tools": TOOLS, "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}}
    assert tr(body).body["parallel_tool_calls"] is False
    result = tr(body, parallel_tool_calls=False)
    assert (
        "parallel_tool_calls" not in result.body and "tool_choice.disable_parallel_tool_use" in result.dropped
    )


def test_tool_choice_without_tools_is_dropped() -> None:
    result = tr(
        {"tool_choice": {"type": "any"}, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    )
    assert "tool_choice" not in result.body and "tools" not in result.body
    assert "tools.0 (web_search_20250305)" in result.dropped


def test_tool_schema_gets_object_shape_and_strip() -> None:
    tool = {
        "name": "a",
        "description": "d",
        "input_schema": {"$schema": "x", "properties": {"format": {"type": "string"}}},
    }
    function = tr({"tools": [tool]}).body["tools"][0]["function"]
    assert function == {
        "name": "a",
        "description": "d",
        "parameters": {"properties": {"format": {"type": "string"}}, "type": "object"},
    }


def test_stop_sequences_are_capped() -> None:
    result = tr({"stop_sequences": ["a", "b", "c"]}, max_stop=2)
    assert result.body["stop"] == ["a", "b"] and "stop_sequences[2:]" in result.dropped
    assert "stop" not in tr({"stop_sequences": ["a"]}, max_stop=0).body


def test_metadata_user_id_is_hashed_stably_by_account_or_device() -> None:
    a = '{"device_id":"dev1","account_uuid":"","session_id":"s1"}'
    b = '{"device_id":"dev1","account_uuid":"","session_id":"s2"}'
    ua = tr({"metadata": {"user_id": a}}, send_user=True).body["user"]
    assert ua == tr({"metadata": {"user_id": b}}, send_user=True).body["user"]
    assert ua.startswith("ccgate-") and ua.replace("-", "").isalnum()
    assert "user" not in tr({"metadata": {"user_id": a}}).body


@pytest.mark.parametrize(
    ("mode", "thinking", "effort", "expected"),
    [
        ("drop", {"type": "enabled", "budget_tokens": 2000}, None, {}),
        ("reasoning_effort", {"type": "enabled", "budget_tokens": 2000}, None, {"reasoning_effort": "low"}),
        ("reasoning_effort", {"type": "enabled", "budget_tokens": 8000}, None, {"reasoning_effort": "medium"}),
        ("reasoning_effort", {"type": "enabled", "budget_tokens": 31999}, None, {"reasoning_effort": "high"}),
        ("reasoning_effort", {"type": "adaptive"}, "max", {"reasoning_effort": "max"}),
        ("reasoning_effort", {"type": "adaptive"}, None, {}),
        ("reasoning_effort", {"type": "disabled"}, None, {}),
        (
            "deepseek",
            {"type": "adaptive"},
            "high",
            {"thinking": {"type": "enabled"}, "reasoning_effort": "high"},
        ),
        ("deepseek", {"type": "disabled"}, None, {"thinking": {"type": "disabled"}}),
        ("openrouter", {"type": "enabled", "budget_tokens": 5000}, None, {"reasoning": {"max_tokens": 5000}}),
        ("openrouter", {"type": "adaptive"}, "max", {"reasoning": {"effort": "xhigh"}}),
        ("openrouter", {"type": "disabled"}, None, {"reasoning": {"enabled": False}}),
    ],
)
def test_thinking_param_mapping(
    mode: str, thinking: dict[str, Any], effort: str | None, expected: dict[str, Any]
) -> None:
    body: dict[str, Any] = {"thinking": thinking}
    if effort:
        body["output_config"] = {"effort": effort}
    out = tr(body, thinking_param=mode).body
    got = {k: out[k] for k in ("reasoning_effort", "thinking", "reasoning") if k in out}
    assert got == expected


def test_output_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = tr({"output_config": {"format": {"type": "json_schema", "schema": schema}}}).body
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_unknown_fields_are_dropped_and_listed() -> None:
    result = tr(
        {
            "context_management": {},
            "service_tier": "auto",
            "container": "c",
            "mcp_servers": [],
            "speed": "fast",
            "brand_new_field": 1,
            "top_k": 5,
        }
    )
    for name in (
        "context_management",
        "service_tier",
        "container",
        "mcp_servers",
        "speed",
        "brand_new_field",
        "top_k",
    ):
        assert name in result.dropped
    assert tr({"top_k": 5}, send_top_k=True).body["top_k"] == 5


def test_tool_messages_come_before_user_text_and_keep_order() -> None:
    messages = msgs(
        {
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "a", "input": {}},
                        {"type": "tool_use", "id": "t2", "name": "a", "input": {"x": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "note"},
                        {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": "one"}],
                        },
                    ],
                },
            ]
        }
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    assert [(m["tool_call_id"], m["content"]) for m in messages[2:4]] == [("t2", "two"), ("t1", "one")]
    assert messages[1]["content"] is None and messages[4]["content"] == "note"


def test_is_error_prefix_and_empty_result() -> None:
    messages = msgs(
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "a", "input": {}},
                        {"type": "tool_use", "id": "t2", "name": "a", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": "boom"},
                        {"type": "tool_result", "tool_use_id": "t2"},
                    ],
                },
            ]
        }
    )
    assert [m["content"] for m in messages if m["role"] == "tool"] == ["Error: boom", "(no output)"]


def test_missing_and_orphan_tool_results_are_repaired() -> None:
    result = tr(
        {
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": {}}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "zz", "content": "late"},
                        {"type": "text", "text": "continue"},
                    ],
                },
            ]
        }
    )
    roles = [m["role"] for m in result.body["messages"]]
    assert roles == ["assistant", "tool", "user"]
    assert result.body["messages"][1]["tool_call_id"] == "t1"
    assert "[result of tool call zz]" in result.body["messages"][2]["content"]


def test_images_base64_url_and_unsupported() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
    ]
    parts = msgs({"messages": [{"role": "user", "content": content}]})[0]["content"]
    assert parts == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]
    text = msgs({"messages": [{"role": "user", "content": content}]}, images=False)[0]["content"]
    assert "image omitted" in text


def test_documents() -> None:
    pdf = {
        "type": "document",
        "title": "r.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
    }
    txt = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}}
    with_files = msgs({"messages": [{"role": "user", "content": [pdf, txt]}]}, documents=True)[0]["content"]
    assert with_files[0] == {
        "type": "file",
        "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBE"},
    }
    assert with_files[1] == {"type": "text", "text": "plain words"}
    without = msgs({"messages": [{"role": "user", "content": [pdf, txt]}]})[0]["content"]
    assert "PDF document 'r.pdf' omitted" in without and "plain words" in without


def test_mid_conversation_system_modes() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "system", "content": "S1"},
        {
            "role": "user",
            "content": [
                {"type": "mid_conv_system", "content": [{"type": "text", "text": "S2"}]},
                {"type": "text", "text": "b"},
            ],
        },
    ]
    as_user = msgs({"messages": messages})
    assert as_user == [
        {
            "role": "user",
            "content": "a\n\n<system-reminder>\nS1\n</system-reminder>\n\n"
            "<system-reminder>\nS2\n</system-reminder>\n\nb",
        }
    ]
    as_system = msgs({"messages": messages}, mid_system="system")
    assert as_system == [
        {"role": "user", "content": "a"},
        {"role": "system", "content": "S1"},
        {"role": "system", "content": "S2"},
        {"role": "user", "content": "b"},
    ]


def test_reasoning_round_trip_only_for_gateway_signatures() -> None:
    ours = {"type": "thinking", "thinking": "mine", "signature": sign("mine")}
    theirs = {"type": "thinking", "thinking": "anthropic", "signature": "EqQBCkgIBh"}
    history = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [
                ours,
                theirs,
                {"type": "redacted_thinking", "data": "x"},
                {"type": "text", "text": "answer"},
            ],
        },
        {"role": "user", "content": "next"},
    ]
    echoed = msgs({"messages": history}, reasoning_echo=True)[1]
    assert echoed == {"role": "assistant", "content": "answer", "reasoning_content": "mine"}
    assert msgs({"messages": history})[1] == {"role": "assistant", "content": "answer"}
    other = msgs({"messages": history}, reasoning_echo=True, reasoning_echo_field="reasoning")[1]
    assert other["reasoning"] == "mine"


def test_reasoning_echo_field_present_on_tool_call_turns_without_thinking() -> None:
    history = [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "a", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    assert msgs({"messages": history}, reasoning_echo=True)[0]["reasoning_content"] == ""


def test_empty_text_blocks_are_never_sent() -> None:
    messages = msgs(
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "  "}, {"type": "text", "text": "x"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": ""},
                        {"type": "tool_use", "id": "t", "name": "a", "input": {}},
                    ],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
            ]
        }
    )
    assert messages[0]["content"] == "x" and messages[1]["content"] is None


def test_consecutive_same_role_turns_merge() -> None:
    messages = msgs(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": "d"},
            ]
        }
    )
    assert messages == [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c\n\nd"}]


def test_assistant_turn_with_only_foreign_thinking_is_skipped_and_users_merge() -> None:
    messages = msgs(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "sig"}]},
                {"role": "user", "content": "b"},
            ]
        }
    )
    assert messages == [{"role": "user", "content": "a\n\nb"}]


def test_images_in_tool_results_move_to_a_following_user_message() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    messages = msgs(
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "shot", "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [image]}]},
            ]
        }
    )
    assert messages[1] == {
        "role": "tool",
        "tool_call_id": "t",
        "content": "[1 attachment(s) from this result follow in the next user message]",
    }
    assert messages[2]["role"] == "user" and messages[2]["content"][1]["type"] == "image_url"


def test_alnum9_ids_are_consistent_between_tool_use_and_tool_result() -> None:
    result = tr(
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_01XYZ", "name": "a", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_01XYZ", "content": "ok"}],
                },
            ]
        },
        tool_id_style="alnum9",
    )
    call_id = result.body["messages"][0]["tool_calls"][0]["id"]
    assert len(call_id) == 9 and call_id.isalnum() and result.body["messages"][1]["tool_call_id"] == call_id
    assert result.tools.anthropic_id(call_id, seed="s") == "toolu_01XYZ"


def test_extra_body_is_merged_last() -> None:
    assert tr({}, extra_body={"thinking": {"type": "enabled"}, "max_tokens": 7}).body["max_tokens"] == 7


def test_input_tokens_estimate_is_positive() -> None:
    assert tr({}).input_tokens_estimate >= 1
