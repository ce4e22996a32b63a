"""Where Claude Code keeps the files that setup reads and writes.

* User settings: ``~/.claude/settings.json``, or ``$CLAUDE_CONFIG_DIR/settings.json``.
* Global config (onboarding state, stored login): ``~/.claude.json``, or
  ``$CLAUDE_CONFIG_DIR/.claude.json``. Claude Code still prefers a legacy
  ``<config dir>/.config.json`` when one exists and is not empty (seen in the 2.1.330 binary).
* Higher-precedence settings, lowest first: project ``.claude/settings.json``, project-local
  ``.claude/settings.local.json``, then managed settings (``managed-settings.json`` and the
  ``managed-settings.d/*.json`` drop-ins in the system directory below), which always win.
  See https://code.claude.com/docs/en/settings.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClaudePaths", "managed_settings_dir"]

# Overrides the system directory that holds managed-settings.json (tests, unusual installs).
MANAGED_DIR_ENV = "CCGATE_CLAUDE_MANAGED_DIR"


def managed_settings_dir(env: Mapping[str, str]) -> Path:
    override = env.get(MANAGED_DIR_ENV)
    if override:
        return Path(override)
    if sys.platform == "darwin":
        return Path("/Library/Application Support/ClaudeCode")
    if sys.platform == "win32":
        return Path("C:/Program Files/ClaudeCode")
    return Path("/etc/claude-code")


@dataclass(frozen=True)
class ClaudePaths:
    config_dir: Path
    settings: Path
    global_config: Path
    backups: Path
    managed_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str], home: Path) -> ClaudePaths:
        custom = env.get("CLAUDE_CONFIG_DIR")
        config_dir = Path(custom).expanduser() if custom else home / ".claude"
        global_config = (config_dir if custom else home) / ".claude.json"
        legacy = config_dir / ".config.json"
        try:
            if legacy.is_file() and legacy.stat().st_size > 0:
                global_config = legacy
        except OSError:
            pass
        return cls(
            config_dir=config_dir,
            settings=config_dir / "settings.json",
            global_config=global_config,
            backups=config_dir / "ccgate-backups",
            managed_dir=managed_settings_dir(env),
        )

    def overriding_settings(self, project_dir: Path) -> list[tuple[str, Path]]:
        """Settings files that win over the user file, lowest precedence first."""
        out: list[tuple[str, Path]] = []
        project = project_dir / ".claude"
        for label, path in (
            ("project settings", project / "settings.json"),
            ("project-local settings", project / "settings.local.json"),
        ):
            if _resolved(path) != _resolved(self.settings):
                out.append((label, path))
        drop_ins = self.managed_dir / "managed-settings.d"
        try:
            extra = sorted(p for p in drop_ins.iterdir() if p.suffix == ".json")
        except OSError:
            extra = []
        out.append(("managed settings", self.managed_dir / "managed-settings.json"))
        out.extend(("managed settings", p) for p in extra)
        return out


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path
