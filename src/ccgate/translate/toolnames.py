"""Tool names and ids as the provider sees them, and the way back.

OpenAI-compatible servers allow ``[a-zA-Z0-9_-]{1,64}`` for function names; Anthropic allows 128
characters, and MCP tools (``mcp__server__tool``) often exceed 64. Long or odd names become
``<prefix>_<8 hex of sha256>``, as LiteLLM does, and collisions are resolved so the mapping stays
injective. One ``ToolNames`` lives for one request/response pair.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Literal

from ccgate.translate import ids

_VALID = re.compile(r"^[a-zA-Z0-9_-]+$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


class ToolNames:
    def __init__(
        self,
        names: Iterable[str] = (),
        *,
        max_len: int = 64,
        id_style: Literal["any", "alnum9"] = "any",
    ) -> None:
        if max_len < 12:
            raise ValueError("tool_name_max below 12 leaves no room for a hash suffix")
        self.max_len = max_len
        self.id_style: Literal["any", "alnum9"] = id_style
        self._up: dict[str, str] = {}  # anthropic name -> upstream name
        self._down: dict[str, str] = {}  # upstream name -> anthropic name
        self._ids_down: dict[str, str] = {}  # upstream id -> anthropic id, from the request history
        for name in names:
            self.upstream_name(name)

    def copy_names(self) -> ToolNames:
        """A new mapping with this one's names (not its ids): what a memoised tools list
        registered, for one more request (``translate.tooldefs``)."""
        other = ToolNames(max_len=self.max_len, id_style=self.id_style)
        other._up = dict(self._up)
        other._down = dict(self._down)
        return other

    # -- names ---------------------------------------------------------------------------------
    def upstream_name(self, name: str) -> str:
        """The provider-side name for an Anthropic tool name (registered on first use)."""
        known = self._up.get(name)
        if known is not None:
            return known
        candidate = name if len(name) <= self.max_len and _VALID.match(name) else self._shorten(name, 0)
        salt = 0
        while candidate in self._down:
            salt += 1
            candidate = self._shorten(name, salt)
        self._up[name] = candidate
        self._down[candidate] = name
        return candidate

    def anthropic_name(self, upstream: str) -> str:
        """The Anthropic name for a provider-side name; unknown names (hallucinated) pass through."""
        return self._down.get(upstream, upstream)

    def _shorten(self, name: str, salt: int) -> str:
        digest = hashlib.sha256(f"{name}#{salt}".encode() if salt else name.encode()).hexdigest()[:8]
        prefix = _INVALID_CHARS.sub("_", name)[: self.max_len - 9] or "tool"
        return f"{prefix}_{digest}"

    @property
    def renamed(self) -> dict[str, str]:
        """Anthropic name -> provider name, for the names that had to change (for debug logs)."""
        return {a: u for a, u in self._up.items() if a != u}

    # -- ids -----------------------------------------------------------------------------------
    def upstream_id(self, anthropic_id: str) -> str:
        up = ids.to_upstream(anthropic_id, self.id_style)
        self._ids_down[up] = anthropic_id
        return up

    def remember_ids(self, pairs: Iterable[tuple[str, str]]) -> None:
        """(anthropic id, upstream id) pairs a remembered history turn registered with
        ``upstream_id`` when it was translated (``translate.history``), in the same order."""
        for anthropic_id, upstream_id in pairs:
            self._ids_down[upstream_id] = anthropic_id

    def anthropic_id(self, upstream_id: str | None, *, seed: str) -> str:
        """The Anthropic id for a provider's tool-call id; ids seen in the request map back exactly."""
        if upstream_id and upstream_id in self._ids_down:
            return self._ids_down[upstream_id]
        return ids.to_anthropic(upstream_id, seed=seed)
