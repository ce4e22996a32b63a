"""A realistic Claude Code request (system blocks with cache_control, 25 tools with Claude Code's
JSON-Schema habits, thinking, context_management, metadata.user_id, tool history with is_error and
images) -> the exact OpenAI body, per provider profile. CCGATE_REGEN=1 rewrites the expected files."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from ccgate.translate import Quirks, translate_request
from ccgate.translate.quirks import GEMINI_SCHEMA_REJECTS
from tests.translate.helpers import FIXTURES, load_json

PROFILES: dict[str, Quirks] = {
    "default": Quirks(),
    # Gemini behind an OpenAI-compatible endpoint: strict schemas, takes PDFs as file parts.
    "gemini": Quirks(schema_strip=GEMINI_SCHEMA_REJECTS, documents=True, thinking_param="reasoning_effort"),
    # DeepSeek thinking mode: reasoning echoed back, text-only input, user id accepted (hashed).
    "deepseek": Quirks(
        reasoning_echo=True,
        thinking_param="deepseek",
        images=False,
        send_user=True,
        mid_system="system",
        max_stop=16,
    ),
    # Mistral-family on vLLM: 9-character alphanumeric tool ids, no streaming with tools.
    "mistral": Quirks(
        tool_id_style="alnum9",
        strict_alternation=True,
        send_top_k=True,
        stream_with_tools=False,
        max_tokens_field="max_tokens",
        tool_choice_required=False,
    ),
}

REQUESTS = FIXTURES / "requests"


def _result(profile: str) -> dict[str, Any]:
    body = load_json(REQUESTS / "claude_code.json")
    tr = translate_request(body, model="upstream-model", quirks=PROFILES[profile], max_output_tokens=32000)
    return {
        "body": tr.body,
        "dropped": tr.dropped,
        "renamed": tr.tools.renamed,
        "stream": tr.stream,
        "upstream_stream": tr.upstream_stream,
        "input_tokens_estimate": tr.input_tokens_estimate,
    }


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_claude_code_request_golden(profile: str) -> None:
    got = _result(profile)
    path = REQUESTS / f"claude_code.{profile}.expected.json"
    if os.environ.get("CCGATE_REGEN"):
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert got == load_json(path)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_claude_code_request_invariants(profile: str) -> None:
    body = _result(profile)["body"]
    messages = body["messages"]
    assert messages[0]["role"] == "system" and "billing-header" not in messages[0]["content"]
    assert "cache_control" not in json.dumps(body)
    names = [t["function"]["name"] for t in body["tools"]]
    assert all(len(n) <= 64 for n in names) and len(set(names)) == len(names)
    assert "DeferredToolPlaceholder" not in names and "web_search" not in names
    # Every tool call is answered by exactly one tool message, right after its assistant turn.
    for i, m in enumerate(messages):
        if m.get("tool_calls"):
            ids = [c["id"] for c in m["tool_calls"]]
            following = []
            for n in messages[i + 1 :]:
                if n["role"] != "tool":
                    break
                following.append(n["tool_call_id"])
            assert following == ids
            assert m["content"] is None or m["content"].strip()
    if PROFILES[profile].schema_strip == GEMINI_SCHEMA_REJECTS:
        text = json.dumps(body["tools"])
        for keyword in (
            "$schema",
            "additionalProperties",
            "exclusiveMinimum",
            "propertyNames",
            "format",
            "$ref",
            "const",
            "default",
        ):
            assert f'"{keyword}"' not in text
