"""Quirks of providers that speak Anthropic's Messages API but are not Anthropic.

Passthrough to api.anthropic.com never rewrites a body (signatures on thinking blocks
must survive byte for byte). Anthropic-compatible providers (DeepSeek, Kimi, GLM,
MiniMax...) check their own subset of the API, so the body is rewritten once, here,
according to plain data built by the preset. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from ccgate.translate.ids import hashed_user_id

_USER_ID_OK = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


@dataclass(frozen=True)
class AnthropicQuirks:
    # Top-level body fields the provider rejects (Zhipu answers 1210 "Invalid API parameter").
    drop_fields: frozenset[str] = frozenset()
    # DeepSeek rejects Claude Code's JSON-string metadata.user_id (pattern ^[a-zA-Z0-9_-]+$):
    # "sanitize" replaces an id outside that pattern by ids.hashed_user_id (stable per user),
    # "drop" removes it, "keep" sends it unchanged.
    user_id: Literal["keep", "sanitize", "drop"] = "keep"
    # Forward the client's anthropic-beta header (providers that ignore it are unharmed; some reject).
    forward_beta: bool = True
    # Most tools the provider accepts (Kimi: 128); extra tools are a clear 400 from us, not theirs.
    max_tools: int | None = None

    @property
    def rewrites_body(self) -> bool:
        return bool(self.drop_fields) or self.user_id != "keep"


def rewrite_body(data: dict[str, Any], quirks: AnthropicQuirks) -> list[str]:
    """Apply ``quirks`` to a decoded request in place; returns what was changed, for the debug log."""
    changed: list[str] = []
    for name in quirks.drop_fields:
        if name in data:
            del data[name]
            changed.append(name)
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and "user_id" in metadata and quirks.user_id != "keep":
        user_id = metadata["user_id"]
        if quirks.user_id == "drop":
            del metadata["user_id"]
            changed.append("metadata.user_id")
        elif not (isinstance(user_id, str) and _USER_ID_OK.match(user_id)):
            metadata["user_id"] = hashed_user_id(str(user_id))
            changed.append("metadata.user_id")
    return changed


__all__ = ["AnthropicQuirks", "rewrite_body"]
