"""Translated history turns, remembered by their bytes.

Claude Code resends the whole conversation on every turn, so decoding and translating
``messages`` made each translated request O(history). Here ``messages`` arrives as raw JSON
(``wire.anthropic.decode_for_translation``) and is split into one raw slice per message; each
message is looked up by its exact bytes and the provider's quirks. What a message needs is
kept with it: its turn's translation, already encoded (``msgspec.Raw``, embedded as is by the
encoder), the tool-call ids and tool names that turn registered, what it dropped, and its
token estimate. Only the new messages of a turn are decoded and translated.

Only what does not depend on other messages is remembered. A turn is translated alone:
an assistant turn's tool calls, and a user turn's tool results as if each answered a pending
call. What links turns is checked on every request, in ``translate_raw_messages``:

* a user turn's results must answer calls of the assistant turn just before it; a turn whose
  results do not (orphans, results placed late) is translated in place, not remembered;
* calls left unanswered get their placeholder here, between the turn's tool messages and the
  rest, as ``messages.translate_messages`` sends them;
* a remembered assistant turn's tool names are registered again, in order, and must map to the
  same provider names (they can differ only when an unusual name collides with a shortened one);
* consecutive messages of one role are one turn, remembered on its first message;
* a turn that would merge into its neighbour (an assistant turn left empty between two user
  turns) sends the whole request through ``translate_messages``: rare, and always exact.

A hit gives the same bytes, dropped list, tool names and estimate as a miss and as
``translate_messages`` on the decoded list; the tests hold all three to that. The memo is an LRU
bounded by entries and bytes (``MEMO_ENTRIES``, ``MEMO_BYTES``; a message over
``MEMO_MESSAGE_MAX`` is not kept): with more sessions active than fit, the ones idle longest are
forgotten, and their next turn pays one full translation.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import fields
from typing import Any

import msgspec

from ccgate.errors import InvalidRequest
from ccgate.translate.ids import to_upstream
from ccgate.translate.messages import (
    Block,
    Ctx,
    Dropped,
    answer_pending,
    assistant_turn,
    message_blocks,
    translate_messages,
    user_turn,
)
from ccgate.translate.quirks import Quirks
from ccgate.translate.tokens import message_tokens
from ccgate.wire.anthropic import TOO_DEEP, decode_body, decode_field

MEMO_ENTRIES = 20_000  # messages (one Claude Code turn adds 2-4)
MEMO_BYTES = 48 * 1024 * 1024  # their bytes and their translations', plus _OVERHEAD each
# A message larger than this is translated each time: one pasted file or huge tool result
# would otherwise push out dozens of sessions' turns (and it is rare enough not to matter).
MEMO_MESSAGE_MAX = 1024 * 1024
_OVERHEAD = 512  # Python objects per remembered message, roughly
_BUCKET = 8  # messages sharing a cheap key (length, samples): compared in turn

_split = msgspec.json.Decoder(list[msgspec.Raw])
_encode = msgspec.json.Encoder().encode


class _Turn:
    """One turn translated alone (a plain slotted class: built for every new turn, and a frozen
    dataclass's ``__init__`` costs several times as much)."""

    __slots__ = ("calls", "dropped", "first", "last", "last_calls", "names", "out", "results", "size",
                 "tool_led")

    def __init__(
        self, out: tuple[msgspec.Raw, ...], tool_led: int, calls: tuple[tuple[str, str], ...],
        names: tuple[tuple[str, str], ...], results: frozenset[str], dropped: tuple[str, ...],
        roles: tuple[str, str], last_calls: bool,
    ) -> None:
        self.out = out  # its messages, finished and encoded
        self.tool_led = tool_led  # how many of them lead as tool messages (user turns)
        self.calls = calls  # (anthropic id, upstream id) of its tool calls (assistant)
        self.names = names  # (anthropic name, upstream name) of its tool calls
        self.results = results  # the tool_use ids its results answer (user)
        self.dropped = dropped
        self.first, self.last = roles  # the roles of its first and last messages ("" when none)
        self.last_calls = last_calls  # its last message is an assistant's with tool_calls
        self.size = sum(len(r) for r in out)  # bytes of ``out``


class _Message:
    """One message of a history, by its bytes."""

    __slots__ = ("cached", "kept", "key", "merged", "raw", "role", "size", "tokens", "turn")

    def __init__(self, raw: msgspec.Raw, key: tuple[Any, ...], role: str, cached: bool) -> None:
        self.raw = raw
        self.key = key
        self.role = role  # its turn's role: "user" or "assistant" ("system" messages are user)
        self.cached = cached  # a block carried cache_control
        self.tokens = 0
        self.turn: _Turn | None = None  # this message as a turn of its own
        # The turn that starts here and takes in the next messages too: (those messages, turn).
        self.merged: tuple[tuple[_Message, ...], _Turn] | None = None
        self.size = len(raw) + _OVERHEAD
        self.kept = False  # in the memo (its size counted there)


class _Memo:
    """An LRU of messages by (length, samples of the bytes, quirks), confirmed by comparing the
    whole bytes: hashing every message's bytes on every request would cost more than the
    comparison (a memcmp)."""

    def __init__(self, entries: int, size: int) -> None:
        self.max_entries, self.max_bytes = entries, size
        self.buckets: OrderedDict[tuple[Any, ...], list[_Message]] = OrderedDict()
        self.count = 0
        self.bytes = 0

    def get(self, key: tuple[Any, ...], raw: msgspec.Raw) -> _Message | None:
        bucket = self.buckets.get(key)
        if bucket is None:
            return None
        for message in bucket:
            if message.raw == raw:
                self.buckets.move_to_end(key)
                return message
        return None

    def put(self, message: _Message) -> None:
        bucket = self.buckets.get(message.key)
        if bucket is None:
            bucket = self.buckets[message.key] = []
        else:
            self.buckets.move_to_end(message.key)
            if len(bucket) >= _BUCKET:
                self._drop(bucket.pop(0))
        bucket.append(message)
        message.kept = True
        self.count += 1
        self.bytes += message.size
        while self.buckets and (self.count > self.max_entries or self.bytes > self.max_bytes):
            _, oldest = self.buckets.popitem(last=False)
            for gone in oldest:
                self._drop(gone)

    def grew(self, message: _Message, size: int) -> None:
        """``message`` now holds ``size`` more bytes (a translation)."""
        message.size += size
        if message.kept:
            self.bytes += size

    def _drop(self, message: _Message) -> None:
        message.kept = False
        self.count -= 1
        self.bytes -= message.size

    def clear(self) -> None:
        self.buckets.clear()
        self.count = self.bytes = 0


_memo = _Memo(MEMO_ENTRIES, MEMO_BYTES)
_HEAD, _TAIL, _SAMPLE = 160, 48, 16
# The quirks a message's translation depends on, as a small number for the key: every field
# but extra_body (a dict, and only merged into the top level).
_QUIRK_FIELDS = tuple(f.name for f in fields(Quirks) if f.name != "extra_body")
_quirk_ids: dict[tuple[Any, ...], int] = {}
_quirk_of: dict[int, tuple[Quirks, int]] = {}


def _quirks_id(quirks: Quirks) -> int:
    known = _quirk_of.get(id(quirks))
    if known is not None and known[0] is quirks:
        return known[1]
    values = tuple(getattr(quirks, name) for name in _QUIRK_FIELDS)
    number = _quirk_ids.setdefault(values, len(_quirk_ids))
    if len(_quirk_of) >= 256:  # a reload builds new Quirks objects; old ones go
        _quirk_of.clear()
    _quirk_of[id(quirks)] = (quirks, number)
    return number


def _key(raw: msgspec.Raw, quirks: int) -> tuple[Any, ...]:
    """Length, quirks and samples of the bytes (head, middle, tail): the head is long enough to
    hold a tool_result's ``tool_use_id`` (tool results of one length and similar text differ
    there). ~1 µs a message; a CRC of the whole bytes would be O(history) again."""
    view = memoryview(raw)
    n = len(view)
    middle = n // 2
    samples = view[:_HEAD].tobytes() + view[middle : middle + _SAMPLE].tobytes() + view[-_TAIL:].tobytes()
    return (n, quirks, samples)


def forget() -> None:
    """Empty the memo (tests)."""
    _memo.clear()


def translate_raw_messages(raw: msgspec.Raw, ctx: Ctx) -> tuple[list[Any], int]:
    """``messages`` as raw JSON -> (the translated messages, each a ``msgspec.Raw`` or a dict;
    their token estimate). What ``translate_messages`` gives for the decoded list, byte for byte,
    with ``ctx.names`` and ``ctx.dropped`` left as it leaves them."""
    try:
        items = _split.decode(raw)
    except RecursionError:
        raise InvalidRequest(TOO_DEEP) from None
    except (msgspec.ValidationError, msgspec.DecodeError):
        items = None
    if not items:  # not a list, or empty: worded as for a decoded body
        value = decode_body(bytes(raw))
        return translate_messages(value, ctx), 0
    qid = _quirks_id(ctx.quirks)
    history = _History(ctx)
    for i, item in enumerate(items):
        history.add(i, item, qid)
    out = history.translate()
    if out is None:  # a turn merges into its neighbour: the one-pass translation, decoded
        values = [history.value(i) for i in range(len(items))]
        out = translate_messages(values, ctx)
    tokens = history.tokens()
    history.remember()
    return out, tokens


class _History:
    """One request's messages: the remembered ones and the new ones (decoded once)."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.messages: list[_Message] = []
        self.values: dict[int, Any] = {}  # decoded messages, by index
        self.blocks: dict[int, list[Block]] = {}
        self.new: list[int] = []
        self.cached = False
        self._ctx: Ctx | None = None

    def add(self, i: int, item: msgspec.Raw, qid: int) -> None:
        key = _key(item, qid)
        message = _memo.get(key, item)
        if message is None:
            value = self.value(i, item)
            role, blocks, cached = message_blocks(value, i)
            message = _Message(item.copy(), key, role, cached)
            self.blocks[i] = blocks
            self.new.append(i)
        self.cached = self.cached or message.cached
        self.messages.append(message)

    def value(self, i: int, item: msgspec.Raw | None = None) -> Any:
        value = self.values.get(i)
        if value is None:
            raw = item if item is not None else self.messages[i].raw
            value = self.values[i] = decode_field(f"messages.{i}", raw)
        return value

    def block_list(self, i: int) -> list[Block]:
        blocks = self.blocks.get(i)
        if blocks is None:
            blocks = self.blocks[i] = message_blocks(self.value(i), i)[1]
        return blocks

    def translate(self) -> list[Any] | None:
        """The translated messages, or None when turns would merge (see the module's doc)."""
        ctx, messages = self.ctx, self.messages
        out: list[Any] = []
        dropped: list[str] = []  # every turn's, in order: added to ctx.dropped once all translated
        pending: dict[str, str] = {}  # the last assistant turn's calls, still unanswered
        last, last_calls = "", False  # the role of the last message sent; an assistant's with tool_calls
        start = 0
        while start < len(messages):
            end = start + 1
            role = messages[start].role
            while end < len(messages) and messages[end].role == role:
                end += 1
            sent: tuple[Any, ...] | list[Any]
            if role == "assistant":
                # Nothing is pending here: the user turn before answered every call or filled it in.
                turn = self._assistant(start, end)
                pending.update(turn.calls)
                sent, first = turn.out, turn.first
                dropped.extend(turn.dropped)
            else:
                turn = self._user(start, end, pending)
                sent, first = turn.out, turn.first
                dropped.extend(turn.dropped)
                if pending:  # calls this turn did not answer: placeholders after its tool messages
                    fill = self._turn_ctx()
                    placeholders: list[Any] = []
                    answer_pending(pending, placeholders, fill)
                    sent = [*turn.out[: turn.tool_led], *placeholders, *turn.out[turn.tool_led :]]
                    first = "tool"
                    dropped.extend(fill.dropped.items)
            if first and (first == "user" == last or (first == "assistant" == last and not last_calls)):
                return None
            if len(turn.out) > turn.tool_led:
                last, last_calls = turn.last, turn.last_calls
            elif sent:
                last, last_calls = "tool", False
            out.extend(sent)
            start = end
        if pending:  # the last turn's calls, unanswered: placeholders at the end
            fill = self._turn_ctx()
            answer_pending(pending, out, fill)
            dropped.extend(fill.dropped.items)
        if self.cached:
            ctx.dropped.add("cache_control")
        for item in dropped:
            ctx.dropped.add(item)
        return out

    def _turn_ctx(self) -> Ctx:
        """A context whose dropped list is the turn's own (kept with the turn, added to the
        request's in order once every turn is translated). One per request, renewed per turn."""
        turn_ctx = self._ctx
        if turn_ctx is None:
            turn_ctx = self._ctx = Ctx(self.ctx.quirks, self.ctx.names, Dropped(), self.ctx.upstream_tools)
        else:
            turn_ctx.dropped = Dropped()
        return turn_ctx

    def _assistant(self, start: int, end: int) -> _Turn:
        turn = self._remembered(start, end)
        names = self.ctx.names
        if turn is not None and all(names.upstream_name(a) == u for a, u in turn.names):
            names.remember_ids(turn.calls)
            return turn
        # New, or its tool names map differently in this request: translated (and kept) again.
        ctx = self._turn_ctx()
        blocks = [b for i in range(start, end) for b in self.block_list(i)]
        out, calls, called = assistant_turn(blocks, ctx)
        upstream = [c["function"]["name"] for m in out for c in m.get("tool_calls", ())]
        turn = _make_turn(out, 0, calls, tuple(zip(called, upstream, strict=True)), frozenset(), ctx)
        self._keep(start, end, turn)
        return turn

    def _user(self, start: int, end: int, pending: dict[str, str]) -> _Turn:
        """The turn; ``pending`` is left with the calls it did not answer."""
        turn = self._remembered(start, end)
        if turn is not None and turn.results <= pending.keys():
            for answered in turn.results:
                del pending[answered]
            return turn
        ctx = self._turn_ctx()
        blocks = [b for i in range(start, end) for b in self.block_list(i)]
        results = frozenset(_result_ids(blocks))
        if results <= pending.keys():
            # Each result answers a pending call: the same translation as alone, so kept.
            style = ctx.quirks.tool_id_style
            out, tool_led = user_turn(blocks, ctx, {r: to_upstream(r, style) for r in results})
            for answered in results:
                del pending[answered]
            turn = _make_turn(out, tool_led, {}, (), results, ctx)
            self._keep(start, end, turn)
            return turn
        # Results that answer nothing just before (orphans, placed late): translated in place,
        # against the calls actually pending, and not kept.
        out, tool_led = user_turn(blocks, ctx, pending)
        return _make_turn(out, tool_led, {}, (), frozenset(), ctx)

    def _remembered(self, start: int, end: int) -> _Turn | None:
        first = self.messages[start]
        if end - start == 1:
            return first.turn
        merged = first.merged
        rest = self.messages[start + 1 : end]
        if merged is not None and len(merged[0]) == len(rest) and all(
                a is b for a, b in zip(merged[0], rest, strict=True)):
            return merged[1]
        return None

    def _keep(self, start: int, end: int, turn: _Turn) -> None:
        first = self.messages[start]
        if end - start == 1:
            replaced = first.turn.size if first.turn is not None else 0
            first.turn = turn
            _memo.grew(first, turn.size - replaced)
        else:
            # It holds the messages after the first: their bytes count here too.
            replaced = _merged_size(first.merged) if first.merged is not None else 0
            first.merged = (tuple(self.messages[start + 1 : end]), turn)
            _memo.grew(first, _merged_size(first.merged) - replaced)

    def tokens(self) -> int:
        for i in self.new:
            self.messages[i].tokens = message_tokens(self.values[i])
        return sum(m.tokens for m in self.messages)

    def remember(self) -> None:
        for i in self.new:
            message = self.messages[i]
            if len(message.raw) <= MEMO_MESSAGE_MAX:
                _memo.put(message)


def _merged_size(merged: tuple[tuple[_Message, ...], _Turn]) -> int:
    return merged[1].size + sum(len(m.raw) + _OVERHEAD for m in merged[0])


def _result_ids(blocks: list[Block]) -> list[str]:
    ids = []
    for _, block in blocks:
        if block["type"] == "tool_result":
            tool_id = block.get("tool_use_id")
            if isinstance(tool_id, str) and tool_id:
                ids.append(tool_id)
    return ids


def _make_turn(
    out: list[dict[str, Any]], tool_led: int, calls: dict[str, str], names: tuple[tuple[str, str], ...],
    results: frozenset[str], ctx: Ctx,
) -> _Turn:
    roles = (out[0]["role"], out[-1]["role"]) if out else ("", "")
    return _Turn(tuple([msgspec.Raw(_encode(m)) for m in out]), tool_led, tuple(calls.items()), names, results,
                 tuple(ctx.dropped.items), roles, bool(out and out[-1].get("tool_calls")))


__all__ = ["MEMO_BYTES", "MEMO_ENTRIES", "MEMO_MESSAGE_MAX", "forget", "translate_raw_messages"]
