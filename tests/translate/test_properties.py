"""Property-based checks over generated conversations, responses, names, ids and schemas."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.translate import Quirks, ToolNames, translate_request, translate_response
from ccgate.translate import ids as tool_ids
from ccgate.translate.quirks import GEMINI_SCHEMA_REJECTS
from ccgate.translate.schema import clean_schema

_id = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=30
)
_txt = st.text(alphabet=st.sampled_from(list("ab \n日")), max_size=8)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Anthropic histories, including damaged ones: missing results, orphans, results placed late,
    text before results, consecutive same-role turns, system turns."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": draw(_txt) or "start"}]
    used: set[str] = set()
    for _ in range(draw(st.integers(0, 6))):
        calls = []
        for _ in range(draw(st.integers(0, 3))):
            tid = draw(_id.filter(lambda x: x not in used))
            used.add(tid)
            calls.append(
                {
                    "type": "tool_use",
                    "id": tid,
                    "name": draw(st.sampled_from(["Bash", "Read", "mcp__" + "x" * 70])),
                    "input": {"n": draw(st.integers())},
                }
            )
        content: list[dict[str, Any]] = []
        if draw(st.booleans()):
            content.append({"type": "text", "text": draw(_txt)})
        messages.append({"role": "assistant", "content": content + calls or [{"type": "text", "text": "ok"}]})
        answer: list[dict[str, Any]] = []
        for call in calls:
            if draw(st.integers(0, 9)) > 0:  # sometimes the result is missing
                answer.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": call["id"],
                        "content": draw(_txt),
                        "is_error": draw(st.booleans()),
                    }
                )
        if draw(st.integers(0, 9)) == 0:  # an orphan result
            answer.append({"type": "tool_result", "tool_use_id": "orphan_" + draw(_id), "content": "x"})
        answer = draw(st.permutations(answer)) if answer else answer
        if draw(st.booleans()):
            answer.insert(draw(st.integers(0, len(answer))), {"type": "text", "text": draw(_txt)})
        if answer:
            messages.append({"role": "user", "content": answer})
        if draw(st.integers(0, 5)) == 0:
            messages.append({"role": "system", "content": "reminder"})
    return messages


@settings(max_examples=300, deadline=None)
@given(
    messages=conversations(), style=st.sampled_from(["any", "alnum9"]), mid=st.sampled_from(["user", "system"])
)
def test_every_tool_call_is_answered_exactly_once_right_after_it(
    messages: list[dict[str, Any]], style: str, mid: str
) -> None:
    quirks = Quirks(tool_id_style=style, mid_system=mid)  # type: ignore[arg-type]
    body = translate_request(
        {"model": "c", "max_tokens": 10, "messages": messages}, model="m", quirks=quirks
    ).body
    out = body["messages"]
    seen_calls: set[str] = set()
    answered: list[str] = []
    for i, m in enumerate(out):
        if m["role"] == "assistant" and m.get("tool_calls"):
            ids = [c["id"] for c in m["tool_calls"]]
            seen_calls.update(ids)
            following = []
            for n in out[i + 1 :]:
                if n["role"] != "tool":
                    break
                following.append(n["tool_call_id"])
            assert sorted(following) == sorted(ids), "tool messages must answer exactly this turn's calls"
            assert m["content"] is None or m["content"].strip()
        if m["role"] == "tool":
            assert m["tool_call_id"] in seen_calls, "tool message without an earlier tool_call"
            assert out[i - 1]["role"] in ("assistant", "tool")
            assert isinstance(m["content"], str) and m["content"]
            answered.append(m["tool_call_id"])
        if m["role"] == "user":
            content = m["content"]
            assert content if isinstance(content, list) else content.strip()
    assert len(answered) == len(set(answered)) == len(seen_calls)
    if style == "alnum9":
        assert all(len(c) == 9 and c.isalnum() for c in seen_calls)


@settings(max_examples=300, deadline=None)
@given(
    content=st.one_of(st.none(), _txt, st.just("   ")),
    reasoning=st.one_of(st.none(), _txt),
    calls=st.lists(
        st.tuples(
            st.one_of(st.none(), _id),
            st.sampled_from(["a", "b"]),
            st.sampled_from(["", "{}", '{"x":1}', "{bad"]),
        ),
        max_size=3,
    ),
    finish=st.sampled_from(["stop", "length", "tool_calls", "content_filter", None]),
)
def test_translated_responses_have_no_empty_text_and_tool_use_wins(
    content: str | None, reasoning: str | None, calls: list[tuple[str | None, str, str]], finish: str | None
) -> None:
    message: dict[str, Any] = {"role": "assistant", "content": content, "reasoning_content": reasoning}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
        ]
    out = translate_response(
        {"id": "r", "choices": [{"index": 0, "message": message, "finish_reason": finish}]},
        model="c",
        tools=ToolNames(),
        input_tokens_estimate=5,
    )
    for block in out["content"]:
        if block["type"] == "text":
            assert block["text"].strip()
        if block["type"] == "thinking":
            assert block["thinking"].strip() and block["signature"]
    tool_blocks = [b for b in out["content"] if b["type"] == "tool_use"]
    assert len({b["id"] for b in tool_blocks}) == len(tool_blocks)
    assert all(tool_ids.ANTHROPIC_ID.match(b["id"]) for b in tool_blocks)
    if tool_blocks:
        assert out["stop_reason"] == "tool_use"
    assert out["usage"]["input_tokens"] >= 1 and out["usage"]["output_tokens"] >= 1


_names = st.text(alphabet=st.sampled_from(list("abcXYZ09_-.:/ é")), min_size=1, max_size=140)


@settings(max_examples=300, deadline=None)
@given(names=st.lists(_names, max_size=12, unique=True), max_len=st.integers(12, 64))
def test_tool_name_shortening_is_injective_valid_and_round_trips(names: list[str], max_len: int) -> None:
    # Adversarial: include the shortened form of each name as a name of its own.
    probe = ToolNames(names, max_len=max_len)
    all_names = list(dict.fromkeys(names + list(probe.renamed.values())))
    tools = ToolNames(all_names, max_len=max_len)
    upstream = [tools.upstream_name(n) for n in all_names]
    assert len(set(upstream)) == len(upstream)
    for name, up in zip(all_names, upstream, strict=True):
        assert 1 <= len(up) <= max_len and tool_ids.ANTHROPIC_ID.match(up)
        assert tools.anthropic_name(up) == name


@given(upstream=st.text(min_size=1, max_size=40))
def test_provider_ids_become_valid_anthropic_ids_and_round_trip(upstream: str) -> None:
    anthropic = tool_ids.to_anthropic(upstream, seed="s")
    assert tool_ids.ANTHROPIC_ID.match(anthropic)
    if not tool_ids.ANTHROPIC_ID.match(upstream) or upstream.startswith("ccx_"):
        assert tool_ids.to_upstream(anthropic, "any") == upstream.encode("utf-8", "replace").decode("utf-8")
    else:
        assert anthropic == upstream


@given(anthropic=_id)
def test_alnum9_is_deterministic_and_idempotent(anthropic: str) -> None:
    short = tool_ids.alnum9(anthropic)
    assert len(short) == 9 and short.isalnum() and short.isascii()
    assert tool_ids.alnum9(anthropic) == short and tool_ids.alnum9(short) == short


_schema_leaf = st.fixed_dictionaries(
    {"type": st.sampled_from(["string", "integer"])},
    optional={
        "format": st.just("uri"),
        "default": st.just("x"),
        "const": st.just("k"),
        "exclusiveMinimum": st.just(0),
    },
)
_schemas = st.recursive(
    _schema_leaf,
    lambda inner: st.fixed_dictionaries(
        {
            "type": st.just("object"),
            "properties": st.dictionaries(
                st.sampled_from(["format", "default", "a", "const"]), inner, max_size=3
            ),
        },
        optional={
            "additionalProperties": st.booleans(),
            "$schema": st.just("x"),
            "anyOf": st.lists(inner, max_size=2),
        },
    ),
    max_leaves=8,
)


def _keywords(node: Any, in_properties: bool = False) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if not in_properties:
                found.add(key)
            found |= _keywords(value, key == "properties" and not in_properties)
    elif isinstance(node, list):
        for item in node:
            found |= _keywords(item)
    return found


@settings(max_examples=200, deadline=None)
@given(schema=_schemas)
def test_schema_strip_removes_keywords_but_keeps_property_names(schema: dict[str, Any]) -> None:
    cleaned = clean_schema(schema, GEMINI_SCHEMA_REJECTS)
    assert not (_keywords(cleaned) & GEMINI_SCHEMA_REJECTS)
    if schema.get("type") == "object":
        assert set(cleaned["properties"]) == set(schema["properties"])


def test_schema_refs_are_inlined_and_recursion_is_bounded() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}, "n": {"$ref": "#/$defs/Node"}},
        "$defs": {
            "A": {"type": "string", "const": "z"},
            "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}},
        },
    }
    cleaned = clean_schema(schema, GEMINI_SCHEMA_REJECTS)
    assert cleaned["properties"]["a"] == {"type": "string", "enum": ["z"]}
    assert "$ref" not in str(cleaned) and "$defs" not in cleaned
    assert clean_schema(schema, frozenset()) is schema
