"""The system prompt memo (translate/system.py) and the fields the translated path never
decodes: a raw ``system`` (``wire.anthropic.decode_for_translation``) gives the same message,
dropped list and token estimate as a decoded one, remembered or not, for every profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from ccgate.errors import InvalidRequest
from ccgate.translate import Quirks, history, system, tooldefs, translate_request
from ccgate.wire.anthropic import decode_body, decode_for_translation
from tests.translate.helpers import FIXTURES
from tests.translate.test_request_golden import PROFILES

CLAUDE_CODE = FIXTURES / "requests" / "claude_code.json"
_json = msgspec.json.Encoder()


@pytest.fixture(autouse=True)
def empty_memos() -> None:
    system.forget()
    history.forget()
    tooldefs.forget()


def _view(data: Any, quirks: Quirks) -> tuple[bytes, list[str], int]:
    tr = translate_request(data, model="up", quirks=quirks)
    return _json.encode(tr.body), tr.dropped, tr.input_tokens_estimate


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("prompt", [
    "short prompt",
    [{"type": "text", "text": "x-anthropic-billing-header: cc_version=1; cch=abc;"},
     {"type": "text", "text": "You are Claude Code. " * 60, "cache_control": {"type": "ephemeral"}}],
    [{"type": "text", "text": "   "}],
])
def test_a_raw_prompt_translates_as_a_decoded_one_remembered_or_not(profile: str, prompt: Any) -> None:
    quirks = PROFILES[profile]
    body = _json.encode({**decode_body(Path(CLAUDE_CODE).read_bytes()), "system": prompt})
    expected = _view(decode_body(body), quirks)
    raw = decode_for_translation(body)
    assert isinstance(raw["system"], msgspec.Raw)
    assert _view(raw, quirks) == expected  # miss
    assert _view(decode_for_translation(body), quirks) == expected  # hit (when long enough to keep)
    assert len(system._memo) == (1 if len(raw["system"]) >= system.MEMO_MIN_BYTES else 0)


def test_each_system_role_has_its_own_entry() -> None:
    body = _json.encode({**decode_body(Path(CLAUDE_CODE).read_bytes()), "system": "You are helpful. " * 60})
    for role in ("system", "developer", "system"):
        out = translate_request(decode_for_translation(body), model="m", quirks=Quirks(system_role=role)).body
        assert msgspec.json.decode(_json.encode(out["messages"][0]))["role"] == role
    assert len(system._memo) == 2


def test_the_memo_is_bounded() -> None:
    for i in range(system.MEMO_ENTRIES + 3):
        body = _json.encode({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                             "system": f"prompt {i} " + "p" * system.MEMO_MIN_BYTES})
        translate_request(decode_for_translation(body), model="m", quirks=Quirks())
    assert 0 < len(system._memo) <= system.MEMO_ENTRIES


@pytest.mark.parametrize(("extra", "problem"), [
    (b'"system":"\xff",', "system: invalid UTF-8"),
    (b'"system":[{"type":"image"}],', "system.0: expected a text block"),
    (b'"temperature":1e400,', "temperature: number out of range"),
    (b'"metadata":' + b"[" * 1000 + b"]" * 1000 + b",", "nests too deeply"),
])
def test_bad_fields_are_a_400_naming_the_field(extra: bytes, problem: str) -> None:
    body = b'{"model":"m","max_tokens":5,%s"messages":[{"role":"user","content":"hi"}]}' % extra
    for _ in range(2):
        with pytest.raises(InvalidRequest) as raised:
            translate_request(decode_for_translation(body), model="m", quirks=Quirks())
        assert problem in raised.value.message
    assert not system._memo


def test_fields_that_are_only_dropped_are_never_decoded() -> None:
    # Bytes that would not decode, in a field the translation drops: listed, not read.
    body = b'{"model":"m","max_tokens":5,"safeguards":{"x":1e400},"messages":[{"role":"user","content":"hi"}]}'
    tr = translate_request(decode_for_translation(body), model="m", quirks=Quirks())
    assert "safeguards" in tr.dropped
