"""A local estimate of Anthropic input tokens for a Messages request. No tokenizer, no network.

Claude's tokenizer is not public, so this counts BPE-like pieces: an ASCII word is one token
(long ones more), digits go in threes, punctuation runs in pairs, a newline run is one token, a
CJK character is one token. Structure adds what the API adds: a few tokens per turn, Anthropic's
documented tool-use system prompt when tools are present, wrappers around tool calls and results.
Images follow Anthropic's documented ``width * height / 750`` after its resize; PDFs a flat
per-page cost. docs/translation.md records the error measured against real API counts.

The number fills ``message_start.usage.input_tokens`` before the provider answers (Claude Code's
context meter and auto-compaction read it); the provider's real count follows in message_delta.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

import msgspec

from ccgate.errors import InvalidRequest
from ccgate.wire.anthropic import TOO_DEEP

# Structure costs, fitted to the fixture set in tests/translate/fixtures/token_truth.json.
_REQUEST = 3
_TURN = 3
_TOOL_USE = 20
_TOOL_RESULT = 12
_TOOL_DEF = 5
# Anthropic's documented tool-use system prompt (Claude 4 family): auto/none vs any/tool.
_TOOLS_AUTO = 346
_TOOLS_FORCED = 313
_IMAGE_FALLBACK = 1600  # URL or undecodable image: about the cost of a full-size one
_PDF_PAGE = 2000
_PDF_FALLBACK_PAGES = 3

_PIECES = re.compile(
    r"(?P<word>[A-Z]?[a-z]+|[A-Z]+(?![a-z]))"
    r"|(?P<digits>\d+)"
    r"|(?P<cjk>[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]+)"
    r"|(?P<other>[^\x00-\x7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\s]+)"
    r"|(?P<nl>[ \t]*[\r\n][\s]*)"
    r"|(?P<space>[ \t]{2,})"
    r"|(?P<punct>[^\sA-Za-z\d\u0080-\uffff]+)"
)


# Claude Code resends the same system prompt, tool definitions and history on every turn, so
# most strings of a request were counted on the previous one. A bounded memo turns the
# ~16 ms of regex work on a 90 KB request into a few dict lookups; keys are the strings
# themselves (or the compact JSON of a value), so a hit is exact, never approximate.
_MEMO_MIN = 256  # shorter strings are cheaper to count than to remember
_MEMO_MAX_CHARS = 8_000_000
_memo: dict[str | bytes, int] = {}
_memo_chars = 0
_compact = msgspec.json.Encoder()


def _remember(key: str | bytes, value: int) -> int:
    global _memo_chars
    if _memo_chars + len(key) > _MEMO_MAX_CHARS:
        _memo.clear()
        _memo_chars = 0
    _memo[key] = value
    _memo_chars += len(key)
    return value


def count_text(text: str) -> int:
    """Estimated tokens of one string."""
    if len(text) < _MEMO_MIN:
        return _count_text(text)
    hit = _memo.get(text)
    return hit if hit is not None else _remember(text, _count_text(text))


def _count_text(text: str) -> int:
    total = 0
    for m in _PIECES.finditer(text):
        kind = m.lastgroup
        piece = m.group()
        n = len(piece)
        if kind == "word":
            total += 1 if n <= 9 else 1 + math.ceil((n - 9) / 6)
        elif kind == "digits":
            total += math.ceil(n / 3)
        elif kind == "cjk":
            total += n
        elif kind == "other":
            total += math.ceil(n / 2)
        elif kind == "nl":
            tail = len(piece) - len(piece.rstrip(" \t"))
            total += 1 + tail // 8
        elif kind == "space":
            total += max(1, n // 8)
        elif kind == "punct":
            # "_" inside identifiers rides along with the next word piece ("_user").
            total += 0 if piece == "_" else (n + 1) // 2
    return total


def _count_json(value: Any) -> int:
    try:
        key = _compact.encode(value)  # C-speed; the memo key, not what is counted
    except (TypeError, ValueError):
        return _count_text(json.dumps(value, ensure_ascii=False, default=str))
    if len(key) < _MEMO_MIN:
        return _count_text(json.dumps(value, ensure_ascii=False))
    hit = _memo.get(key)
    if hit is not None:
        return hit
    return _remember(key, _count_text(json.dumps(value, ensure_ascii=False)))


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """Estimated ``input_tokens`` (system + messages + tools) of an Anthropic request body.

    Never raises on odd input: a malformed part counts as its JSON text. Always >= 1.
    Nesting that decoded but is too deep to walk (tool results inside tool results, counted
    recursively) is the client's error, a 400, as it is for the decoder.
    """
    try:
        return _estimate(body)
    except RecursionError:
        raise InvalidRequest(TOO_DEEP) from None


def _estimate(body: dict[str, Any]) -> int:
    total = _REQUEST
    total += _system(body.get("system"))
    messages = body.get("messages")
    if isinstance(messages, list):
        total += sum(_message(message) for message in messages)
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        total += tools_prompt_tokens(body.get("tool_choice")) + tool_definition_tokens(tools)
    return max(1, total)


def system_tokens(system: Any) -> int:
    """What ``system`` adds to ``estimate_input_tokens`` (``translate.system`` keeps it)."""
    try:
        return _system(system)
    except RecursionError:
        raise InvalidRequest(TOO_DEEP) from None


def _system(system: Any) -> int:
    if isinstance(system, str):
        return count_text(system)
    if isinstance(system, list):
        return sum(_block(b) for b in system)
    return 0


def message_tokens(message: Any) -> int:
    """What one message of ``messages`` adds to ``estimate_input_tokens`` (``translate.history``
    keeps it with the message's translation)."""
    try:
        return _message(message)
    except RecursionError:
        raise InvalidRequest(TOO_DEEP) from None


def _message(message: Any) -> int:
    content = message.get("content") if isinstance(message, dict) else message
    if isinstance(content, str):
        return _TURN + count_text(content)
    if isinstance(content, list):
        return _TURN + sum(_block(b) for b in content)
    return _TURN + _count_json(content)


def tools_prompt_tokens(choice: Any) -> int:
    """The tool-use system prompt Anthropic adds when a request has tools."""
    forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
    return _TOOLS_FORCED if forced else _TOOLS_AUTO


def tool_definition_tokens(tools: list[Any]) -> int:
    """The tool definitions themselves (name, description, input schema), summed."""
    total = 0
    for tool in tools:
        if isinstance(tool, dict):
            shown = {k: tool[k] for k in ("name", "description", "input_schema") if k in tool}
            total += _count_json(shown or tool)
    return total


def _block(block: Any) -> int:
    if not isinstance(block, dict):
        return count_text(block) if isinstance(block, str) else _count_json(block)
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return count_text(text) if isinstance(text, str) else 0
    if kind == "thinking":
        text = block.get("thinking")
        return count_text(text) if isinstance(text, str) else 0
    if kind == "redacted_thinking":
        return 0  # opaque; its cost is unknowable locally
    if kind == "tool_use":
        return _TOOL_USE + count_text(str(block.get("name", ""))) + _count_json(block.get("input", {}))
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            inner = count_text(content)
        elif isinstance(content, list):
            inner = sum(_block(b) for b in content)
        else:
            inner = 0
        return _TOOL_RESULT + inner
    if kind == "image":
        return _image(block.get("source"))
    if kind == "document":
        return _document(block)
    if kind in ("mid_conv_system", "search_result"):
        content = block.get("content")
        extra = count_text(str(block.get("title", ""))) if kind == "search_result" else 0
        if isinstance(content, list):
            return extra + sum(_block(b) for b in content)
        return extra + (count_text(content) if isinstance(content, str) else 0)
    return _count_json(block)


def _image(source: Any) -> int:
    if not isinstance(source, dict) or source.get("type") != "base64":
        return _IMAGE_FALLBACK
    size = image_size(str(source.get("data", "")))
    if size is None:
        return _IMAGE_FALLBACK
    width, height = size
    # Anthropic scales images down to fit 1568 px on the long edge and about 1.15 megapixels.
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / max(1, width * height)))
    return max(1, math.ceil(width * scale * height * scale / 750))


def _document(block: dict[str, Any]) -> int:
    source = block.get("source")
    if not isinstance(source, dict):
        return 0
    kind = source.get("type")
    if kind == "text":
        return count_text(str(source.get("data", "")))
    if kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            return count_text(content)
        return sum(_block(b) for b in content) if isinstance(content, list) else 0
    if kind == "base64":
        pages = _pdf_pages(str(source.get("data", "")))
        return _PDF_PAGE * (pages or _PDF_FALLBACK_PAGES)
    return _PDF_PAGE * _PDF_FALLBACK_PAGES


def _decode_prefix(data: str, limit: int) -> bytes:
    head = data[: limit - limit % 4]
    try:
        return base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return b""


_PDF_PAGE_OBJ = re.compile(rb"/Type\s*/Page(?!s)")


def _pdf_pages(data: str) -> int:
    raw = _decode_prefix(data, len(data) + 3)
    return len(_PDF_PAGE_OBJ.findall(raw))


def image_size(data: str) -> tuple[int, int] | None:
    """Width and height from the header of a base64 PNG, GIF, WebP or JPEG."""
    raw = _decode_prefix(data, 96 * 1024)
    if raw.startswith(b"\x89PNG\r\n\x1a\n") and len(raw) >= 24:
        return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        return int.from_bytes(raw[6:8], "little"), int.from_bytes(raw[8:10], "little")
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return _webp_size(raw)
    if raw[:2] == b"\xff\xd8":
        return _jpeg_size(raw)
    return None


def _webp_size(raw: bytes) -> tuple[int, int] | None:
    chunk = raw[12:16]
    if chunk == b"VP8X" and len(raw) >= 30:
        return 1 + int.from_bytes(raw[24:27], "little"), 1 + int.from_bytes(raw[27:30], "little")
    if chunk == b"VP8 " and len(raw) >= 30:
        return int.from_bytes(raw[26:28], "little") & 0x3FFF, int.from_bytes(raw[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(raw) >= 25:
        bits = int.from_bytes(raw[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(raw):
        if raw[i] != 0xFF:
            i += 1
            continue
        marker = raw[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(raw[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(raw[i + 5 : i + 7], "big")
            width = int.from_bytes(raw[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None
