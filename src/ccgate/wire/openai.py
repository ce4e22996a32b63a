"""The OpenAI Chat Completions stream framing the gateway reads from compatible providers.

Everything else about OpenAI shapes stays as plain dicts: providers add and omit fields freely
(``reasoning_content``, ``reasoning``, vLLM's ``stop_reason``, DeepSeek's cache counters), so the
translators read them leniently with ``.get`` instead of validating a schema that every second
server would fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import msgspec

from ccgate.wire.sse import SSEEvent

DONE: Final = "[DONE]"

_decoder = msgspec.json.Decoder()


class ChunkDecodeError(ValueError):
    """A ``data:`` payload that is neither ``[DONE]`` nor a JSON object."""


def decode_chunk(data: str) -> dict[str, Any] | None:
    """The JSON object of one ``data:`` payload, or ``None`` for the ``[DONE]`` sentinel."""
    stripped = data.strip()
    if stripped == DONE:
        return None
    try:
        obj = _decoder.decode(stripped)
    except msgspec.DecodeError as exc:
        raise ChunkDecodeError(f"stream chunk is not JSON: {stripped[:200]!r}") from exc
    if not isinstance(obj, dict):
        raise ChunkDecodeError(f"stream chunk is not a JSON object: {stripped[:200]!r}")
    return obj


def iter_chunks(events: list[SSEEvent]) -> Iterator[dict[str, Any] | None]:
    """Chunks of the given events, skipping empty payloads; ``None`` marks ``[DONE]``."""
    for event in events:
        if event.data.strip():
            yield decode_chunk(event.data)
