"""What the doctor reads: the environment, Claude Code's settings files and its global config.

Which files, in which order, and what they mean is ``ccgate.claude_code`` (the same model
setup writes through). Claude Code applies the ``env`` blocks of its settings files on top of
the process environment (user < project < local < managed); the doctor builds the same
effective environment and remembers where every variable came from, so a fix can name the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccgate.claude_code import env as cc
from ccgate.claude_code.files import (
    STORED_API_KEY,
    ClaudeFiles,
    key_approved,
    layered_env,
    onboarding_done,
)
from ccgate.doctor.model import DoctorOptions

ANTHROPIC_API = "https://api.anthropic.com"
PREFLIGHT_URLS = ("https://api.anthropic.com/api/hello", "https://platform.claude.com/v1/oauth/hello")
DEFAULT_MODEL = "claude-sonnet-4-5"


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
    global_config_path: Path  # ~/.claude.json, or the legacy .config.json that wins over it
    global_config: dict[str, Any] | None
    settings: dict[str, Any]  # merged non-env settings (apiKeyHelper, ...)
    settings_errors: list[tuple[Path, str]] = field(default_factory=list)
    settings_files: list[Path] = field(default_factory=list)
    claude_version: str | None = None
    base_url: str = ANTHROPIC_API
    base_url_source: str = "default"
    credential: Credential | None = None
    credential_sources: list[str] = field(default_factory=list)  # names, highest precedence first
    model: str = DEFAULT_MODEL
    shell: str = "sh"

    def where(self, var: str) -> str:
        return self.sources.get(var, "environment")

    def credential_label(self, source: str) -> str:
        """A credential source as the user finds it: the stored key names its file."""
        return f"{source} in {self.global_config_path}" if source == STORED_API_KEY else source


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


def gather(options: DoctorOptions) -> Inputs:
    """Read everything (files only; ``claude --version`` is run by the runner)."""
    base_env = dict(os.environ if options.env is None else options.env)
    home = options.home or Path(base_env.get("HOME") or Path.home())
    files = ClaudeFiles.locate(base_env, home, options.managed_dir)
    inputs = Inputs(env=dict(base_env), sources=dict.fromkeys(base_env, "environment"), home=home,
                    global_config_path=files.global_config, global_config=None, settings={})
    if options.read_claude_files:
        _read_claude_files(inputs, files, options.cwd or Path.cwd())
    inputs.shell = Path(base_env.get("SHELL", "sh")).name or "sh"
    if options.base_url:
        inputs.base_url, inputs.base_url_source = options.base_url.strip(), "--base-url"
    elif inputs.env.get(cc.BASE_URL, "").strip():
        inputs.base_url = inputs.env[cc.BASE_URL].strip()
        inputs.base_url_source = inputs.where(cc.BASE_URL)
    inputs.model = options.model or inputs.env.get(cc.MODEL) or str(
        inputs.settings.get("model") or DEFAULT_MODEL
    )
    inputs.credential_sources = cc.credential_sources(inputs.env, inputs.settings, inputs.global_config)
    inputs.credential = resolve_credential(options, inputs)
    return inputs


def _read_claude_files(inputs: Inputs, files: ClaudeFiles, project_dir: Path) -> None:
    """Apply every settings file over ``inputs.env`` in Claude Code's order; read the global config."""
    layers: list[tuple[str, dict[str, Any]]] = []
    for settings_file in files.settings_files(project_dir):
        data = _read_json(settings_file.path, inputs.settings_errors)
        if data is None:
            continue
        inputs.settings_files.append(settings_file.path)
        layers.append((str(settings_file.path), data))
        inputs.settings.update({k: v for k, v in data.items() if k != "env"})
    inputs.env, inputs.sources = layered_env(inputs.env, layers)
    inputs.global_config = _read_json(files.global_config, inputs.settings_errors)


def resolve_credential(options: DoctorOptions, inputs: Inputs) -> Credential | None:
    """The credential Claude Code would send (``--key`` overrides it), in the header it would
    use (``ccgate.claude_code.env`` has the rules)."""
    if options.key:
        header = options.key_header or "x-api-key"
        return Credential(options.key.strip(), header, "--key", "--key")
    sent = cc.sent_credential(inputs.env, inputs.global_config)
    if sent is None and inputs.env.get(cc.OAUTH_TOKEN, "").strip():
        # a claude.ai login token (`claude setup-token`): sent as Bearer, with the OAuth beta
        return Credential(inputs.env[cc.OAUTH_TOKEN].strip(), options.key_header or "authorization",
                          cc.OAUTH_TOKEN, cc.OAUTH_TOKEN)
    if sent is None:
        return None
    return Credential(sent.value, options.key_header or sent.header, sent.source,
                      inputs.credential_label(sent.source))


def preflight_reason(inputs: Inputs) -> str | None:
    """Why Claude Code's first interactive start will run its connectivity check, or None
    when it will not (decision logic of 2.1.197/2.1.330, reference section 1.2)."""
    env = inputs.env
    if onboarding_done(inputs.global_config) and not env.get(cc.FORCE_ONBOARDING):
        return None
    if env.get(cc.SIMPLE_MODE) or any(env.get(v) for v in cc.PROVIDER_SWITCHES):
        return None
    if env.get(cc.AUTH_TOKEN):
        return None
    if inputs.settings.get(cc.KEY_HELPER) or env.get(cc.KEY_FILE_DESCRIPTOR):
        return None
    key = env.get(cc.API_KEY, "")
    if key and key_approved(inputs.global_config, key):
        return None
    where = f"{inputs.global_config_path} has no \"hasCompletedOnboarding\": true"
    if key:
        return f"{where} and ANTHROPIC_API_KEY is not yet approved"
    return where


def is_anthropic_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in ("anthropic.com", "claude.com", "claude.ai") or host.endswith(
        (".anthropic.com", ".claude.com", ".claude.ai")
    )
