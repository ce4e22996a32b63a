"""The parts of the Anthropic Messages API shape the gateway itself reads or writes.

Lenient in: only the fields the gateway needs are checked (``model``, ``max_tokens``,
``messages``, ``stream``); every other field passes through untouched and unparsed.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from ccgate.errors import InvalidRequest


class MessagesHead(msgspec.Struct):
    """What /v1/messages must carry. ``messages`` items stay raw JSON (never decoded)."""

    model: str
    max_tokens: int
    messages: list[msgspec.Raw]
    stream: bool = False


class CountTokensHead(msgspec.Struct):
    model: str
    messages: list[msgspec.Raw]


_messages_decoder = msgspec.json.Decoder(MessagesHead)
_count_decoder = msgspec.json.Decoder(CountTokensHead)
_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_BYTE = re.compile(r"\(byte (?P<pos>\d+)\)")


def decode_messages(body: bytes) -> MessagesHead:
    return _decode(_messages_decoder, body)


def decode_count_tokens(body: bytes) -> CountTokensHead:
    return _decode(_count_decoder, body)


T = TypeVar("T")


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    if not body.strip():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(_explain(str(exc), body)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(_explain(str(exc), body)) from None


def _explain(text: str, body: bytes) -> str:
    """msgspec's message rewritten the way Anthropic words it: ``field: problem``."""
    if text.startswith("JSON is malformed") or text.startswith("Input data was truncated"):
        match = _BYTE.search(text)
        if match:
            pos = int(match.group("pos"))
            line = body.count(b"\n", 0, pos) + 1
            col = pos - (body.rfind(b"\n", 0, pos) + 1) + 1
            return f"request body is not valid JSON: {text} (line {line}, column {col})"
        return f"request body is not valid JSON: {text}"
    missing = _MISSING.match(text)
    if missing:
        return f"{missing.group('field')}: Field required"
    match = _PATH.search(text)
    if match and match.group("path"):
        return f"{match.group('path')}: {text[: match.start()]}"
    if text.startswith("Expected `object`"):
        return f"request body must be a JSON object: {text}"
    return text


def model_list(models: list[tuple[str, str, int | None, int | None]]) -> dict[str, object]:
    """GET /v1/models in Anthropic's list shape from (id, display_name, context, max_output)."""
    data: list[dict[str, object]] = []
    for mid, name, context_window, max_tokens in models:
        info: dict[str, object] = {
            "type": "model", "id": mid, "display_name": name, "created_at": "2025-01-01T00:00:00Z",
        }
        if context_window is not None:
            info["max_input_tokens"] = context_window
        if max_tokens is not None:
            info["max_tokens"] = max_tokens
        data.append(info)
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
