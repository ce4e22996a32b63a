"""The headers Claude Code sends with an API call, so the doctor's call meets the same checks.

A gateway or proxy that rejects Claude Code's ``anthropic-beta`` values (or its other
headers) must reject the doctor's call too; a bare request would be answered 200 and the
doctor would call a path healthy that Claude Code cannot use. Captured from 2.1.197 and
2.1.330 (tests/lab/claude_cli.py, reference claude-code-client.md section 3.2).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from ccgate.claude_code import env as cc

# The anthropic-beta values captured from each version, in the order sent (reference
# claude-code-client.md 3.2; 2.1.330 checked against the real CLI by
# tests/doctor/test_issue17_lab.py). Flags: E = pre-release, stripped by
# CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1; N = only for models newer than the 4.5 family
# (2.1.330 with claude-sonnet-4-5 sent neither). 2.1.197's flags follow 2.1.330's.
CAPTURED_BETAS: dict[tuple[int, ...], tuple[tuple[str, str], ...]] = {
    (2, 1, 197): (
        ("claude-code-20250219", ""), ("context-1m-2025-08-07", "E"),
        ("interleaved-thinking-2025-05-14", ""), ("thinking-token-count-2026-05-13", "E"),
        ("context-management-2025-06-27", "E"), ("prompt-caching-scope-2026-01-05", "E"),
        ("mid-conversation-system-2026-04-07", "E"), ("effort-2025-11-24", "N"),
    ),
    (2, 1, 330): (
        ("claude-code-20250219", ""), ("interleaved-thinking-2025-05-14", ""),
        ("context-management-2025-06-27", "E"), ("per-turn-control-2026-07-01", "EN"),
        ("mid-conversation-tool-changes-2026-07-01", "EN"),
        ("thinking-token-count-2026-05-13", "E"), ("advanced-tool-use-2025-11-20", "E"),
        ("effort-2025-11-24", "N"),
    ),
}
# claude-3*, claude-{opus,sonnet,haiku}-4, -4-0 ... -4-5, with or without a date suffix
OLDER_MODEL = re.compile(r"^claude-(3\b|(opus|sonnet|haiku)-4(-[0-5])?(-\d{8})?$)")
COUNT_TOKENS_BETA = "token-counting-2024-11-01"
OAUTH_BETA = "oauth-2025-04-20"  # with a claude.ai login; stripping it gives 401
DISABLE_EXPERIMENTAL_BETAS = "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS"
EXTRA_BETAS = "ANTHROPIC_BETAS"


def captured_for(version: str | None) -> tuple[tuple[str, str], ...]:
    """The betas of the newest captured version not newer than ``version`` (the oldest
    capture for older versions, the newest when the version is unknown)."""
    known = sorted(CAPTURED_BETAS)
    try:
        wanted = tuple(int(part) for part in (version or "").split("."))
    except ValueError:
        wanted = ()
    if not wanted:
        return CAPTURED_BETAS[known[-1]]
    at_or_below = [v for v in known if v <= wanted]
    return CAPTURED_BETAS[at_or_below[-1] if at_or_below else known[0]]


def beta_values(env: Mapping[str, str], *, model: str, version: str | None = None,
                count_tokens: bool, oauth: bool = False) -> list[str]:
    """The ``anthropic-beta`` values Claude Code ``version`` sends for this environment."""
    experimental = not env.get(DISABLE_EXPERIMENTAL_BETAS)
    newer_model = not OLDER_MODEL.match(model.lower())
    values = [name for name, flags in captured_for(version)
              if (experimental or "E" not in flags) and (newer_model or "N" not in flags)]
    if oauth:
        values.insert(1, OAUTH_BETA)
    if count_tokens:
        values.append(COUNT_TOKENS_BETA)
    values += [b.strip() for b in env.get(EXTRA_BETAS, "").split(",") if b.strip()]
    return list(dict.fromkeys(values))


def claude_code_headers(env: Mapping[str, str], user_agent: str, *, model: str,
                        version: str | None, count_tokens: bool,
                        oauth: bool = False) -> dict[str, str]:
    """Every header Claude Code adds besides the credential, custom headers last (they
    replace a built-in header of the same name, as in Claude Code)."""
    headers = {
        "User-Agent": user_agent,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": ",".join(beta_values(env, model=model, version=version,
                                                count_tokens=count_tokens, oauth=oauth)),
        "anthropic-dangerous-direct-browser-access": "true",
        "x-app": "cli",
        "x-claude-code-session-id": str(uuid.uuid4()),
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    for name, value in cc.custom_header_lines(env.get(cc.CUSTOM_HEADERS, "")):
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers[name] = value
    return headers
