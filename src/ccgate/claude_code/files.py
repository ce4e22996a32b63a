"""Where Claude Code keeps its settings and state, and which settings file wins.

* Config dir: ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``. User settings:
  ``<config dir>/settings.json``.
* Global config (onboarding state, approved keys, a stored login): ``~/.claude.json``, or
  ``$CLAUDE_CONFIG_DIR/.claude.json``. A legacy ``<config dir>/.config.json`` that is not
  empty wins over it: with both present, the 2.1.330 binary reads and writes the legacy file
  and warns "Two Claude Code config files exist".
* Settings, lowest precedence first: user, project ``.claude/settings.json``, project-local
  ``.claude/settings.local.json``, then managed settings: ``managed-settings.json`` and the
  ``managed-settings.d/*.json`` drop-ins in name order, in ``/etc/claude-code`` (Linux),
  ``/Library/Application Support/ClaudeCode`` (macOS) or ``C:\\Program Files\\ClaudeCode``
  (Windows). Managed settings always win (https://code.claude.com/docs/en/settings).
* The ``env`` block of each settings file is applied over the process environment in that
  order, so a settings value beats the shell's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MANAGED_DIR_ENV",
    "ONBOARDING_DONE",
    "STORED_API_KEY",
    "ClaudeFiles",
    "SettingsFile",
    "global_config_file",
    "key_approved",
    "layered_env",
    "managed_settings_dir",
    "onboarding_done",
    "settings_env",
]

CONFIG_DIR_ENV = "CLAUDE_CONFIG_DIR"
# Overrides the system directory that holds managed settings (tests, unusual installs).
MANAGED_DIR_ENV = "CCGATE_CLAUDE_MANAGED_DIR"

# Keys of the global config this model reads.
ONBOARDING_DONE = "hasCompletedOnboarding"
STORED_API_KEY = "primaryApiKey"  # left by an earlier /login
APPROVED_KEYS = "customApiKeyResponses"

USER = "user settings"
PROJECT = "project settings"
PROJECT_LOCAL = "project-local settings"
MANAGED = "managed settings"


def managed_settings_dir(env: Mapping[str, str]) -> Path:
    override = env.get(MANAGED_DIR_ENV)
    if override:
        return Path(override)
    if sys.platform == "darwin":
        return Path("/Library/Application Support/ClaudeCode")
    if sys.platform == "win32":
        return Path("C:/Program Files/ClaudeCode")
    return Path("/etc/claude-code")


def global_config_file(config_dir: Path, default: Path) -> Path:
    """The global config Claude Code uses: a non-empty legacy ``.config.json``, else ``default``.

    The binary also picks an *empty* legacy file while ``default`` does not exist; that case
    is left out on purpose: both then say "onboarding not done", and once ``default`` is
    written (by setup or Claude Code) the binary picks ``default`` too.
    """
    legacy = config_dir / ".config.json"
    try:
        if legacy.is_file() and legacy.stat().st_size > 0:
            return legacy
    except OSError:
        pass
    return default


@dataclass(frozen=True)
class SettingsFile:
    scope: str  # "user settings", "project settings", "project-local settings", "managed settings"
    path: Path


@dataclass(frozen=True)
class ClaudeFiles:
    """The files of one Claude Code installation, as the environment and HOME locate them."""

    config_dir: Path
    user_settings: Path
    global_config: Path
    managed_dir: Path

    @classmethod
    def locate(cls, env: Mapping[str, str], home: Path, managed_dir: Path | None = None) -> ClaudeFiles:
        custom = env.get(CONFIG_DIR_ENV)
        config_dir = Path(custom).expanduser() if custom else home / ".claude"
        default_global = (config_dir if custom else home) / ".claude.json"
        return cls(
            config_dir=config_dir,
            user_settings=config_dir / "settings.json",
            global_config=global_config_file(config_dir, default_global),
            managed_dir=managed_dir if managed_dir is not None else managed_settings_dir(env),
        )

    def settings_files(self, project_dir: Path) -> list[SettingsFile]:
        """Every settings file, lowest precedence first; the user file comes first."""
        return [SettingsFile(USER, self.user_settings), *self.overriding_settings(project_dir)]

    def overriding_settings(self, project_dir: Path) -> list[SettingsFile]:
        """The settings files that win over the user file, lowest precedence first."""
        project = project_dir / ".claude"
        out = [
            SettingsFile(PROJECT, project / "settings.json"),
            SettingsFile(PROJECT_LOCAL, project / "settings.local.json"),
        ]
        # Run in HOME, the project file *is* the user file: it must not count twice.
        out = [f for f in out if _resolved(f.path) != _resolved(self.user_settings)]
        out.append(SettingsFile(MANAGED, self.managed_dir / "managed-settings.json"))
        out.extend(SettingsFile(MANAGED, p) for p in _drop_ins(self.managed_dir / "managed-settings.d"))
        return out


def _drop_ins(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.suffix == ".json")
    except OSError:
        return []


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


# -- what the files hold ---------------------------------------------------------------------


def settings_env(data: Mapping[str, Any]) -> dict[str, str]:
    """A settings file's ``env`` block as Claude Code applies it.

    Strings as they are; numbers and booleans as their JSON text (what JavaScript's
    ``String()`` gives: ``true``, not ``True``); anything else is not a value and is skipped.
    """
    block = data.get("env")
    if not isinstance(block, dict):
        return {}
    out: dict[str, str] = {}
    for name, value in block.items():
        if isinstance(value, str):
            out[str(name)] = value
        elif isinstance(value, int | float | bool):
            out[str(name)] = json.dumps(value)
    return out


def layered_env(
    shell: Mapping[str, str], layers: Iterable[tuple[str, Mapping[str, Any]]]
) -> tuple[dict[str, str], dict[str, str]]:
    """The environment Claude Code runs with, and where each variable came from.

    ``layers`` are (origin, parsed settings file), lowest precedence first; each ``env`` block
    is applied over the shell in that order. Origins are "environment" or the layer's name.
    """
    env = dict(shell)
    sources = dict.fromkeys(env, "environment")
    for origin, data in layers:
        for name, value in settings_env(data).items():
            env[name] = value
            sources[name] = origin
    return env, sources


def onboarding_done(global_config: Mapping[str, Any] | None) -> bool:
    """Whether the first-run wizard (and its check of api.anthropic.com) is over."""
    return (global_config or {}).get(ONBOARDING_DONE) is True


def key_approved(global_config: Mapping[str, Any] | None, key: str) -> bool:
    """Whether the user approved this ``ANTHROPIC_API_KEY``: Claude Code keeps its last 20 characters."""
    responses = (global_config or {}).get(APPROVED_KEYS)
    approved = responses.get("approved") if isinstance(responses, dict) else None
    return isinstance(approved, list) and key[-20:] in approved
