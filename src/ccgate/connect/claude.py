"""Point Claude Code at the gateway after a connect: the ``setup claude-code`` library (plan,
backup, atomic write, undo with ``ccgate setup claude-code --undo``), with the gateway address
and client token read from the config connect wrote and the model variables a tier map needs
(``CLAUDE_CODE_SUBAGENT_MODEL``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ccgate.config.load import load_config, parse_config
from ccgate.config.model import local_url
from ccgate.connect.model import ConnectError
from ccgate.errors import ConfigError
from ccgate.setup import Plan, SetupError, SetupOptions, build_plan
from ccgate.setup.files import SetupFileError, apply_writes, backup_root


@dataclass(frozen=True)
class ClaudeCodeWiring:
    plan: Plan
    options: SetupOptions
    backup_dir: Path | None = None  # None: nothing needed to change

    @property
    def changed(self) -> bool:
        return self.backup_dir is not None


def plan_claude_code(config_path: Path, env: Mapping[str, str], home: Path,
                     models: Mapping[str, str], project_dir: Path | None = None) -> ClaudeCodeWiring:
    """What setup would change in Claude Code's files (nothing written yet)."""
    tokens: tuple[str, ...] = ()
    try:
        loaded = load_config(str(config_path), env)
        server = loaded.config.server
        tokens = tuple(s.value for s in loaded.secrets.client_tokens.values())
    except ConfigError:  # a provider secret missing from this shell: the address is enough
        try:
            server = parse_config(config_path.read_text(encoding="utf-8"), str(config_path)).server
        except (OSError, ConfigError) as exc:
            raise ConnectError(f"cannot read {config_path} to wire Claude Code: {exc}") from None
    options = SetupOptions(gateway=local_url(server.host, server.port), config_tokens=tokens,
                           models=dict(models), env=env, home=home, project_dir=project_dir or Path.cwd())
    try:
        return ClaudeCodeWiring(build_plan(options), options)
    except (SetupError, SetupFileError) as exc:
        raise ConnectError(f"Claude Code's settings: {exc}") from None


def apply_claude_code(wiring: ClaudeCodeWiring) -> ClaudeCodeWiring:
    """Write the plan (with setup's backup); unchanged when there is nothing to write."""
    if not wiring.plan.writes:
        return wiring
    try:
        backup = apply_writes(wiring.plan.writes, backup_root(wiring.plan.files.config_dir))
    except SetupFileError as exc:
        raise ConnectError(f"Claude Code's settings: {exc}") from None
    return ClaudeCodeWiring(wiring.plan, wiring.options, backup.directory)
