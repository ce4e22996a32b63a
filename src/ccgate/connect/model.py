"""The data the connect backend takes and returns. Plain dataclasses with ``to_dict()`` for JSON
(the CLI's ``--json`` and the admin API print the same shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ccgate.config.model import ProviderKind

# Claude Code's model tiers, in the order the wizard asks for them. "main" is ANTHROPIC_MODEL
# (what an unqualified request asks for), "haiku" also serves background calls, "subagent" is
# CLAUDE_CODE_SUBAGENT_MODEL.
TIERS = ("main", "opus", "sonnet", "haiku", "subagent")
Tier = Literal["main", "opus", "sonnet", "haiku", "subagent"]

# What a model did with the trivial tool of the tool-calling check.
ToolsVerdict = Literal["tool_call", "text_instead", "no_call", "error"]


class ConnectError(Exception):
    """Anything the connect backend refuses or cannot do. The message is safe to show (no
    secret in it). ``bad_input``: the caller's input is at fault (CLI exit 2, HTTP 400);
    nothing was written in either case unless the message says otherwise."""

    def __init__(self, message: str, *, bad_input: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.bad_input = bad_input


@dataclass(frozen=True)
class ProviderInput:
    """What a user tells ``connect``: a preset, or a base URL and a kind; the rest optional.

    ``key`` is a literal secret, ``env:VAR`` or ``file:PATH``; a literal is stored in a 0600
    file next to the config, never in the YAML. ``models``: model ids the user typed or picked,
    the first being the main model. ``tiers``: Claude Code tier -> model id (see TIERS); tiers
    not given use the main model.
    """

    preset: str | None = None
    base_url: str | None = None
    kind: ProviderKind | None = None
    name: str | None = None
    key: str | None = None
    models: tuple[str, ...] = ()
    tiers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # the key may be a literal secret
        key = "set" if self.key else "none"
        return (f"ProviderInput(preset={self.preset!r}, base_url={self.base_url!r}, "
                f"kind={self.kind!r}, name={self.name!r}, key={key}, models={self.models!r})")


@dataclass(frozen=True)
class ModelInfo:
    """One model a provider serves. ``source``: "provider" (its model list), "typed" (the user
    gave the id; the provider has no list) or "route" (only in the config's routes)."""

    id: str
    display_name: str | None = None
    owned_by: str | None = None
    context_window: int | None = None
    source: Literal["provider", "typed", "route"] = "provider"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of the real, minimal request (and optionally the tool-calling one).

    ``finding``: the doctor's finding id for a failure (``api.invalid_key``, ``api.wrong_path``,
    ``http.intermediary_response``, ``dns.unresolvable``, ...), ``api.ok`` on success.
    ``hop``: the failed network hop when no HTTP answer came back. ``message`` quotes the
    provider's own error text, keys masked.
    """

    ok: bool
    model: str | None
    url: str
    message: str
    status: int | None = None
    latency_ms: float | None = None
    finding: str | None = None
    hop: str | None = None
    tools: ToolsVerdict | None = None  # None: not checked
    tools_message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RouteInfo:
    """One ``models:`` route as written (or found) in the config."""

    match: str
    to: str
    tier: str | None = None  # the Claude Code tier it serves, for routes connect manages
    context_window: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ProviderSummary:
    """A configured provider as ``providers()`` lists it (keys shown as references only)."""

    name: str
    kind: str
    base_url: str
    preset: str | None
    key_refs: tuple[str, ...]  # "env:X", "file:..." or "literal" (never the value)
    auth_header: str
    routes: tuple[RouteInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["key_refs"] = list(self.key_refs)
        out["routes"] = [r.to_dict() for r in self.routes]
        return out


@dataclass(frozen=True)
class ConnectResult:
    """What ``connect`` did. ``saved`` is False when the check failed and ``force`` was not
    given (nothing written), or when the file already said exactly this (``action`` unchanged).
    ``claude_code_env``: model variables for Claude Code's settings (e.g.
    CLAUDE_CODE_SUBAGENT_MODEL), for ``wire_claude_code``."""

    provider: str
    kind: str
    base_url: str
    action: Literal["added", "updated", "unchanged", "not_saved"]
    config_path: Path
    routes: tuple[RouteInfo, ...]
    check: CheckResult | None
    backup_dir: Path | None = None
    secret_file: Path | None = None
    claude_code_env: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def saved(self) -> bool:
        return self.action in ("added", "updated")

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "kind": self.kind,
            "base_url": self.base_url,
            "action": self.action,
            "saved": self.saved,
            "config_path": str(self.config_path),
            "backup_dir": str(self.backup_dir) if self.backup_dir else None,
            "secret_file": str(self.secret_file) if self.secret_file else None,
            "routes": [r.to_dict() for r in self.routes],
            "check": self.check.to_dict() if self.check else None,
            "claude_code_env": dict(self.claude_code_env),
            "warnings": list(self.warnings),
        }
