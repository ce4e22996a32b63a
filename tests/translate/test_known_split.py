"""The head split that compares a ``tools`` list it validated before instead of scanning it
again (wire/known.py): the fields it gives are byte for byte the whole-body split's, whatever
the body does around the remembered bytes; anything it cannot prove falls back to the whole
split, which words the errors as before."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from bench.workload import synthetic_large

from ccgate.errors import InvalidRequest
from ccgate.wire import known
from ccgate.wire.anthropic import _top_level, decode_messages
from tests.translate.helpers import FIXTURES

FIXTURE = (FIXTURES / "requests" / "claude_code.json").read_bytes()  # indented
CLAUDE_CODE = msgspec.json.encode(msgspec.json.decode(FIXTURE))  # compact, as Claude Code sends it
BODIES = {"fixture": FIXTURE, "compact": CLAUDE_CODE, "synthetic": synthetic_large().body}


@pytest.fixture(autouse=True)
def empty_memo() -> None:
    known.forget()


def _whole(body: bytes) -> dict[str, bytes]:
    return {k: bytes(v) for k, v in _top_level.decode(body).items()}


def _fields(body: bytes) -> dict[str, bytes]:
    return {k: bytes(v) for k, v in decode_messages(body).fields.items()}


def _with(body: bytes, **changes: Any) -> bytes:
    data = msgspec.json.decode(body)
    data.update(changes)
    return msgspec.json.encode(data)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_remembered_tools_list_is_compared_and_the_fields_are_the_whole_splits(name: str) -> None:
    body = BODIES[name]
    assert len(msgspec.json.decode(body)["tools"]) > 0
    assert known.split(body) is None  # nothing remembered yet
    assert _fields(body) == _whole(body)  # the whole split, which remembers its tools
    fast = known.split(body)
    assert fast is not None and known.holds(fast["tools"])
    assert {k: bytes(v) for k, v in fast.items()} == _whole(body)
    assert _fields(body) == _whole(body)


def test_the_next_turn_with_the_same_tools_takes_the_short_split() -> None:
    decode_messages(CLAUDE_CODE)
    data = msgspec.json.decode(CLAUDE_CODE)
    data["messages"].append({"role": "assistant", "content": "ok"})
    data["messages"].append({"role": "user", "content": "and now?"})
    nxt = msgspec.json.encode(data)
    assert known.split(nxt) is not None
    assert _fields(nxt) == _whole(nxt)


def test_a_changed_tools_list_is_split_whole_and_remembered_next_to_the_old_one() -> None:
    decode_messages(CLAUDE_CODE)
    tools = msgspec.json.decode(CLAUDE_CODE)["tools"]
    tools[3]["description"] += " (changed)"
    changed = _with(CLAUDE_CODE, tools=tools)
    assert known.split(changed) is None
    assert _fields(changed) == _whole(changed)
    assert known.split(changed) is not None and known.split(CLAUDE_CODE) is not None


def test_the_remembered_bytes_nested_elsewhere_are_not_taken_for_the_top_level_tools() -> None:
    decode_messages(CLAUDE_CODE)
    tools = msgspec.json.decode(CLAUDE_CODE)["tools"]
    # The top-level tools is empty; the remembered list sits at the end as another field's value.
    body = _with(CLAUDE_CODE, tools=[], zz_later=tools)
    assert known.split(body) is None
    assert _fields(body) == _whole(body)
    assert _whole(body)["tools"] == b"[]"


def test_a_duplicate_tools_key_gives_the_last_one_as_the_whole_split_does() -> None:
    decode_messages(CLAUDE_CODE)
    raw = bytes(_top_level.decode(CLAUDE_CODE)["tools"])
    first = CLAUDE_CODE[:-1] + b',"tools":' + raw + b',"tools":[]}'
    last = CLAUDE_CODE[:-1] + b',"tools":[],"tools":' + raw + b"}"
    for body in (first, last):
        assert _fields(body) == _whole(body)
    assert _whole(first)["tools"] == b"[]" and _whole(last)["tools"] == raw


def test_the_placeholder_written_by_a_client_sends_the_body_the_long_way() -> None:
    decode_messages(CLAUDE_CODE)
    body = _with(CLAUDE_CODE, zz_note=["\u0000ccgate-validated-tools"])
    assert known.split(body) is None
    assert _fields(body) == _whole(body)


@pytest.mark.parametrize("broken", [
    b',"model":5}',  # a wrong type after tools
    b',"bad":[1,2,,3]}',  # malformed JSON after tools
    b',"bad":[1,2}',  # an array never closed
])
def test_bad_json_outside_a_remembered_tools_list_is_worded_as_without_the_memo(broken: bytes) -> None:
    body = CLAUDE_CODE[:-1] + broken
    with pytest.raises(InvalidRequest) as cold:
        decode_messages(body)
    decode_messages(CLAUDE_CODE)
    assert known._known  # remembered: the bad body meets the short split first
    with pytest.raises(InvalidRequest) as warm:
        decode_messages(body)
    assert warm.value.message == cold.value.message


def test_the_memo_is_bounded() -> None:
    tools = msgspec.json.decode(CLAUDE_CODE)["tools"]
    for i in range(known.ENTRIES + 3):
        tools[0]["description"] = f"version {i} " + "x" * 100
        decode_messages(_with(CLAUDE_CODE, tools=tools))
    assert len(known._known) == known.ENTRIES


def test_small_tools_lists_are_not_remembered() -> None:
    body = msgspec.json.encode({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                                "tools": [{"name": "t", "input_schema": {"type": "object"}}]})
    decode_messages(body)
    assert not known._known
