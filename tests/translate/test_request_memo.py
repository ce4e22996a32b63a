"""The translated request as the server builds it (head split of ``wire.known``, raw fields,
the tools, system and history memos) against the one-pass translation of the decoded body
with nothing remembered: the same upstream bytes, dropped list, tool names and estimate, on
the first request and every later one; and a changed tool, system prompt or message gives
the changed translation, never a remembered one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from bench.workload import synthetic_large

from ccgate.translate import history, system, tooldefs, translate_request
from ccgate.translate.request import TranslatedRequest
from ccgate.wire import known
from ccgate.wire.anthropic import decode_body, decode_for_translation, decode_messages
from tests.translate.helpers import FIXTURES
from tests.translate.test_request_golden import PROFILES

FIXTURE = (FIXTURES / "requests" / "claude_code.json").read_bytes()
COMPACT = msgspec.json.encode(msgspec.json.decode(FIXTURE))
BODIES = {"fixture": FIXTURE, "compact": COMPACT, "synthetic": synthetic_large().body}


def _forget() -> None:
    for memo in (known, tooldefs, system, history):
        memo.forget()


@pytest.fixture(autouse=True)
def empty_memos() -> None:
    _forget()


def _view(tr: TranslatedRequest) -> dict[str, Any]:
    return {
        "body": msgspec.json.encode(tr.body),  # the bytes that go upstream
        "dropped": tr.dropped,
        "renamed": tr.tools.renamed,
        "estimate": tr.input_tokens_estimate,
        "stream": (tr.stream, tr.upstream_stream, tr.thinking),
    }


def _one_pass(body: bytes, profile: str) -> dict[str, Any]:
    return _view(translate_request(decode_body(body), model="up", quirks=PROFILES[profile], max_output_tokens=32000))


def _served(body: bytes, profile: str) -> dict[str, Any]:
    fields = decode_messages(body).fields
    data = decode_for_translation(body, fields)
    return _view(translate_request(data, model="up", quirks=PROFILES[profile], max_output_tokens=32000))


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("name", sorted(BODIES))
def test_the_memoised_path_sends_the_one_pass_bytes_on_a_miss_and_on_hits(name: str, profile: str) -> None:
    body = BODIES[name]
    expected = _one_pass(body, profile)
    _forget()
    for _ in range(3):  # miss, then hits (the third with the tools list compared by identity)
        assert _served(body, profile) == expected


def _tool(data: dict[str, Any]) -> None:
    data["tools"][1]["description"] += " Now with a new sentence."


def _system(data: dict[str, Any]) -> None:
    blocks = data["system"]
    if isinstance(blocks, str):
        data["system"] = blocks + " And one more rule."
    else:
        blocks[-1]["text"] += " And one more rule."


def _message(data: dict[str, Any]) -> None:
    first = data["messages"][0]
    if isinstance(first["content"], str):
        first["content"] += " (edited)"
    else:
        text = next(b for b in first["content"] if b.get("type") == "text")
        text["text"] += " (edited)"


@pytest.mark.parametrize("change", [_tool, _system, _message], ids=["tool", "system", "message"])
@pytest.mark.parametrize("name", ["compact", "synthetic"])
def test_a_changed_part_is_translated_anew(name: str, change: Callable[[dict[str, Any]], None]) -> None:
    body = BODIES[name]
    before = _served(body, "default")
    _served(body, "default")  # everything remembered now
    data = msgspec.json.decode(body)
    change(data)
    changed = msgspec.json.encode(data)
    got = _served(changed, "default")
    assert got["body"] != before["body"]
    _forget()
    assert got == _one_pass(changed, "default")
    assert _served(body, "default") == before  # and the old request still gives the old bytes
