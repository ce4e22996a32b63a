"""The parts of the Anthropic Messages API shape the gateway itself reads or writes.

Lenient in: only the fields the gateway needs are checked (``model``, ``max_tokens``,
``messages``, ``stream``); every other field passes through untouched and unparsed.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar
from urllib.parse import parse_qs

import msgspec

from ccgate.errors import InvalidRequest
from ccgate.wire import known


class MessagesHead(msgspec.Struct):
    """What /v1/messages must carry. ``messages`` stays raw JSON (an array, never decoded);
    ``fields`` holds every top-level field raw, so the translated path decodes what it needs
    without scanning the body again (``decode_for_translation``)."""

    model: str
    max_tokens: int
    messages: msgspec.Raw
    stream: bool = False
    fields: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)


class _MessagesShape(msgspec.Struct):
    """The same checks as one typed decode: used only to word an error in a bad body."""

    model: str
    max_tokens: int
    messages: list[msgspec.Raw]
    stream: bool = False


class CountTokensHead(msgspec.Struct):
    model: str
    messages: list[msgspec.Raw]


_messages_decoder = msgspec.json.Decoder(_MessagesShape)
_top_level = msgspec.json.Decoder(dict[str, msgspec.Raw])
_str = msgspec.json.Decoder(str)
_int = msgspec.json.Decoder(int)
_bool = msgspec.json.Decoder(bool)
_ARRAY = ord("[")
_count_decoder = msgspec.json.Decoder(CountTokensHead)
_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_BYTE = re.compile(r"\(byte (?P<pos>\d+)\)")
# msgspec guards its recursion with Python's recursion limit, so the exact depth that fails
# depends on the stack below it (about 1,000 minus the server's frames); no real request nests
# more than a few dozen levels. A separate depth scan would be a second pass over every body
# on the hot path, so the decoder's own guard is the check and its RecursionError the signal.
TOO_DEEP = ("request body nests too deeply: JSON arrays and objects nested hundreds of levels "
            "deep are refused")


def decode_messages(body: bytes) -> MessagesHead:
    """The head of a /v1/messages body: one scan of the whole body (msgspec skipping every value
    but the top-level ones it needs, at about the speed of a ``bytes.find``), then the four
    small values decoded. A ``tools`` list scanned before is compared, not scanned again
    (``wire.known``). A bad body is worded by the single typed decode of ``_MessagesShape``."""
    fields = known.split(body)  # ``tools`` validated before: only the rest is scanned
    if fields is None:
        fields = _decode(_top_level, body)
        known.remember(fields)
    try:
        messages = fields["messages"]
        if memoryview(messages)[0] != _ARRAY:
            raise msgspec.ValidationError("messages is not an array")
        stream = fields.get("stream")
        return MessagesHead(
            model=_str.decode(fields["model"]), max_tokens=_int.decode(fields["max_tokens"]),
            messages=messages, stream=_bool.decode(stream) if stream is not None else False, fields=fields)
    except (KeyError, msgspec.ValidationError, msgspec.DecodeError):
        shape = _decode(_messages_decoder, body)  # raises, naming the field as before
        raise InvalidRequest(f"request body: unexpected shape (model {shape.model!r})") from None


def decode_count_tokens(body: bytes) -> CountTokensHead:
    return _decode(_count_decoder, body)


T = TypeVar("T")


def decode_body(body: bytes) -> Any:
    """The whole body as Python objects, for the paths that rewrite or translate it (alias,
    clamp, quirks, translated, local count_tokens). The head decode left ``messages`` raw, so
    this is where bad bytes inside them (invalid UTF-8, ``1e400``) first surface: a 400."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidRequest(_explain(str(exc), body)) from None
    except RecursionError:
        raise InvalidRequest(TOO_DEEP) from None


def decode_for_translation(body: bytes, fields: dict[str, msgspec.Raw] | None = None) -> Any:
    """``decode_body`` for the translated path, without decoding: the top-level fields as raw
    JSON (``msgspec.Raw``). ``translate_request`` decodes the small fields it reads
    (``decode_field``) and translates ``tools``, ``system`` and each turn of ``messages`` once
    per distinct bytes (``translate.tooldefs``, ``.system``, ``.history``), so what Claude Code
    resends each turn is compared, not decoded; fields it drops are never decoded. A body that
    does not split this way (not an object, bad bytes) goes through ``decode_body``, which says
    what is wrong with positions in the whole body. ``fields``: the top-level fields
    ``decode_messages`` already split (``MessagesHead.fields``), not split again."""
    try:
        return dict(fields) if fields else _top_level.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return decode_body(body)


def decode_field(name: str, raw: msgspec.Raw) -> Any:
    """One raw field of a body decoded; bad bytes inside it (invalid UTF-8, ``1e400``, nesting
    too deep) are a 400 naming the field, as ``decode_body`` words them for a whole body."""
    try:
        return msgspec.json.decode(raw)
    except RecursionError:
        raise InvalidRequest(TOO_DEEP) from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        problem = _explain(str(exc), bytes(raw)).removeprefix("request body: ")
        raise InvalidRequest(f"{name}: {problem}") from None


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    if not body.strip():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidRequest(_explain(str(exc), body)) from None
    except RecursionError:  # even inside ``messages``: skipping a Raw value recurses too
        raise InvalidRequest(TOO_DEEP) from None


def _explain(text: str, body: bytes) -> str:
    """msgspec's message rewritten the way Anthropic words it: ``field: problem``."""
    if text.startswith("Invalid UTF-8"):
        return _bad_utf8(body)
    if text.startswith("Number out of range"):
        # msgspec names no usable path here (``$[...]``); say what is wrong instead.
        where = _PATH.search(text)
        field = where.group("path") if where and "..." not in where.group("path") else ""
        return (f"{field + ': ' if field else 'request body: '}number out of range "
                "(JSON numbers must be finite, e.g. not 1e400)")
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


def _bad_utf8(body: bytes) -> str:
    """Where the first invalid UTF-8 byte is; on the error path only, so the scan costs nothing
    on good requests."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        pos = exc.start
        line = body.count(b"\n", 0, pos) + 1
        col = pos - (body.rfind(b"\n", 0, pos) + 1) + 1
        return f"request body: invalid UTF-8 in a string (byte {pos}, line {line}, column {col})"
    return "request body: invalid UTF-8 in a string"


ModelRow = tuple[str, str, int | None, int | None]  # (id, display_name, context, max_output)

# Anthropic's GET /v1/models paging: ``limit`` 1..1000, default 20.
DEFAULT_PAGE = 20
MAX_PAGE = 1000


class ModelPage(msgspec.Struct, frozen=True):
    """The paging parameters of ``GET /v1/models`` (Anthropic's ``limit``, ``after_id``,
    ``before_id``)."""

    limit: int = DEFAULT_PAGE
    after_id: str | None = None
    before_id: str | None = None


def model_page(query: bytes) -> ModelPage:
    """The paging parameters from a query string; anything else in it is ignored (``beta``).
    A bad value is a 400 naming the parameter, as Anthropic answers."""
    params = parse_qs(query.decode("latin-1"), keep_blank_values=True)
    raw_limit = params.get("limit", [None])[-1]
    limit = DEFAULT_PAGE
    if raw_limit is not None:
        if not raw_limit.strip().isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
            raise InvalidRequest(f"limit: must be an integer from 1 to {MAX_PAGE}, got {raw_limit[:40]!r}")
        limit = int(raw_limit)
    after = params.get("after_id", [None])[-1] or None
    before = params.get("before_id", [None])[-1] or None
    if after is not None and before is not None:
        raise InvalidRequest("after_id and before_id cannot both be given")
    return ModelPage(limit, after, before)


def model_info(row: ModelRow) -> dict[str, object]:
    """One model object (``GET /v1/models/{model_id}`` and the list's items)."""
    mid, name, context_window, max_tokens = row
    info: dict[str, object] = {
        "type": "model", "id": mid, "display_name": name, "created_at": "2025-01-01T00:00:00Z",
    }
    if context_window is not None:
        info["max_input_tokens"] = context_window
    if max_tokens is not None:
        info["max_tokens"] = max_tokens
    return info


def model_list(models: list[ModelRow], page: ModelPage) -> dict[str, object]:
    """GET /v1/models in Anthropic's list shape, one page of it.

    As the API: ``after_id`` gives the ``limit`` items after that id, ``before_id`` the
    ``limit`` items just before it; ``has_more`` says whether more lie in that direction
    (the SDKs' auto-paging follows ``last_id``, resp. ``first_id``). An id that is not in the
    list (it went away between two pages) gives an empty last page.
    """
    ids = [row[0] for row in models]
    start, end = 0, len(models)
    if page.after_id is not None:
        start = ids.index(page.after_id) + 1 if page.after_id in ids else end
    elif page.before_id is not None:
        end = ids.index(page.before_id) if page.before_id in ids else 0
    if page.before_id is not None:
        chosen = models[max(start, end - page.limit):end]
        has_more = end - page.limit > start
    else:
        chosen = models[start:start + page.limit]
        has_more = start + page.limit < end
    data = [model_info(row) for row in chosen]
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
