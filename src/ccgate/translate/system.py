"""The system prompt -> one leading system message, remembered by its bytes.

Claude Code resends the same system prompt (~8 KB: its instructions, the environment, the
memory files) on every turn of a session. Decoding it, joining its blocks, counting its tokens
and encoding it again cost ~5 % of a translated request's CPU. Raw (``msgspec.Raw``, as
``wire.anthropic.decode_for_translation`` leaves it), it is looked up by its exact bytes and
the two quirks that shape it; the message is kept encoded, with what was dropped and its token
estimate. Decoded (any other caller), it is translated as always.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ccgate.translate.messages import Ctx, Dropped, join, text_blocks
from ccgate.translate.tokens import system_tokens
from ccgate.wire.anthropic import decode_field

_BILLING_HEADER = "x-anthropic-billing-header:"
_DROPPED_BILLING = "system.x-anthropic-billing-header"
MEMO_ENTRIES = 256  # sessions x providers: a prompt differs per project (its environment block)
MEMO_MIN_BYTES = 512  # shorter prompts are translated each time
_EDGE = 64
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class _Prompt:
    messages: tuple[msgspec.Raw, ...]  # the system message, or nothing
    dropped: tuple[str, ...]
    tokens: int


_memo: dict[tuple[Any, ...], tuple[msgspec.Raw, _Prompt]] = {}


def translate_system(system: Any, ctx: Ctx) -> tuple[list[Any], int]:
    """(the leading system message, zero or one; the prompt's token estimate when ``system`` was
    raw, else 0: ``estimate_input_tokens`` counts a decoded one)."""
    if not isinstance(system, msgspec.Raw):
        return system_message(system, ctx), 0
    quirks = ctx.quirks
    if len(system) < MEMO_MIN_BYTES:
        prompt = _translate(system, ctx)
    else:
        view = memoryview(system)
        key = (len(view), view[:_EDGE].tobytes(), view[-_EDGE:].tobytes(), quirks.drop_billing_header,
               quirks.system_role)
        entry = _memo.get(key)
        if entry is not None and entry[0] == system:
            prompt = entry[1]
        else:
            prompt = _translate(system, ctx)
            if len(_memo) >= MEMO_ENTRIES:
                _memo.clear()
            _memo[key] = (system.copy(), prompt)
    for item in prompt.dropped:
        ctx.dropped.add(item)
    return list(prompt.messages), prompt.tokens


def _translate(raw: msgspec.Raw, ctx: Ctx) -> _Prompt:
    value = decode_field("system", raw)
    probe = Ctx(ctx.quirks, ctx.names, Dropped())
    messages = system_message(value, probe)
    return _Prompt(tuple(msgspec.Raw(_encode(m)) for m in messages), tuple(probe.dropped.items),
                   system_tokens(value))


def system_message(system: Any, ctx: Ctx) -> list[dict[str, Any]]:
    """``system`` (a string or text blocks) as one leading message; the billing header block
    dropped (``Quirks.drop_billing_header``)."""
    if system is None:
        return []
    texts = text_blocks(system, "system")
    if ctx.quirks.drop_billing_header:
        kept = [t for t in texts if not t.lstrip().startswith(_BILLING_HEADER)]
        if len(kept) != len(texts):
            ctx.dropped.add(_DROPPED_BILLING)
        texts = kept
    text = join(texts)
    return [{"role": ctx.quirks.system_role, "content": text}] if text else []


def forget() -> None:
    """Empty the memo (tests)."""
    _memo.clear()


__all__ = ["MEMO_ENTRIES", "MEMO_MIN_BYTES", "forget", "system_message", "translate_system"]
