"""The environment variables Claude Code reads, the rules between them, and which are secrets.

* Endpoint: ``ANTHROPIC_BASE_URL`` (the root; Claude Code appends ``/v1/messages``).
* Credentials, highest precedence first: ``ANTHROPIC_AUTH_TOKEN`` (sent as ``Authorization:
  Bearer``), ``ANTHROPIC_API_KEY`` (``x-api-key``), a ``primaryApiKey`` stored in the global
  config by an earlier ``/login`` (``x-api-key``), the ``apiKeyHelper`` setting (a command).
  The token beside a key, stored or not, gives Claude Code's "Auth conflict" warning; a helper
  ranks below both and beside the token alone is not reported (reference section 2.2).
* Provider switches: any ``CLAUDE_CODE_USE_*`` below sends traffic to that cloud instead of
  ``ANTHROPIC_BASE_URL`` and turns the first-run check off (reference section 1.2).
* Proxies: ``https_proxy > HTTPS_PROXY > http_proxy > HTTP_PROXY`` for every target, no
  ``ALL_PROXY`` (the matching rules live in ``ccgate.proxy_env``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ccgate.claude_code.files import STORED_API_KEY
from ccgate.proxy_env import CLAUDE_CODE_PROXY_VARS

__all__ = [
    "API_KEY",
    "AUTH_TOKEN",
    "BASE_URL",
    "CUSTOM_HEADERS",
    "KEY_HELPER",
    "MODEL_VARS",
    "OAUTH_TOKEN",
    "PROVIDER_SWITCHES",
    "PROXY_VARS",
    "SentCredential",
    "auth_conflict",
    "collect_secrets",
    "credential_sources",
    "custom_header",
    "custom_header_lines",
    "custom_headers_with",
    "proxy_variable",
    "sent_credential",
    "url_password",
]

BASE_URL = "ANTHROPIC_BASE_URL"
AUTH_TOKEN = "ANTHROPIC_AUTH_TOKEN"
API_KEY = "ANTHROPIC_API_KEY"
OAUTH_TOKEN = "CLAUDE_CODE_OAUTH_TOKEN"
# "Name: Value" per line, added to every request; a value replaces a built-in header of that name.
CUSTOM_HEADERS = "ANTHROPIC_CUSTOM_HEADERS"
KEY_HELPER = "apiKeyHelper"  # a setting, not a variable
KEY_FILE_DESCRIPTOR = "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR"
MODEL = "ANTHROPIC_MODEL"
MODEL_VARS = {
    "model": MODEL,
    "haiku": "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "sonnet": "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "opus": "ANTHROPIC_DEFAULT_OPUS_MODEL",
}
PROVIDER_SWITCHES = (
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
    "CLAUDE_CODE_USE_ANTHROPIC_AWS",
    "CLAUDE_CODE_USE_MANTLE",
)
SIMPLE_MODE = "CLAUDE_CODE_SIMPLE"  # --bare
FORCE_ONBOARDING = "CLAUDE_CODE_POWERUP_ONBOARDING"
PROXY_VARS = CLAUDE_CODE_PROXY_VARS


def proxy_variable(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The (variable, value as written) Claude Code takes its proxy from, or None."""
    for name in PROXY_VARS:
        value = env.get(name, "")
        if value.strip():
            return name, value
    return None


# -- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SentCredential:
    source: str  # AUTH_TOKEN, API_KEY or STORED_API_KEY
    value: str
    header: str  # "authorization" (as Bearer) or "x-api-key"


def credential_sources(
    env: Mapping[str, str], settings: Mapping[str, Any], global_config: Mapping[str, Any] | None
) -> list[str]:
    """Every credential source Claude Code finds, highest precedence first."""
    stored = (global_config or {}).get(STORED_API_KEY)
    found = {
        AUTH_TOKEN: bool(env.get(AUTH_TOKEN)),
        API_KEY: bool(env.get(API_KEY)),
        STORED_API_KEY: isinstance(stored, str) and bool(stored),
        KEY_HELPER: bool(settings.get(KEY_HELPER)),
    }
    return [name for name, present in found.items() if present]


def auth_conflict(sources: list[str]) -> bool:
    """Whether these sources give Claude Code's "Auth conflict": the token beside a key."""
    return AUTH_TOKEN in sources and any(s not in (AUTH_TOKEN, KEY_HELPER) for s in sources)


def sent_credential(env: Mapping[str, str], global_config: Mapping[str, Any] | None) -> SentCredential | None:
    """The credential Claude Code sends, in the header it uses (the helper's is not known here)."""
    if env.get(AUTH_TOKEN):
        return SentCredential(AUTH_TOKEN, env[AUTH_TOKEN].strip(), "authorization")
    if env.get(API_KEY):
        return SentCredential(API_KEY, env[API_KEY].strip(), "x-api-key")
    stored = (global_config or {}).get(STORED_API_KEY)
    if isinstance(stored, str) and stored:
        return SentCredential(STORED_API_KEY, stored, "x-api-key")
    return None


def _header_lines(custom_headers: str) -> list[tuple[str, str]]:
    lines = []
    for line in custom_headers.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            lines.append((name.strip(), value.strip()))
    return lines


def custom_header_lines(custom_headers: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of an ``ANTHROPIC_CUSTOM_HEADERS`` value, in order."""
    return _header_lines(custom_headers)


def custom_header(custom_headers: str, name: str) -> str | None:
    """The value of header ``name`` in an ``ANTHROPIC_CUSTOM_HEADERS`` value, or None."""
    found = [v for n, v in _header_lines(custom_headers) if n.lower() == name.lower()]
    return found[-1] if found else None


def custom_headers_with(custom_headers: str, name: str, value: str | None) -> str:
    """``ANTHROPIC_CUSTOM_HEADERS`` with header ``name`` set to ``value`` (None: removed); the
    other headers are kept in their order."""
    kept = [f"{n}: {v}" for n, v in _header_lines(custom_headers) if n.lower() != name.lower()]
    if value is not None:
        kept.append(f"{name}: {value}")
    return "\n".join(kept)


# -- secrets ---------------------------------------------------------------------------------

# A value under a name like these is a secret (ANTHROPIC_AUTH_TOKEN, apiKeyHelper, ...).
_SECRET_NAME = re.compile(r"token|key|secret|passw|credential|auth", re.IGNORECASE)


def url_password(value: str) -> str | None:
    """The password in ``scheme://user:password@host``, also when it holds an unencoded ``@``."""
    if "://" not in value or "@" not in value:
        return None
    userinfo = value.split("://", 1)[1].rsplit("@", 1)[0]
    if ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None


def collect_secrets(value: Any, out: set[str], name: str = "") -> None:
    """Add to ``out`` every secret in ``value`` (parsed JSON or a string named ``name``).

    Secrets are values under secret-looking names and passwords in URLs, the latter also
    percent-encoded, since that is how a proxy URL may show them.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            collect_secrets(item, out, str(key))
    elif isinstance(value, list):
        for item in value:
            collect_secrets(item, out, name)
    elif isinstance(value, str):
        if value and _SECRET_NAME.search(name):
            out.add(value)
        if name == CUSTOM_HEADERS:  # x-ccgate-key: <token>, Authorization: ...
            out.update(v for n, v in _header_lines(value) if v and _SECRET_NAME.search(n))
        password = url_password(value)
        if password:
            out.update((password, quote(password, safe="")))
