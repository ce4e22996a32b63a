"""The OpenAI Chat Completions stream framing the gateway reads from compatible providers, and
the model lists (``GET /models``) that providers answer, in any of the usual dialects.

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


class ModelListError(ValueError):
    """A model-list answer that is not a model list (HTML from a proxy, an error object...)."""


class ListedModel(msgspec.Struct, frozen=True):
    """One entry of a provider's model list, whatever its dialect."""

    id: str
    # Anthropic's display_name, OpenRouter's name; None when the provider gives none.
    display_name: str | None = None
    # Anthropic max_input_tokens, OpenRouter context_length, vLLM max_model_len.
    context_window: int | None = None


_CONTEXT_FIELDS = ("max_input_tokens", "context_length", "max_model_len", "context_window")


def parse_model_list(body: bytes) -> list[ListedModel]:
    """The models of a ``GET /models`` answer: OpenAI's ``{"object": "list", "data": [{"id"}]}``,
    Anthropic's ``{"data": [{"id", "display_name"}], "has_more"}``, Ollama's native
    ``{"models": [{"name"}]}`` or a bare list. Ids keep their first occurrence's order;
    entries without a string id are skipped. Raises ``ModelListError`` when the body is not
    a model list at all, with the start of the body, so the caller can show what came back.
    """
    try:
        doc = _decoder.decode(body)
    except msgspec.DecodeError:
        raise ModelListError(f"the model list is not JSON: {body[:120]!r}") from None
    entries = _entries(doc)
    if entries is None:
        raise ModelListError(f"the answer is not a model list: {body[:120]!r}")
    models: dict[str, ListedModel] = {}
    for entry in entries:
        model = _listed(entry)
        if model is not None and model.id not in models:
            models[model.id] = model
    return list(models.values())


def _entries(doc: Any) -> list[Any] | None:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        for key in ("data", "models"):
            value = doc.get(key)
            if isinstance(value, list):
                return value
    return None


def _listed(entry: Any) -> ListedModel | None:
    if isinstance(entry, str):
        return ListedModel(entry) if entry else None
    if not isinstance(entry, dict):
        return None
    mid = entry.get("id", entry.get("name", entry.get("model")))
    if not isinstance(mid, str) or not mid:
        return None
    name = entry.get("display_name", entry.get("name"))
    context = next((entry[f] for f in _CONTEXT_FIELDS if type(entry.get(f)) is int), None)
    return ListedModel(mid, name if isinstance(name, str) and name != mid else None,
                       context if context is None or context > 0 else None)
