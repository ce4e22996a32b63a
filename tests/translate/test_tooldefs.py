"""The translated path's tools memo (translate/tooldefs.py): a request whose ``tools`` arrive raw
(``wire.anthropic.decode_for_translation``) translates to exactly what the decoded request
does, on the first request (memo miss) and every later one (hit), for each provider profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from ccgate.errors import InvalidRequest
from ccgate.translate import Quirks, tooldefs, translate_request
from ccgate.translate.request import TranslatedRequest
from ccgate.wire.anthropic import decode_body, decode_for_translation
from tests.translate.helpers import FIXTURES
from tests.translate.test_request_golden import PROFILES

CLAUDE_CODE = FIXTURES / "requests" / "claude_code.json"


def _view(tr: TranslatedRequest) -> dict[str, Any]:
    return {
        "body": msgspec.json.decode(msgspec.json.encode(tr.body)),
        "dropped": tr.dropped,
        "renamed": tr.tools.renamed,
        "names": {name: tr.tools.upstream_name(name) for name in tr.tools.renamed},
        "estimate": tr.input_tokens_estimate,
        "stream": (tr.stream, tr.upstream_stream),
    }


def _translate(data: Any, quirks: Quirks) -> dict[str, Any]:
    return _view(translate_request(data, model="upstream-model", quirks=quirks, max_output_tokens=32000))


@pytest.fixture(autouse=True)
def empty_memo() -> None:
    tooldefs.forget()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_raw_tools_translate_as_decoded_ones_on_a_miss_and_a_hit(profile: str) -> None:
    body = Path(CLAUDE_CODE).read_bytes()
    quirks = PROFILES[profile]
    expected = _translate(decode_body(body), quirks)
    raw = decode_for_translation(body)
    assert isinstance(raw["tools"], msgspec.Raw)
    assert _translate(raw, quirks) == expected  # miss: translated, remembered
    assert len(tooldefs._memo) == 1
    assert _translate(decode_for_translation(body), quirks) == expected  # hit


def test_a_hit_gives_each_request_its_own_tool_names() -> None:
    body = Path(CLAUDE_CODE).read_bytes()
    first = translate_request(decode_for_translation(body), model="m", quirks=Quirks())
    first.tools.upstream_name("a_tool_only_this_request_named")
    second = translate_request(decode_for_translation(body), model="m", quirks=Quirks())
    assert "a_tool_only_this_request_named" not in second.tools.renamed
    assert second.tools.anthropic_name("a_tool_only_this_request_named") == "a_tool_only_this_request_named"


def _with_tools(tools: Any, **extra: Any) -> bytes:
    return msgspec.json.encode({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                                "tools": tools, **extra})


def test_a_large_tools_list_with_a_bad_tool_is_refused_every_time_and_not_remembered() -> None:
    pad = "x" * tooldefs.MEMO_MIN_BYTES
    body = _with_tools([{"name": "ok", "description": pad, "input_schema": {"type": "object"}},
                        {"name": "broken", "description": pad}])
    for _ in range(2):
        with pytest.raises(InvalidRequest, match=r"tools\.1\.input_schema: Field required"):
            translate_request(decode_for_translation(body), model="m", quirks=Quirks())
    assert not tooldefs._memo


def test_tool_choice_names_a_remembered_tool() -> None:
    pad = "x" * tooldefs.MEMO_MIN_BYTES
    body = _with_tools([{"name": "mcp__" + "s" * 80, "description": pad, "input_schema": {"type": "object"}}],
                       tool_choice={"type": "tool", "name": "mcp__" + "s" * 80})
    for _ in range(2):
        out = translate_request(decode_for_translation(body), model="m", quirks=Quirks()).body
        assert out["tool_choice"]["function"]["name"].startswith("mcp__sss")


def test_a_body_that_does_not_split_falls_back_to_the_whole_decode() -> None:
    assert decode_for_translation(b"[1, 2]") == [1, 2]
    with pytest.raises(InvalidRequest, match="line 1, column"):
        decode_for_translation(b'{"model": "m", "tools": [}')


def test_the_memo_is_bounded() -> None:
    pad = "x" * tooldefs.MEMO_MIN_BYTES
    for i in range(tooldefs.MEMO_ENTRIES + 5):
        body = _with_tools([{"name": f"t{i}", "description": pad, "input_schema": {"type": "object"}}])
        translate_request(decode_for_translation(body), model="m", quirks=Quirks())
    assert 0 < len(tooldefs._memo) <= tooldefs.MEMO_ENTRIES


def test_lists_that_share_length_and_ends_never_hit_each_other() -> None:
    pad = "x" * tooldefs.MEMO_MIN_BYTES
    first = _with_tools([{"name": "alpha", "description": pad + "A" + pad, "input_schema": {"type": "object"}}])
    second = first.replace(b"A" + pad.encode(), b"B" + pad.encode())
    assert len(first) == len(second) and first != second
    for body, letter in ((first, "A"), (second, "B"), (first, "A")):
        out = translate_request(decode_for_translation(body), model="m", quirks=Quirks()).body
        description = msgspec.json.decode(msgspec.json.encode(out["tools"]))[0]["function"]["description"]
        assert description[len(pad)] == letter
