"""The head split of a body whose ``tools`` the gateway has validated before.

Claude Code sends the same ``tools`` array (~70 KB of a ~90 KB request) on every turn, and the
head decode (``wire.anthropic.decode_messages``) scanned all of it each time to find the
top-level fields: ~30 µs of the request's CPU, for bytes it had already checked. Here a
``tools`` value the split has seen (``remember``) is looked up at the end of the next body
(the fields after it are small), compared byte for byte, and replaced in a copy of the body by
a placeholder; the copy, a fifth of the size, is split instead, and ``tools`` is the
remembered value.

Exact, not a heuristic: the placeholder is a JSON value that occurs once in the copy, and the
split must give it as the top-level ``tools``. Then the parser stood at a value position
there, so the original body parses the same way with the remembered value, which is valid
JSON (it came out of a successful split). Anything else (not found, changed, the placeholder
elsewhere, the copy not valid JSON) returns None and the whole body is split as before, which
words any error. The memo holds a few values (``ENTRIES``), each at most ``MAX_BYTES``.
"""

from __future__ import annotations

import msgspec

MIN_BYTES = 8 * 1024  # smaller lists cost less to scan than to look up
MAX_BYTES = 1024 * 1024
ENTRIES = 8  # distinct tool lists (sessions with other MCP servers, other clients)
_TAIL = 64  # bytes of a value's end looked for
_WINDOW = 8 * 1024  # how far from the body's end a value may end (the fields after ``tools``)
_PLACEHOLDER = b'"\\u0000ccgate-validated-tools"'
_PLACEHOLDER_RAW = msgspec.Raw(_PLACEHOLDER)

_split = msgspec.json.Decoder(dict[str, msgspec.Raw])
# (the value's last bytes, the value as bytes and as the Raw handed out); newest first.
_known: list[tuple[bytes, bytes, msgspec.Raw]] = []


def split(body: bytes) -> dict[str, msgspec.Raw] | None:
    """The top-level fields of ``body`` when its ``tools`` is a remembered value, else None."""
    if not _known or len(body) < MIN_BYTES:
        return None
    n = len(body)
    low = max(0, n - _WINDOW)
    for tail, value, raw in _known:
        at = body.rfind(tail, low)
        if at < 0:
            continue
        end = at + _TAIL
        start = end - len(value)
        if start < 0 or not body.startswith(value, start):  # a memcmp of the whole value
            continue
        rest = body[:start] + _PLACEHOLDER + body[end:]
        if rest.count(_PLACEHOLDER) != 1:
            return None
        try:
            fields = _split.decode(rest)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None
        if fields.get("tools") != _PLACEHOLDER_RAW:
            return None
        fields["tools"] = raw
        return fields
    return None


def holds(raw: msgspec.Raw) -> bool:
    """``raw`` is one of the remembered values themselves (backed by their own bytes, never by a
    request body): a memo may keep it as it is and compare it by identity."""
    return any(kept is raw for _, _, kept in _known)


def remember(fields: dict[str, msgspec.Raw]) -> None:
    """After a whole-body split: keep its ``tools`` for the next bodies (a copy, once)."""
    value = fields.get("tools")
    if value is None or not MIN_BYTES <= len(value) <= MAX_BYTES:
        return
    for i, (_, _, known) in enumerate(_known):
        if known == value:
            if i:
                _known.insert(0, _known.pop(i))
            return
    data = bytes(value)
    _known.insert(0, (data[-_TAIL:], data, msgspec.Raw(data)))
    del _known[ENTRIES:]


def forget() -> None:
    """Empty the memo (tests)."""
    _known.clear()


__all__ = ["ENTRIES", "MAX_BYTES", "MIN_BYTES", "forget", "holds", "remember", "split"]
