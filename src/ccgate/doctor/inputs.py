"""What the doctor reads: the environment, Claude Code's settings and ~/.claude.json.

Claude Code applies the ``env`` blocks of its settings files on top of the process
environment (user < project < local < managed). The doctor builds the same effective
environment and remembers where every variable came from, so a fix can name the file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccgate.doctor.model import DoctorOptions

ANTHROPIC_API = "https://api.anthropic.com"
PREFLIGHT_URLS = ("https://api.anthropic.com/api/hello", "https://platform.claude.com/v1/oauth/hello")
DEFAULT_MODEL = "claude-sonnet-4-5"
THIRD_PARTY_FLAGS = (
    "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY",
    "CLAUDE_CODE_USE_ANTHROPIC_AWS", "CLAUDE_CODE_USE_MANTLE",
)


@dataclass
class Credential:
    value: str
    header: str  # "x-api-key" or "authorization"
    source: str  # "--key", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY", "primaryApiKey"
    var: str  # the variable/setting the user edits to change it

    def headers(self, header: str | None = None) -> dict[str, str]:
        h = header or self.header
        if h == "authorization":
            return {"authorization": f"Bearer {self.value}"}
        return {"x-api-key": self.value}


@dataclass
class Inputs:
    env: dict[str, str]
    sources: dict[str, str]  # var -> "environment" or a settings file path
    home: Path
    claude_json_path: Path
    claude_json: dict[str, Any] | None
    settings: dict[str, Any]  # merged non-env settings (apiKeyHelper, ...)
    settings_errors: list[tuple[Path, str]] = field(default_factory=list)
    settings_files: list[Path] = field(default_factory=list)
    claude_version: str | None = None
    base_url: str = ANTHROPIC_API
    base_url_source: str = "default"
    credential: Credential | None = None
    credentials_seen: list[str] = field(default_factory=list)
    model: str = DEFAULT_MODEL
    shell: str = "sh"

    def where(self, var: str) -> str:
        return self.sources.get(var, "environment")


def _read_json(path: Path, errors: list[tuple[Path, str]]) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        errors.append((path, exc.strerror or str(exc)))
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        errors.append((path, f"line {exc.lineno}: {exc.msg}"))
        return None
    return data if isinstance(data, dict) else None


def settings_paths(options: DoctorOptions, env: Mapping[str, str], home: Path) -> list[Path]:
    config_dir = (Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR")
                  else home / ".claude")
    cwd = options.cwd or Path.cwd()
    if options.managed_settings is not None:
        managed = options.managed_settings
    elif sys.platform == "darwin":
        managed = Path("/Library/Application Support/ClaudeCode/managed-settings.json")
    else:
        managed = Path("/etc/claude-code/managed-settings.json")
    return [
        config_dir / "settings.json",
        cwd / ".claude" / "settings.json",
        cwd / ".claude" / "settings.local.json",
        managed,
    ]


def gather(options: DoctorOptions) -> Inputs:
    """Read everything (files only; ``claude --version`` is run by the runner)."""
    base_env = dict(os.environ if options.env is None else options.env)
    home = options.home or Path(base_env.get("HOME") or Path.home())
    env = dict(base_env)
    sources = {k: "environment" for k in env}
    settings: dict[str, Any] = {}
    errors: list[tuple[Path, str]] = []
    files: list[Path] = []
    claude_json_path = (
        Path(base_env["CLAUDE_CONFIG_DIR"]) / ".claude.json"
        if base_env.get("CLAUDE_CONFIG_DIR")
        else home / ".claude.json"
    )
    claude_json: dict[str, Any] | None = None
    if options.read_claude_files:
        for path in settings_paths(options, base_env, home):
            data = _read_json(path, errors)
            if data is None:
                continue
            files.append(path)
            block = data.get("env")
            if isinstance(block, dict):
                for k, v in block.items():
                    if isinstance(v, str | int | float | bool):
                        env[str(k)] = v if isinstance(v, str) else json.dumps(v)
                        sources[str(k)] = str(path)
            settings.update({k: v for k, v in data.items() if k != "env"})
        claude_json = _read_json(claude_json_path, errors)
    inputs = Inputs(
        env=env, sources=sources, home=home, claude_json_path=claude_json_path,
        claude_json=claude_json, settings=settings, settings_errors=errors, settings_files=files,
    )
    inputs.shell = Path(base_env.get("SHELL", "sh")).name or "sh"
    if options.base_url:
        inputs.base_url, inputs.base_url_source = options.base_url.strip(), "--base-url"
    elif env.get("ANTHROPIC_BASE_URL", "").strip():
        inputs.base_url = env["ANTHROPIC_BASE_URL"].strip()
        inputs.base_url_source = inputs.where("ANTHROPIC_BASE_URL")
    inputs.model = options.model or env.get("ANTHROPIC_MODEL") or str(
        settings.get("model") or DEFAULT_MODEL
    )
    inputs.credential, inputs.credentials_seen = resolve_credential(options, inputs)
    return inputs


def resolve_credential(
    options: DoctorOptions, inputs: Inputs
) -> tuple[Credential | None, list[str]]:
    """The credential Claude Code would send, in the header it would use.

    Claude Code: ANTHROPIC_AUTH_TOKEN -> ``Authorization: Bearer``; ANTHROPIC_API_KEY (or a
    stored primaryApiKey) -> ``x-api-key``; the token wins when both are set.
    """
    env = inputs.env
    seen: list[str] = []
    token = env.get("ANTHROPIC_AUTH_TOKEN", "")
    key = env.get("ANTHROPIC_API_KEY", "")
    stored = (inputs.claude_json or {}).get("primaryApiKey")
    if token:
        seen.append("ANTHROPIC_AUTH_TOKEN")
    if key:
        seen.append("ANTHROPIC_API_KEY")
    if isinstance(stored, str) and stored:
        seen.append(f"primaryApiKey in {inputs.claude_json_path}")
    if inputs.settings.get("apiKeyHelper"):
        seen.append("apiKeyHelper")
    if options.key:
        header = options.key_header or "x-api-key"
        return Credential(options.key.strip(), header, "--key", "--key"), seen
    if token:
        return Credential(token.strip(), options.key_header or "authorization",
                          "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"), seen
    if key:
        return Credential(key.strip(), options.key_header or "x-api-key",
                          "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"), seen
    if isinstance(stored, str) and stored:
        return Credential(stored, options.key_header or "x-api-key",
                          "primaryApiKey", f"primaryApiKey in {inputs.claude_json_path}"), seen
    return None, seen


def onboarding_done(inputs: Inputs) -> bool:
    return bool((inputs.claude_json or {}).get("hasCompletedOnboarding") is True)


def key_approved(inputs: Inputs, key: str) -> bool:
    responses = (inputs.claude_json or {}).get("customApiKeyResponses") or {}
    approved = responses.get("approved") if isinstance(responses, dict) else None
    return isinstance(approved, list) and key[-20:] in approved


def preflight_reason(inputs: Inputs) -> str | None:
    """Why Claude Code's first interactive start will run its connectivity check, or None
    when it will not (decision logic of 2.1.197/2.1.330, reference section 1.2)."""
    env = inputs.env
    if onboarding_done(inputs) and not env.get("CLAUDE_CODE_POWERUP_ONBOARDING"):
        return None
    if env.get("CLAUDE_CODE_SIMPLE") or any(env.get(v) for v in THIRD_PARTY_FLAGS):
        return None
    if env.get("ANTHROPIC_AUTH_TOKEN"):
        return None
    if inputs.settings.get("apiKeyHelper") or env.get("CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR"):
        return None
    key = env.get("ANTHROPIC_API_KEY", "")
    if key and key_approved(inputs, key):
        return None
    where = f"{inputs.claude_json_path} has no \"hasCompletedOnboarding\": true"
    if key:
        return f"{where} and ANTHROPIC_API_KEY is not yet approved"
    return where


def is_anthropic_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in ("anthropic.com", "claude.com", "claude.ai") or host.endswith(
        (".anthropic.com", ".claude.com", ".claude.ai")
    )
