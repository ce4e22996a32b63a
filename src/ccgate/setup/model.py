"""Data shared by every setup step: the options, one change, one note, the plan."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccgate.claude_code.files import ClaudeFiles
from ccgate.config.secrets import mask
from ccgate.setup.files import FileState

DEFAULT_GATEWAY = "http://127.0.0.1:4545"
PLACEHOLDER_TOKEN = "ccgate-local"
GATEWAY_KEY_HEADER = "x-ccgate-key"  # the gateway credential's own header (server/auth.py)


class SetupError(Exception):
    """Bad input, or a file setup refuses to touch; nothing was changed."""


class _Missing:
    def __repr__(self) -> str:
        return "unset"


MISSING: Any = _Missing()  # a key that is absent (before) or removed (after)


@dataclass(frozen=True)
class SetupOptions:
    gateway: str = DEFAULT_GATEWAY
    key: str | None = None
    config_tokens: tuple[str, ...] = ()  # client tokens from the ccgate config, first wins
    models: Mapping[str, str] = field(default_factory=dict)  # env var name -> model id
    env: Mapping[str, str] = field(default_factory=dict)  # the shell environment
    home: Path = field(default_factory=Path.home)
    project_dir: Path = field(default_factory=Path.cwd)
    # Claude subscription mode: the gateway key goes in ANTHROPIC_CUSTOM_HEADERS as
    # x-ccgate-key, and Claude Code keeps sending its own login (docs/setup.md).
    subscription: bool = False
    # Providers of the gateway marked ``slow: true``: Claude Code gets its longest idle timeouts.
    slow_providers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    file: Path
    key: str  # dotted, e.g. "env.ANTHROPIC_BASE_URL"
    old: Any
    new: Any  # MISSING: removed
    why: str
    secret: bool = False


@dataclass(frozen=True)
class Note:
    level: str  # "warn" or "info"
    text: str
    fix: str | None = None


@dataclass
class Plan:
    files: ClaudeFiles
    gateway: str
    token: str
    token_source: str
    changes: list[Change] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    writes: list[tuple[FileState, bytes]] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    effective_env: dict[str, str] = field(default_factory=dict)

    def diff(self) -> str:
        """A unified diff of every file that would change, secrets masked."""
        out: list[str] = []
        for state, new in self.writes:
            old_text = state.raw.decode("utf-8", "replace") if state.raw is not None else ""
            new_text = new.decode("utf-8", "replace")
            name = str(state.path)
            out.append(unified_diff(old_text, new_text, name if state.existed else "/dev/null", name))
        return self.redact("".join(out))

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret of four characters or more masked, longest first."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, mask(secret))
    return text


def unified_diff(old: str, new: str, fromfile: str, tofile: str) -> str:
    """``diff -u`` output, with the "No newline at end of file" marker where it applies."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile, tofile)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def display_path(path: Path, home: Path) -> str:
    """``~/...`` for a path under HOME, else the path."""
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)
