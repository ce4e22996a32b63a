"""The translated path's history memo (translate/history.py): ``messages`` arriving raw
(``wire.anthropic.decode_for_translation``) translate to exactly the bytes, dropped list, tool
names and token estimate of the decoded request (``translate_messages``), on the first request
(miss), on every later one (hit), and turn by turn as a session grows; for the golden Claude
Code request under every provider profile and for generated histories, damaged ones included."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccgate.errors import InvalidRequest
from ccgate.translate import Quirks, history, tooldefs, translate_request
from ccgate.translate.messages import message_blocks
from ccgate.translate.reasoning import sign
from ccgate.translate.request import TranslatedRequest
from ccgate.wire.anthropic import TOO_DEEP, decode_body, decode_for_translation
from tests.translate.helpers import FIXTURES
from tests.translate.test_properties import conversations
from tests.translate.test_request_golden import PROFILES

CLAUDE_CODE = FIXTURES / "requests" / "claude_code.json"
_json = msgspec.json.Encoder()


def _view(tr: TranslatedRequest) -> dict[str, Any]:
    return {
        "body": _json.encode(tr.body),  # byte for byte
        "dropped": tr.dropped,
        "renamed": tr.tools.renamed,
        "ids": dict(tr.tools._ids_down),
        "estimate": tr.input_tokens_estimate,
        "stream": (tr.stream, tr.upstream_stream),
    }


def _decoded(body: bytes, quirks: Quirks) -> dict[str, Any]:
    return _view(translate_request(decode_body(body), model="up", quirks=quirks, max_output_tokens=32000))


def _raw(body: bytes, quirks: Quirks) -> dict[str, Any]:
    data = decode_for_translation(body)
    assert isinstance(data["messages"], msgspec.Raw)
    return _view(translate_request(data, model="up", quirks=quirks, max_output_tokens=32000))


@pytest.fixture(autouse=True)
def empty_memo() -> None:
    history.forget()
    tooldefs.forget()


class _Decodes:
    """Counts the messages ``translate.history`` decodes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        def counted(message: Any, i: int) -> Any:
            self.count += 1
            return message_blocks(message, i)

        monkeypatch.setattr(history, "message_blocks", counted)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_claude_code_request_is_byte_identical_on_a_miss_and_a_hit(
    profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = Path(CLAUDE_CODE).read_bytes()
    quirks = PROFILES[profile]
    expected = _decoded(body, quirks)
    decodes = _Decodes(monkeypatch)
    assert _raw(body, quirks) == expected  # miss
    assert decodes.count == len(decode_body(body)["messages"])
    assert _raw(body, quirks) == expected  # hit
    assert decodes.count == len(decode_body(body)["messages"])  # nothing decoded again
    assert history._memo.count == len(decode_body(body)["messages"])


def test_a_growing_session_decodes_only_its_new_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    data = decode_body(Path(CLAUDE_CODE).read_bytes())
    messages = data["messages"]
    decodes = _Decodes(monkeypatch)
    for quirks in PROFILES.values():
        history.forget()
        decodes.count = 0
        for n in range(1, len(messages) + 1):
            body = _json.encode({**data, "messages": messages[:n]})
            before = decodes.count
            assert _raw(body, quirks) == _decoded(body, quirks)
            # The new message, and the earlier messages of its turn when it joins one (a
            # "system" message after a user message belongs to the user's turn).
            role = _role(messages[n - 1])
            joined = next(k for k in range(n - 1, -1, -1) if k == 0 or _role(messages[k - 1]) != role)
            assert decodes.count - before == n - joined, f"turn {n}: only the new turn is decoded"


def _role(message: dict[str, Any]) -> str:
    return "assistant" if message["role"] == "assistant" else "user"


def test_each_provider_profile_has_its_own_translation() -> None:
    body = Path(CLAUDE_CODE).read_bytes()
    views = {name: _raw(body, quirks) for name, quirks in PROFILES.items()}
    for name, quirks in PROFILES.items():
        assert _raw(body, quirks) == views[name] == _decoded(body, quirks)
    assert len({v["body"] for v in views.values()}) == len(PROFILES)


# -- generated histories --------------------------------------------------------------------------

_QUIRKS = st.builds(
    Quirks,
    tool_id_style=st.sampled_from(["any", "alnum9"]),
    mid_system=st.sampled_from(["user", "system"]),
    strict_alternation=st.booleans(),
    reasoning_echo=st.booleans(),
    images=st.booleans(),
    system_role=st.sampled_from(["system", "developer"]),
    tool_name_max=st.sampled_from([12, 64]),
)
_ODD: list[dict[str, Any]] = [
    # an assistant turn that sends nothing (Anthropic's own reasoning only): its neighbours merge
    {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "EqQBCkgIARAB"}]},
    # a user turn that sends nothing
    {"role": "user", "content": [{"type": "text", "text": "  "}]},
    {"role": "user", "content": "again"},
    {"role": "assistant", "content": "sure"},
    {"role": "assistant", "content": [{"type": "thinking", "thinking": "plan", "signature": sign("plan")},
                                      {"type": "text", "text": "done"}]},
    {"role": "user", "content": [{"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                                 {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]},
    {"role": "system", "content": [{"type": "text", "text": "mind the tests"}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "late_1", "content": "late"}]},
]


@st.composite
def sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """``test_properties.conversations`` with odd messages dropped in anywhere (empty turns,
    same-role neighbours, repeated messages, cache_control, images, signed reasoning)."""
    messages = copy.deepcopy(draw(conversations()))
    for _ in range(draw(st.integers(0, 3))):
        odd = copy.deepcopy(draw(st.sampled_from(_ODD)))
        messages.insert(draw(st.integers(1, len(messages))), odd)
    if len(messages) > 1 and draw(st.booleans()):  # a message repeated verbatim
        messages.insert(draw(st.integers(1, len(messages))), copy.deepcopy(draw(st.sampled_from(messages))))
    return messages


def _body(messages: list[Any]) -> bytes:
    return _json.encode({"model": "c", "max_tokens": 10, "stream": True, "messages": messages,
                         "system": [{"type": "text", "text": "be brief"}]})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=sessions(), quirks=_QUIRKS)
def test_generated_sessions_translate_identically_turn_by_turn(messages: list[dict[str, Any]], quirks: Quirks) -> None:
    history.forget()
    for n in range(1, len(messages) + 1):  # as a client sends them: one request per turn
        body = _body(messages[:n])
        try:
            expected = _decoded(body, quirks)
        except InvalidRequest as exc:
            with pytest.raises(InvalidRequest) as raised:
                _raw(body, quirks)
            assert raised.value.message == exc.message
            continue
        assert _raw(body, quirks) == expected  # new turns missed, the rest hit
        assert _raw(body, quirks) == expected  # all hit


def test_an_empty_turn_between_two_of_the_other_role_falls_back_and_stays_exact() -> None:
    messages = [{"role": "user", "content": "a"}, _ODD[0], {"role": "user", "content": "b"}]
    body = _body(messages)
    expected = _decoded(body, Quirks())
    assert msgspec.json.decode(expected["body"])["messages"][1] == {"role": "user", "content": "a\n\nb"}
    assert _raw(body, Quirks()) == _raw(body, Quirks()) == expected


def test_results_that_answer_no_call_just_before_are_translated_in_place() -> None:
    call = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}
    answered = [{"role": "user", "content": "go"}, {"role": "assistant", "content": [call]},
                {"role": "user", "content": [result]}]
    late = [{"role": "user", "content": "go"}, {"role": "assistant", "content": [call]},
            {"role": "user", "content": "wait"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [result]}]
    for messages in (answered, late, answered, late):
        body = _body(messages)
        assert _raw(body, Quirks()) == _decoded(body, Quirks())
    out = msgspec.json.decode(_raw(_body(late), Quirks())["body"])["messages"]
    assert out[-1] == {"role": "user", "content": "[result of tool call toolu_1]\nok"}
    assert out[3]["content"].startswith("(no result")


def test_a_remembered_turn_whose_tool_names_map_differently_is_translated_again() -> None:
    # Under a 12-character limit "mcp__long_tool_name" is shortened; a request whose tools
    # list holds a tool already named like that shortened form makes the history's name salted.
    quirks = Quirks(tool_name_max=12)
    long_name = "mcp__long_tool_name"
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": long_name, "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]
    plain = _body(messages)
    first = _raw(plain, quirks)
    short = msgspec.json.decode(first["body"])["messages"][2]["tool_calls"][0]["function"]["name"]
    assert short != long_name
    clash = _json.encode({**msgspec.json.decode(plain), "tools": [
        {"name": short, "input_schema": {"type": "object"}}]})
    for body in (clash, plain, clash):
        assert _raw(body, quirks) == _decoded(body, quirks)
    salted = msgspec.json.decode(_raw(clash, quirks)["body"])["messages"][2]["tool_calls"][0]["function"]["name"]
    assert salted not in (short, long_name)


def test_cache_control_is_listed_from_a_remembered_message() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
                {"role": "assistant", "content": "yo"}, {"role": "user", "content": "more"}]
    body = _body(messages)
    assert "cache_control" in _decoded(body, Quirks())["dropped"]
    assert _raw(body, Quirks()) == _raw(body, Quirks()) == _decoded(body, Quirks())


# -- keys, bounds, bad bytes ------------------------------------------------------------------------


def test_messages_sharing_the_cheap_key_never_hit_each_other() -> None:
    pad = "x" * 200  # the difference falls between the samples (head, middle, tail)
    a = {"role": "user", "content": pad + "A" + pad * 2}
    b = {"role": "user", "content": pad + "B" + pad * 2}
    key_a = history._key(msgspec.Raw(_json.encode(a)), 0)
    assert key_a == history._key(msgspec.Raw(_json.encode(b)), 0)
    for messages in ([a], [b], [a, {"role": "assistant", "content": "k"}, b], [b]):
        body = _body(messages)
        assert _raw(body, Quirks()) == _decoded(body, Quirks())


def test_the_memo_is_bounded_by_entries_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    memo = history._Memo(entries=50, size=40_000)
    monkeypatch.setattr(history, "_memo", memo)
    for session in range(40):  # more sessions than fit
        messages: list[dict[str, Any]] = []
        for turn in range(6):
            messages += [{"role": "user", "content": f"s{session} t{turn} " + "w " * 200},
                         {"role": "assistant", "content": f"answer {turn}"}]
            body = _body(messages)
            assert _raw(body, Quirks()) == _decoded(body, Quirks())
            kept = [m for bucket in memo.buckets.values() for m in bucket]
            assert memo.count == len(kept) <= 50
            assert memo.bytes == sum(m.size for m in kept) <= 40_000
            assert all(m.kept for m in kept)


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        (b'[{"role":"user","content":"\xff\xfe"}]', "messages.0: invalid UTF-8"),
        (b'[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"x","n":1e400}]}]',
         "messages.1: number out of range"),
        (b'[{"role":"user","content":' + b"[" * 1000 + b"]" * 1000 + b"}]", TOO_DEEP),
        (b"[]", "messages: must be a non-empty list"),
        (b'"hi"', "messages: must be a non-empty list"),
        (b"null", "messages: Field required"),
        (b'[{"role":"user","content":[{"type":"nope"}]}]', "messages.0.content.0: unknown block type 'nope'"),
        (b'[{"role":"robot","content":"x"}]', "messages.0.role: must be"),
    ],
)
def test_bad_messages_are_a_400_naming_the_message(messages: bytes, problem: str) -> None:
    body = b'{"model":"m","max_tokens":5,"messages":%s}' % messages
    for _ in range(2):
        with pytest.raises(InvalidRequest) as raised:
            translate_request(decode_for_translation(body), model="m", quirks=Quirks())
        assert problem in raised.value.message
    assert history._memo.count == 0


def test_a_message_over_the_size_cap_is_translated_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "MEMO_MESSAGE_MAX", 1000)
    messages = [{"role": "user", "content": "y " * 600}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "short"}]
    body = _body(messages)
    for _ in range(2):
        assert _raw(body, Quirks()) == _decoded(body, Quirks())
    kept = [m for bucket in history._memo.buckets.values() for m in bucket]
    assert len(kept) == 2 and all(len(m.raw) <= 1000 for m in kept)
