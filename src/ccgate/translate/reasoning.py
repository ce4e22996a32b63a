"""Provider reasoning <-> Anthropic ``thinking`` blocks with a gateway-owned signature.

A thinking block made from DeepSeek/vLLM/OpenRouter reasoning carries the signature
``ccgate:v1:<32 hex of sha256(text)>``. The prefix lets the gateway tell its own blocks from real
Anthropic ones: its own may be echoed back to the provider (DeepSeek requires that after tool
calls) and must never reach Anthropic; Anthropic's cannot be replayed to another model.
"""

from __future__ import annotations

import hashlib
from typing import Any

SIGNATURE_PREFIX = "ccgate:"


def sign(text: str) -> str:
    return SIGNATURE_PREFIX + "v1:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def is_gateway_signature(signature: object) -> bool:
    return isinstance(signature, str) and signature.startswith(SIGNATURE_PREFIX)


def reasoning_text(obj: dict[str, Any], fields: tuple[str, ...]) -> str:
    """Reasoning text of a message or a delta: the first non-empty of ``fields``, else the text
    parts of OpenRouter's ``reasoning_details`` (encrypted parts carry nothing readable)."""
    for name in fields:
        value = obj.get(name)
        if isinstance(value, str) and value:
            return value
    details = obj.get("reasoning_details")
    if isinstance(details, list):
        parts = []
        for item in details:
            if isinstance(item, dict):
                text = item.get("text") if item.get("type") == "reasoning.text" else item.get("summary")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return ""
