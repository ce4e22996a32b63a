"""Edit a JSON document in place, keeping every byte that the edit does not touch.

``json.loads`` + ``json.dumps`` would rewrite a user's whole settings file: ``1.0e5`` becomes
``100000.0``, ``"\\u00e9"`` becomes ``"é"``, tabs become spaces, a one-line file becomes a
tree. Instead this module finds the byte span of each member (a tiny span-recording scanner
over text that ``json.loads`` already accepted) and splices new text into it. New members copy
the formatting of their siblings: the whitespace before the key, the ``:`` separator, the
indentation unit, the line ending.

Theory of operation: ``JsonDoc.parse`` validates with ``json.loads`` (whose error carries line
and column) and keeps the text. Each edit re-scans the current text, splices, and records the
same edit on a plain ``dict``. ``JsonDoc.text`` is then checked against that ``dict``
(values and key order); if they ever disagree the document is re-serialised as a whole rather
than written wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JsonDoc", "JsonFileError"]

_WS = " \t\r\n"


class JsonFileError(ValueError):
    """The file is not a JSON object this tool can edit; the message names file and position."""


@dataclass
class _Node:
    start: int
    end: int


@dataclass
class _Member:
    key: str
    key_start: int
    key_end: int
    value: _Node


@dataclass
class _Object(_Node):
    members: list[_Member] = field(default_factory=list)


class _Scanner:
    """Records spans of a document that is already known to be valid JSON."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def ws(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WS:
            pos += 1
        self.pos = pos

    def value(self) -> _Node:
        self.ws()
        ch = self.text[self.pos]
        if ch == "{":
            return self.obj()
        if ch == "[":
            return self.arr()
        if ch == '"':
            start = self.pos
            self.string_end()
            return _Node(start, self.pos)
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",]}" + _WS:
            self.pos += 1
        return _Node(start, self.pos)

    def string_end(self) -> None:
        text = self.text
        pos = self.pos + 1
        while True:
            ch = text[pos]
            if ch == "\\":
                pos += 2
                continue
            pos += 1
            if ch == '"':
                break
        self.pos = pos

    def obj(self) -> _Object:
        node = _Object(self.pos, -1)
        self.pos += 1
        self.ws()
        if self.text[self.pos] == "}":
            self.pos += 1
            node.end = self.pos
            return node
        while True:
            self.ws()
            key_start = self.pos
            self.string_end()
            key_end = self.pos
            key = json.loads(self.text[key_start:key_end])
            self.ws()
            self.pos += 1  # ':'
            value = self.value()
            node.members.append(_Member(key, key_start, key_end, value))
            self.ws()
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "}":
                node.end = self.pos
                return node

    def arr(self) -> _Node:
        start = self.pos
        self.pos += 1
        self.ws()
        if self.text[self.pos] == "]":
            self.pos += 1
            return _Node(start, self.pos)
        while True:
            self.value()
            self.ws()
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "]":
                return _Node(start, self.pos)


def _line_indent(text: str, pos: int) -> str:
    """The leading whitespace of the line that contains ``pos``."""
    line_start = text.rfind("\n", 0, pos) + 1
    end = line_start
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[line_start:end]


def _detect_unit(text: str) -> str:
    """The indentation step of the document: a tab, or the smallest run of leading spaces."""
    widths = []
    for match in re.finditer(r"\n([ \t]+)\S", text):
        lead = match.group(1)
        if lead.startswith("\t"):
            return "\t"
        widths.append(len(lead))
    return " " * min(widths) if widths else "  "


@dataclass
class JsonDoc:
    """A JSON object document, its exact text, and its parsed value (kept in step)."""

    text: str
    data: dict[str, Any]
    bom: bool = False
    _nl: str = "\n"
    _unit: str = "  "
    _sep: str = ": "
    _item_sep: str = ", "
    _ascii: bool = False

    @classmethod
    def parse(cls, raw: bytes, name: str) -> JsonDoc:
        """Parse ``raw`` (the file's bytes). ``name`` is used in error messages only."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            raise JsonFileError(f"{name}:{line}:{col}: not UTF-8 text ({exc.reason})") from None
        bom = text.startswith("\ufeff")
        if bom:
            text = text[1:]
        if not text.strip():
            # An empty file (e.g. from `touch`) holds no settings; treat it as {}.
            return cls.new(bom=bom)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{name}:{exc.lineno}:{exc.colno}"
            raise JsonFileError(f"{where}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise JsonFileError(f"{name}: JSON nested too deeply to edit safely") from None
        if not isinstance(data, dict):
            raise JsonFileError(
                f"{name}:1:1: expected a JSON object at the top level, found {type(data).__name__}"
            )
        if not data and "\n" not in text.strip():
            # "{}" carries no style to keep; lay the new content out readably.
            return cls.new(bom=bom)
        doc = cls(text=text, data=data, bom=bom)
        doc._learn_style()
        return doc

    @classmethod
    def new(cls, *, bom: bool = False) -> JsonDoc:
        return cls(text="{\n}\n", data={}, bom=bom)

    def encoded(self) -> bytes:
        return (("\ufeff" if self.bom else "") + self.text).encode("utf-8")

    # -- style -----------------------------------------------------------------------------

    def _learn_style(self) -> None:
        text = self.text
        self._nl = "\r\n" if "\r\n" in text else "\n"
        self._unit = _detect_unit(text)
        root = self._root()
        sep = _first_separator(root, text)
        if sep is not None:
            self._sep = sep
        if len(root.members) > 1:
            between = text[root.members[0].value.end : root.members[1].key_start]
            if "\n" not in between:
                self._item_sep = between.strip(" \t") + (" " if between.endswith(" ") else "")
        self._ascii = "\\u" in text and not any(ord(c) > 127 for c in text)

    def _root(self) -> _Object:
        node = _Scanner(self.text).value()
        assert isinstance(node, _Object)
        return node

    def _dump(self, value: Any, indent: str, multiline: bool) -> str:
        if not multiline or not isinstance(value, dict | list) or not value:
            item_sep = self._item_sep if not multiline else ","
            return json.dumps(value, ensure_ascii=self._ascii, separators=(item_sep, self._sep))
        out = json.dumps(value, ensure_ascii=self._ascii, indent=self._unit, separators=(",", self._sep))
        return out.replace("\n", self._nl + indent)

    # -- navigation ------------------------------------------------------------------------

    def _find(self, path: tuple[str, ...]) -> _Object | None:
        node: _Node = self._root()
        for key in path:
            if not isinstance(node, _Object):
                return None
            found = [m for m in node.members if m.key == key]
            if not found:
                return None
            node = found[-1].value  # json.loads keeps the last duplicate
        return node if isinstance(node, _Object) else None

    def get(self, path: tuple[str, ...], default: Any = None) -> Any:
        cur: Any = self.data
        for key in path:
            if not isinstance(cur, dict) or key not in cur:
                return default
            cur = cur[key]
        return cur

    # -- edits -----------------------------------------------------------------------------

    def set(self, path: tuple[str, ...], value: Any) -> None:
        """Set ``path`` (keys from the root) to ``value``, creating parent objects as needed."""
        if not path:
            raise ValueError("empty path")
        parent_path, key = path[:-1], path[-1]
        for depth in range(len(parent_path)):
            sub = parent_path[: depth + 1]
            existing = self.get(sub)
            if not isinstance(existing, dict):
                nested: Any = value
                for k in reversed(path[depth + 1 :]):
                    nested = {k: nested}
                self.set(sub, nested)
                return
        obj = self._find(parent_path)
        assert obj is not None
        expected = _copy_set(self.data, path, value)
        self.text = self._splice_set(obj, key, value)
        self._commit(expected)

    def remove(self, path: tuple[str, ...]) -> None:
        """Delete the member at ``path`` (every duplicate of it); a missing path is a no-op."""
        parent = self.get(path[:-1])
        if not isinstance(parent, dict) or path[-1] not in parent:
            return
        expected = _copy_remove(self.data, path)
        while True:
            obj = self._find(path[:-1])
            assert obj is not None
            idx = [i for i, m in enumerate(obj.members) if m.key == path[-1]]
            if not idx:
                break
            self.text = _splice_remove(self.text, obj, idx[-1])
        self._commit(expected)

    def _splice_set(self, obj: _Object, key: str, value: Any) -> str:
        text = self.text
        existing = [m for m in obj.members if m.key == key]
        multiline = "\n" in text
        if existing:
            m = existing[-1]
            rendered = self._dump(value, _line_indent(text, m.key_start), multiline)
            return text[: m.value.start] + rendered + text[m.value.end :]
        key_text = json.dumps(key, ensure_ascii=self._ascii)
        if obj.members:
            last = obj.members[-1]
            prev_end = obj.members[-2].value.end if len(obj.members) > 1 else obj.start + 1
            lead = text[prev_end : last.key_start]
            lead = lead[lead.index(",") + 1 :] if "," in lead else lead
            sep = text[last.key_end : last.value.start]
            member_multiline = "\n" in lead
            indent = _line_indent(text, last.key_start) if member_multiline else ""
            rendered = self._dump(value, indent, member_multiline)
            insert = "," + lead + key_text + sep + rendered
            return text[: last.value.end] + insert + text[last.value.end :]
        # Empty object: indent one unit deeper than the line holding its '{'.
        if multiline:
            outer = _line_indent(text, obj.start)
            inner = outer + self._unit
            rendered = self._dump(value, inner, True)
            body = self._nl + inner + key_text + self._sep + rendered + self._nl + outer
        else:
            body = key_text + self._sep + self._dump(value, "", False)
        return text[: obj.start + 1] + body + text[obj.end - 1 :]

    def _commit(self, expected: dict[str, Any]) -> None:
        try:
            got = json.loads(self.text)
        except json.JSONDecodeError:
            got = None
        if not _same(got, expected):  # pragma: no cover - a bug guard, never expected
            self.text = json.dumps(expected, ensure_ascii=self._ascii, indent=self._unit) + "\n"
        self.data = expected


def _first_separator(obj: _Object, text: str) -> str | None:
    for m in obj.members:
        return text[m.key_end : m.value.start]
    return None


def _splice_remove(text: str, obj: _Object, i: int) -> str:
    members = obj.members
    m = members[i]
    if len(members) == 1:
        return text[: obj.start + 1] + text[obj.end - 1 :]
    if i < len(members) - 1:
        # Drop "key: value," and the whitespace up to the next key; that key inherits the
        # whitespace that preceded the removed one.
        return text[: m.key_start] + text[members[i + 1].key_start :]
    return text[: members[i - 1].value.end] + text[m.value.end :]


def _copy_set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = dict(data)
    if len(path) == 1:
        out[path[0]] = value
        return out
    child = out.get(path[0])
    out[path[0]] = _copy_set(child if isinstance(child, dict) else {}, path[1:], value)
    return out


def _copy_remove(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = dict(data)
    if len(path) == 1:
        out.pop(path[0], None)
        return out
    child = out.get(path[0])
    if isinstance(child, dict):
        out[path[0]] = _copy_remove(child, path[1:])
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal values and equal key order, recursively."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)
