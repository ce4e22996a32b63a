"""Managed-settings policies: checked when the config loads, served from precomputed bytes.

Claude Code fetches ``GET /managed/settings`` at every start and refuses to run when the
answer is not exactly ``{"uuid","checksum","settings"}``, a 304 or a 404, so a policy is
validated here (a typo is a ``ValueError`` at ``config check``/serve/reload, never a broken
answer) and its body and checksum are computed once.

Checksum (docs/login.md, captured from ``claude gateway`` 2.1.332)::

    "sha256:" + hex(sha256(json.dumps(settings, sort_keys=True, separators=(",", ":"))))

``uuid`` equals the checksum and the ETag is the quoted checksum, as on Anthropic's gateway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

import msgspec

# Model aliases Claude Code accepts in availableModels, matched as families.
_FAMILIES = ("opus", "sonnet", "haiku")
_GLOB = frozenset("*?[")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _Permissions(_Strict):
    allow: list[str] = []
    deny: list[str] = []
    ask: list[str] = []
    additionalDirectories: list[str] = []
    defaultMode: Literal["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk"] | None = None
    disableBypassPermissionsMode: Literal["disable"] | None = None


class _ManagedSettings(_Strict):
    """The settings a policy may push. Kept to what ccgate can check; anything else is refused
    rather than sent unchecked to every developer's CLI."""

    availableModels: list[str] | None = None
    model: str | None = None
    permissions: _Permissions | None = None
    env: dict[str, str] = {}
    cleanupPeriodDays: int | None = None
    includeCoAuthoredBy: bool | None = None
    disableAllHooks: bool | None = None
    forceLoginMethod: Literal["gateway"] | None = None


def checksum(settings: Mapping[str, Any]) -> str:
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Policy:
    """One compiled policy: who it is for, what it pushes, and the exact reply bytes."""

    index: int
    groups: frozenset[str]
    settings: Mapping[str, Any]
    checksum: str
    body: bytes = field(repr=False)
    available_models: tuple[str, ...] | None

    @property
    def etag(self) -> str:
        return f'"{self.checksum}"'

    def matches(self, groups: Iterable[str]) -> bool:
        return not self.groups or not self.groups.isdisjoint(groups)

    def allows_model(self, model: str) -> bool:
        """Per availableModels: a family alias (opus, sonnet, haiku), a glob, or an id that
        also admits its dated versions (claude-haiku-4-5 admits claude-haiku-4-5-20251001)."""
        if self.available_models is None:
            return True
        return any(_model_matches(entry, model) for entry in self.available_models)


def _model_matches(entry: str, model: str) -> bool:
    if entry in _FAMILIES:
        return f"-{entry}-" in f"-{model}-" or model.startswith(f"claude-{entry}")
    if _GLOB & set(entry):
        return fnmatchcase(model, entry)
    return model == entry or (model.startswith(entry + "-") and model[len(entry) + 1:].isdigit())


def compile_policy(index: int, groups: Sequence[str], settings: Mapping[str, Any]) -> Policy:
    """ValueError naming the problem when the settings are not something to push."""
    if not isinstance(settings, Mapping) or not settings:
        raise ValueError("settings: give at least one managed setting (availableModels, permissions, env ...)")
    env = settings.get("env")
    if isinstance(env, Mapping):
        for name, value in env.items():
            if not isinstance(value, str):
                raise ValueError(f"settings.env.{name}: must be a string (quote it in YAML: \"{value}\")")
    try:
        checked = msgspec.convert(dict(settings), _ManagedSettings, strict=True)
    except msgspec.ValidationError as exc:
        raise ValueError(f"settings: {_where(exc)}") from None
    models = checked.availableModels
    if models is not None and (not models or any(not m.strip() for m in models)):
        raise ValueError("settings.availableModels: list at least one model id or alias, none empty")
    for name in checked.env:
        if not name or "=" in name:
            raise ValueError(f"settings.env: {name!r} is not a variable name")
    if any(not g.strip() for g in groups):
        raise ValueError("groups: group names must not be empty")
    plain = json.loads(json.dumps(settings))  # what goes on the wire, as JSON types
    digest = checksum(plain)
    body = json.dumps({"uuid": digest, "checksum": digest, "settings": plain},
                      separators=(",", ":")).encode()
    allowed = tuple(models) if models is not None else None
    return Policy(index, frozenset(groups), plain, digest, body, allowed)


def _where(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    marker = " - at `$."
    if marker in text:
        message, _, path = text.partition(marker)
        return f"{path.rstrip('`')}: {message}"
    return text


class PolicySet:
    """The policies in config order; the first that matches a developer's groups wins."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = tuple(policies)
        self._by_groups: dict[tuple[str, ...], Policy | None] = {}

    def select(self, groups: tuple[str, ...]) -> Policy | None:
        try:
            return self._by_groups[groups]
        except KeyError:
            found = next((p for p in self.policies if p.matches(groups)), None)
            if len(self._by_groups) < 4096:  # bounded: group lists come from the IdP
                self._by_groups[groups] = found
            return found
