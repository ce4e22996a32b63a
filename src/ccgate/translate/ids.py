"""Ids between Anthropic (``^[a-zA-Z0-9_-]+$``) and a provider's own rules: tool-call ids,
and the stand-in for ``metadata.user_id``.

Everything here is deterministic and stateless, so the same conversation history always maps
to the same ids and a ``tool_result`` keeps matching its ``tool_use`` across requests.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Literal

ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_ALNUM9 = re.compile(r"^[a-zA-Z0-9]{9}$")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Ids from the provider that Anthropic would reject are escaped reversibly under this marker,
# so the provider gets its own id back on the next turn (Kimi's "functions.Bash:0" and the like).
_ESCAPED = "ccx_"
_PLAIN = re.compile(r"[a-zA-Z0-9_]")
_HEX2 = re.compile(r"[0-9A-F]{2}")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def hashed_user_id(user_id: str) -> str:
    """A stable ``[a-zA-Z0-9_-]`` stand-in for ``metadata.user_id``: the one rule for every provider.

    Claude Code sends a JSON string (``device_id``, ``account_uuid``, ``session_id``) that some
    providers reject by pattern. The hash is of the account, else the device, never the
    session, so every request of one user gets the same value (the provider's abuse tracking
    and caching keep grouping them); any other value is hashed whole.
    """
    stable = user_id
    try:
        parsed = json.loads(user_id)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        stable = str(parsed.get("account_uuid") or parsed.get("device_id") or user_id)
    return "ccgate-" + hashlib.sha256(stable.encode()).hexdigest()[:32]


def alnum9(anthropic_id: str) -> str:
    """Mistral-family ids: exactly 9 alphanumerics. Ids already in that shape are kept."""
    if _ALNUM9.match(anthropic_id):
        return anthropic_id
    n = int.from_bytes(_digest(anthropic_id)[:8], "big")
    out = []
    for _ in range(9):
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(out)


def to_upstream(anthropic_id: str, style: Literal["any", "alnum9"]) -> str:
    if style == "alnum9":
        return alnum9(anthropic_id)
    if anthropic_id.startswith(_ESCAPED):
        return _unescape(anthropic_id[len(_ESCAPED) :])
    return anthropic_id


def to_anthropic(upstream_id: str | None, *, seed: str) -> str:
    """A valid Anthropic id for a provider's id; ``seed`` names a missing one deterministically."""
    if not upstream_id:
        return "toolu_" + _digest(seed).hex()[:24]
    if ANTHROPIC_ID.match(upstream_id) and not upstream_id.startswith(_ESCAPED):
        return upstream_id
    return _ESCAPED + _escape(upstream_id)


def _escape(text: str) -> str:
    # "-" is the escape character; every byte outside [A-Za-z0-9_] becomes "-XX".
    return "".join(ch if _PLAIN.match(ch) else "".join(f"-{b:02X}" for b in ch.encode()) for ch in text)


def _unescape(text: str) -> str:
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "-" and i + 2 < len(text) and _HEX2.match(text, i + 1):
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(text[i].encode())
            i += 1
    return out.decode("utf-8", errors="replace")
