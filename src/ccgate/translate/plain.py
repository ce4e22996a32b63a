"""The plain text chunk: the common case of an OpenAI stream, recognised by a typed decode.

Almost every chunk of an answer is one choice whose delta is a piece of text and nothing else.
``PlainText`` decodes a ``data:`` payload with msgspec Structs that accept exactly the chunks
``StreamTranslator.feed`` would turn into one ``text_delta`` and nothing more, and returns the
text; anything else (``None``) goes the generic way. The decode refuses, so the generic path
takes over, when the chunk has (as ``feed`` reads them, stream.py):

* an ``error`` key, whatever its value, or ``object: "error"`` (``error_in_chunk``);
* a ``usage`` other than null (the last non-empty one is kept);
* other than exactly one choice; a choice whose ``index`` is not 0/null, whose ``delta`` is
  not an object, or with a non-null ``finish_reason`` or ``stop_reason``;
* in the delta: ``content`` that is not a string, a non-null ``refusal`` or ``function_call``,
  ``tool_calls`` other than null or ``[]``, and, when reasoning becomes thinking, a non-null
  value in any of the provider's reasoning fields or a ``reasoning_details`` other than null
  or ``[]``;
* bytes that are not UTF-8 or JSON the generic decoder would not read the same way.

Every other field (``id``, ``model``, ``role``, ``logprobs``, a provider's extras) is ignored
by both paths. tests/translate/test_plain_fast_path.py holds the two paths to the same bytes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec

# Delta keys the translator reads besides reasoning (stream.py, StreamTranslator._delta).
_DELTA_KEYS = frozenset({"content", "refusal", "tool_calls", "function_call"})
# null or [] (some servers send "tool_calls": [] with text; OpenRouter "reasoning_details": []):
# an empty list adds nothing on the generic road either.
_NONE_OR_EMPTY = tuple[()] | None


@lru_cache(maxsize=16)
def _chunk_type(reasoning_keys: tuple[str, ...]) -> Any:
    """The chunk Struct for a provider whose deltas carry reasoning in ``reasoning_keys``
    (each must then be absent or null). Fields are named ``r0``, ``r1``... and renamed to the
    provider's keys, which need not be Python names."""
    delta = msgspec.defstruct(
        "PlainDelta",
        [("content", str), ("refusal", None, None), ("tool_calls", _NONE_OR_EMPTY, None),
         ("function_call", None, None),
         *((f"r{i}", _NONE_OR_EMPTY if key == "reasoning_details" else None, None)
           for i, key in enumerate(reasoning_keys))],
        rename={f"r{i}": key for i, key in enumerate(reasoning_keys)},
    )
    choice = msgspec.defstruct(
        "PlainChoice",
        [("delta", delta), ("index", int | None, 0), ("finish_reason", None, None),
         ("stop_reason", None, None)],
    )
    return msgspec.defstruct(
        "PlainChunk",
        [("choices", tuple[choice]),  # type: ignore[valid-type]
         ("usage", None, None),
         ("error", msgspec.UnsetType, msgspec.UNSET),  # present at all: an error chunk
         ("object", str | None, None)],
    )


class PlainText:
    """``text(payload)``: the text of a plain text chunk (maybe ""), else None (the module doc)."""

    __slots__ = ("_decode",)

    def __init__(self, reasoning_keys: tuple[str, ...]) -> None:
        self._decode = msgspec.json.Decoder(_chunk_type(reasoning_keys)).decode

    @staticmethod
    def for_keys(reasoning_keys: tuple[str, ...]) -> PlainText | None:
        """None when a reasoning key is also a key the translator reads as something else (a
        provider configured that way gets the generic path only)."""
        keys = tuple(dict.fromkeys(reasoning_keys))
        if _DELTA_KEYS & set(keys):
            return None
        return PlainText(keys)

    def text(self, payload: bytes) -> str | None:
        try:
            chunk = self._decode(payload)
        except msgspec.DecodeError:  # ValidationError included: not a plain text chunk
            return None
        choice = chunk.choices[0]
        if choice.index or chunk.object == "error":
            return None
        text: str = choice.delta.content
        return text  # "" is a plain chunk too: feed would return no event for it


__all__ = ["PlainText"]
