"""The format-preserving editor: edits land where expected and nothing else moves."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccgate.setup.jsonedit import JsonDoc, JsonFileError

EDITS: list[tuple[str, ...]] = [("env", "ANTHROPIC_BASE_URL"), ("hasCompletedOnboarding",)]


def edit(raw: bytes) -> JsonDoc:
    doc = JsonDoc.parse(raw, "f.json")
    doc.set(("env", "ANTHROPIC_BASE_URL"), "http://127.0.0.1:4545")
    doc.set(("hasCompletedOnboarding",), True)
    return doc


@pytest.mark.parametrize(
    "raw",
    [
        b'{\n    "model": "opus",\n    "n": 1.0e5,\n    "s": "\\u00e9\\/x"\n}\n',
        b'{\r\n\t"a": [1, 2,\r\n\t\t3],\r\n\t"env": {}\r\n}',
        b'{"a":1,"env":{"X":"1"}}',
        b'{ "a" : 1 , "b" : { "c" : null } }\n',
        b'\xef\xbb\xbf{\n  "a": "\xc3\xa9"\n}',
        b'{\n  "dup": 1,\n  "dup": 2\n}\n',
    ],
)
def test_edits_keep_every_other_byte(raw: bytes) -> None:
    doc = edit(raw)
    original = json.loads(raw.decode("utf-8-sig"))
    after = json.loads(doc.encoded().decode("utf-8-sig"))
    assert after["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4545"
    assert after["hasCompletedOnboarding"] is True
    for key, value in original.items():
        if key != "env":
            assert after[key] == value
    # Undoing the additions gives back the original bytes exactly.
    if "env" not in original:
        doc.remove(("env",))
    else:
        doc.remove(("env", "ANTHROPIC_BASE_URL"))
    doc.remove(("hasCompletedOnboarding",))
    if original.get("env") == {}:
        return  # "{}" was laid out anew when it received its first member
    assert doc.encoded() == raw


def test_style_is_copied_from_siblings() -> None:
    tabs = edit(b'{\r\n\t"a": 1\r\n}\r\n').text
    assert '\r\n\t"env": {\r\n\t\t"ANTHROPIC_BASE_URL": "http://127.0.0.1:4545"\r\n\t}' in tabs
    compact = edit(b'{"a":1}').text
    assert compact == (
        '{"a":1,"env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:4545"},"hasCompletedOnboarding":true}'
    )
    four = edit(b'{\n    "a": 1\n}\n').text
    assert '\n    "env": {\n        "ANTHROPIC_BASE_URL"' in four


def test_remove_first_middle_last_and_only() -> None:
    base = b'{\n  "env": {\n    "A": "1",\n    "B": "2",\n    "C": "3"\n  }\n}\n'
    for key, expected in (
        ("A", '{\n  "env": {\n    "B": "2",\n    "C": "3"\n  }\n}\n'),
        ("B", '{\n  "env": {\n    "A": "1",\n    "C": "3"\n  }\n}\n'),
        ("C", '{\n  "env": {\n    "A": "1",\n    "B": "2"\n  }\n}\n'),
    ):
        doc = JsonDoc.parse(base, "f")
        doc.remove(("env", key))
        assert doc.text == expected
    only = JsonDoc.parse(b'{"env": {"A": "1"}}', "f")
    only.remove(("env", "A"))
    assert only.text == '{"env": {}}'


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{\n  "a": 1,\n}\n', "f.json:3:1"),
        (b'{\n  "a": 1\n  "b": 2\n}', "f.json:3:3"),
        (b"[1, 2]", "f.json:1:1"),
        (b'{"a": "\xff"}', "f.json:1:8"),
    ],
)
def test_errors_name_file_line_and_column(raw: bytes, where: str) -> None:
    with pytest.raises(JsonFileError, match=where):
        JsonDoc.parse(raw, "f.json")


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
_docs = st.dictionaries(st.text(max_size=8), _values, max_size=6)
_env = st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    data=_docs,
    env=st.none() | _env,
    indent=st.sampled_from([None, 0, 1, 2, 4, "\t"]),
    seps=st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]),
    ascii_only=st.booleans(),
    crlf=st.booleans(),
)
def test_property_round_trip(
    data: dict[str, Any],
    env: dict[str, str] | None,
    indent: int | str | None,
    seps: tuple[str, str],
    ascii_only: bool,
    crlf: bool,
) -> None:
    data = {k: v for k, v in data.items() if k not in ("env", "hasCompletedOnboarding")}
    if env is not None:
        data["env"] = env
    text = json.dumps(data, indent=indent, separators=seps, ensure_ascii=ascii_only)
    if crlf:
        text = text.replace("\n", "\r\n")
    raw = text.encode()
    doc = edit(raw)
    expected = dict(data)
    expected["env"] = {**(env or {}), "ANTHROPIC_BASE_URL": "http://127.0.0.1:4545"}
    expected["hasCompletedOnboarding"] = True
    got = json.loads(doc.text)
    assert got == expected
    assert list(got) == list(expected)
    if crlf and "\n" in text:
        assert "\n" not in doc.text.replace("\r\n", "")
    if not data or env == {}:
        return  # an empty object is laid out anew
    if env is None:
        doc.remove(("env",))
    else:
        doc.remove(("env", "ANTHROPIC_BASE_URL"))
    doc.remove(("hasCompletedOnboarding",))
    assert doc.text == text
