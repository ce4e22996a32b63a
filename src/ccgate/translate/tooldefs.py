"""Translated tool definitions, remembered by their exact bytes.

Claude Code sends the same ``tools`` array (24 tools, ~60 KB of JSON schemas: two thirds of its
request) on every turn of a session. Decoding, cleaning, renaming, re-encoding and counting
them took most of a translated request's CPU (docs/benchmarks.md, "Where the time goes
([perf])"). The head decode for translation (``wire.anthropic.decode_for_translation``) leaves
``tools`` as raw JSON; here the translated list is kept, already encoded, under those bytes and
the quirks that shaped it. A hit is exact (the whole bytes are compared, no digest is trusted).
The memo is bounded; a full memo starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from ccgate.translate.quirks import Quirks
from ccgate.translate.toolnames import ToolNames
from ccgate.wire import known

# Tool lists shorter than this are translated each time: cheaper than remembering them.
MEMO_MIN_BYTES = 2048
MEMO_ENTRIES = 32  # sessions x providers with distinct tool sets; ~120 KB an entry for Claude Code


@dataclass(frozen=True)
class ToolDefs:
    """One request's ``tools`` translated: what ``translate_request`` needs of them."""

    encoded: msgspec.Raw  # the OpenAI ``tools`` list, as JSON
    count: int  # tools translated (0: none left, ``tools`` is not sent)
    listed: int  # tools the client listed (the tool-use prompt is counted when any)
    names: ToolNames  # the names they registered; copied for each request
    upstream_names: tuple[str, ...]
    dropped: tuple[str, ...]
    tokens: int  # estimated input tokens of the definitions (``tokens.tool_definition_tokens``)


# Looked up by length, both ends and the quirks (hashing 70 KB with the dict's SipHash cost
# ~40 µs a request), then confirmed by comparing the whole bytes (a memcmp: a few µs). Two lists
# that share the cheap key only take turns in the entry; a hit is always the same bytes.
_EDGE = 64
# The raw slice is compared as it is (``msgspec.Raw`` equality is a memcmp): no copy of the
# 70 KB per request, only when a new list is remembered. A list the head split already knew
# (``wire.known``) arrives as the split's own copy, immutable bytes: that object is kept and
# the next requests' lists are it (``is``), with no memcmp at all.
_Key = tuple[int, bytes, bytes, frozenset[str], int, str]
_memo: dict[_Key, tuple[msgspec.Raw, ToolDefs]] = {}


def remembered(raw: msgspec.Raw, quirks: Quirks, build: Callable[[], ToolDefs]) -> ToolDefs:
    """The translation of the tools ``raw`` under ``quirks``: remembered, else ``build()``
    (which raises for tools that do not translate; nothing is remembered then)."""
    if len(raw) < MEMO_MIN_BYTES:
        return build()
    view = memoryview(raw)
    key = (len(view), bytes(view[:_EDGE]), bytes(view[-_EDGE:]), quirks.schema_strip, quirks.tool_name_max,
           quirks.tool_id_style)
    entry = _memo.get(key)
    if entry is not None and (entry[0] is raw or entry[0] == raw):
        if entry[0] is not raw and known.holds(raw):
            _memo[key] = (raw, entry[1])  # the split's own copy: compared by identity from now on
        return entry[1]
    defs = build()
    if len(_memo) >= MEMO_ENTRIES:
        _memo.clear()
    _memo[key] = (raw if known.holds(raw) else raw.copy(), defs)
    return defs


def forget() -> None:
    """Empty the memo (tests)."""
    _memo.clear()


__all__ = ["MEMO_ENTRIES", "MEMO_MIN_BYTES", "ToolDefs", "forget", "remembered"]
