"""The headers Claude Code sends with an API call, so the doctor's call meets the same checks.

A gateway or proxy that rejects Claude Code's ``anthropic-beta`` values (or its other
headers) must reject the doctor's call too; a bare request would be answered 200 and the
doctor would call a path healthy that Claude Code cannot use. Captured from 2.1.330
(tests/lab/claude_cli.py, reference claude-code-client.md section 3.2).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from ccgate.claude_code import env as cc

# Always sent, even with CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1 (verified on 2.1.330).
STABLE_BETAS = ("claude-code-20250219", "interleaved-thinking-2025-05-14")
EXPERIMENTAL_BETAS = ("context-management-2025-06-27", "thinking-token-count-2026-05-13")
EFFORT_BETA = "effort-2025-11-24"
COUNT_TOKENS_BETA = "token-counting-2024-11-01"
OAUTH_BETA = "oauth-2025-04-20"  # with a claude.ai login; stripping it gives 401
DISABLE_EXPERIMENTAL_BETAS = "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS"
EXTRA_BETAS = "ANTHROPIC_BETAS"


def beta_values(env: Mapping[str, str], *, count_tokens: bool, oauth: bool = False) -> list[str]:
    """The ``anthropic-beta`` values Claude Code sends for this environment."""
    values = list(STABLE_BETAS)
    if oauth:
        values.insert(1, OAUTH_BETA)
    if not env.get(DISABLE_EXPERIMENTAL_BETAS):
        values += EXPERIMENTAL_BETAS
    values.append(EFFORT_BETA)
    if count_tokens:
        values.append(COUNT_TOKENS_BETA)
    values += [b.strip() for b in env.get(EXTRA_BETAS, "").split(",") if b.strip()]
    return list(dict.fromkeys(values))


def claude_code_headers(env: Mapping[str, str], user_agent: str, *,
                        count_tokens: bool, oauth: bool = False) -> dict[str, str]:
    """Every header Claude Code adds besides the credential, custom headers last (they
    replace a built-in header of the same name, as in Claude Code)."""
    headers = {
        "User-Agent": user_agent,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": ",".join(beta_values(env, count_tokens=count_tokens, oauth=oauth)),
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
