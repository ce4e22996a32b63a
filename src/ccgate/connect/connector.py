"""``Connector``: the one backend behind ``ccgate connect``/``providers``/``models``, the admin
API and the console. It reads and writes one config file; every method either returns a
result or raises ``ConnectError`` (message safe to show)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from ccgate.config.load import CONFIG_ENV, FILE_NAME, find_config_file, parse_config
from ccgate.config.model import Config, Provider
from ccgate.config.secrets import Secret, resolve_secret
from ccgate.connect import probe
from ccgate.connect.configfile import ConfigDocument, entry_name
from ccgate.connect.inputs import Draft, build_draft, provider_name
from ccgate.connect.model import (
    CheckResult,
    ConnectError,
    ConnectResult,
    ModelInfo,
    ProviderInput,
    ProviderSummary,
    RouteInfo,
)
from ccgate.connect.tiers import DISCOVERY_VAR, plan_tiers
from ccgate.errors import ConfigError, UpstreamError


@dataclass(frozen=True)
class ProviderModels:
    """``models()``'s answer for one provider: its live list and the routes that target it."""

    provider: str
    models: tuple[ModelInfo, ...]
    routes: tuple[RouteInfo, ...]
    error: str | None = None  # why the live list is missing

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "models": [m.to_dict() for m in self.models],
                "routes": [r.to_dict() for r in self.routes], "error": self.error}


@dataclass(frozen=True)
class RemoveResult:
    provider: str
    config_path: Path
    routes_removed: tuple[str, ...]
    backup_dir: Path | None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "config_path": str(self.config_path),
                "routes_removed": list(self.routes_removed),
                "backup_dir": str(self.backup_dir) if self.backup_dir else None, "notes": list(self.notes)}


def config_path_for(explicit: str | Path | None, env: Mapping[str, str]) -> Path:
    """The file connect edits: ``--config``, ``$CCGATE_CONFIG`` (both may not exist yet), the
    file ``serve`` would find, else the user config dir's ccgate.yaml (created)."""
    if explicit:
        return Path(explicit).expanduser()
    if env.get(CONFIG_ENV, "").strip():
        return Path(env[CONFIG_ENV].strip()).expanduser()
    found = find_config_file(None, env)
    return found or Path(platformdirs.user_config_dir("ccgate")) / FILE_NAME


class Connector:
    def __init__(self, config_path: str | Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.env: dict[str, str] = dict(os.environ if env is None else env)
        self.config_path = config_path_for(config_path, self.env)

    # -- one provider, before it is saved --------------------------------------------------

    def draft(self, spec: ProviderInput) -> Draft:
        """``spec`` checked (ConnectError bad_input otherwise), with a key stored for this
        provider reused when none is given."""
        doc = ConfigDocument.load(self.config_path)
        return build_draft(spec, self.env, self.config_path.parent, doc.stored_key_refs(provider_name(spec)))

    async def discover_models(self, spec: ProviderInput) -> list[ModelInfo]:
        """The provider's models (``GET /models``), else the ids typed in ``spec.models``."""
        draft = self.draft(spec)
        listed = await self._list(draft.provider, draft.key)
        typed = [m for m in probe.typed_models(spec.models) if m.id not in {x.id for x in listed or ()}]
        return [*(listed or ()), *typed]

    async def probe_local(self, ports: Mapping[str, int] | None = None) -> list[probe.LocalServer]:
        """Self-hosted servers (Ollama, LM Studio, vLLM, llama.cpp) answering on 127.0.0.1."""
        return await probe.probe_local(self.env, ports)

    async def check(self, spec: ProviderInput, model: str | None = None, *, tools: bool = False) -> CheckResult:
        draft = self.draft(spec)
        return await self._check(draft.provider, draft.key, model or _main_model(spec), tools)

    # -- saving ----------------------------------------------------------------------------

    async def connect(self, spec: ProviderInput, *, test: bool = True, force: bool = False,
                      tools: bool = True) -> ConnectResult:
        """Check, then save the provider and Claude Code's tier routes. Nothing is written when
        the input is bad (ConnectError), or the check fails without ``force`` (action
        ``not_saved``)."""
        doc = ConfigDocument.load(self.config_path)
        draft = build_draft(spec, self.env, self.config_path.parent, doc.stored_key_refs(provider_name(spec)))
        main = _main_model(spec)
        if main is None and draft.provider.translated:
            raise ConnectError(await self._need_model(draft), bad_input=True)
        tiers = plan_tiers(draft.name, main, spec.tiers)
        claude_env = dict(tiers.claude_code_env)
        if draft.provider.kind != "anthropic":  # its models are listed under claude-via-... ids
            claude_env[DISCOVERY_VAR] = "1"
        action = doc.upsert_provider(draft.name, draft.entry)
        doc.replace_managed_routes(tiers.routes)
        text = doc.dump()
        literal = {draft.name: draft.literal_key} if draft.literal_key else {}
        warnings = doc.validate(text, self.env, literal)
        check = await self._check(draft.provider, draft.key, main, tools) if test else None
        result = ConnectResult(
            provider=draft.name, kind=draft.provider.kind, base_url=draft.provider.base_url,
            action="not_saved", config_path=self.config_path, routes=tiers.routes, check=check,
            claude_code_env=claude_env, warnings=tuple(warnings),
        )
        if check is not None and not check.ok and not force:
            return result
        secrets = self._secret_writes(draft)
        if text == doc.original and not secrets:
            return replace(result, action="unchanged")
        backup = doc.write(text, secrets)
        return replace(result, action=action, backup_dir=backup, secret_file=next(iter(secrets), None))

    def _secret_writes(self, draft: Draft) -> dict[Path, bytes]:
        if draft.literal_key is None:
            return {}
        path = self.config_path.parent / draft.secret_relpath
        data = (draft.literal_key + "\n").encode()
        try:
            if path.read_bytes() == data:
                return {}
        except OSError:
            pass
        return {path: data}

    async def _need_model(self, draft: Draft) -> str:
        try:
            listed = await self._list(draft.provider, draft.key)
        except ConnectError:
            listed = None
        offer = f"; {draft.name} lists: {', '.join(m.id for m in listed[:20])}" if listed else ""
        return f"give the model to use (--model ID){offer}"

    # -- configured providers --------------------------------------------------------------

    def providers(self) -> list[ProviderSummary]:
        config = self._config()
        routes = [RouteInfo(r.match, r.to) for r in config.models]
        entries = ConfigDocument.load(self.config_path).provider_entries()
        presets = {entry_name(e): e.get("preset") for e in entries}
        return [
            ProviderSummary(p.name, p.kind, p.base_url, presets.get(p.name),
                            tuple(_ref_label(k) for k in p.api_keys), p.auth_header,
                            tuple(r for r in routes if _targets(r.to, p.name)))
            for p in config.providers
        ]

    async def test_provider(self, name: str, model: str | None = None, *, tools: bool = False) -> CheckResult:
        """The real check for a configured provider, with its stored key and routed model."""
        provider, key = self._configured(name)
        if model is None:
            model = next((r.to.split("/", 1)[1] for r in self._config().models
                          if _targets(r.to, name) and "/" in r.to), None)
        if model is None and provider.translated:
            listed = await self._list(provider, key)
            if not listed:
                raise ConnectError(f"no model routed to {name!r} and it lists none; give one", bad_input=True)
            model = listed[0].id
        return await self._check(provider, key, model, tools)

    def remove(self, name: str) -> RemoveResult:
        doc = ConfigDocument.load(self.config_path)
        refs = doc.stored_key_refs(name)
        removed = doc.remove_provider(name)
        text = doc.dump()
        doc.validate(text, self.env, {})
        backup = doc.write(text)
        notes = tuple(f"the key file {ref[5:]} is kept (delete it when you no longer need it)"
                      for ref in refs if ref.startswith("file:secrets/"))
        return RemoveResult(name, self.config_path, tuple(removed), backup, notes)

    async def models(self, name: str | None = None) -> list[ProviderModels]:
        """Each provider's live model list (or why it is missing) and its routes."""
        config = self._config()
        names = [p.name for p in config.providers]
        if name is not None and name not in names:
            raise ConnectError(f"no provider named {name!r} (configured: {', '.join(names)})", bad_input=True)
        out = []
        for provider_name_ in [name] if name else names:
            provider, key = self._configured(provider_name_)
            routes = tuple(RouteInfo(r.match, r.to) for r in config.models if _targets(r.to, provider_name_))
            try:
                listed = await self._list(provider, key)
                out.append(ProviderModels(provider_name_, tuple(listed or ()), routes,
                                          None if listed else "the provider has no model list"))
            except ConnectError as exc:
                out.append(ProviderModels(provider_name_, (), routes, exc.message))
        return out

    # -- helpers ---------------------------------------------------------------------------

    def _config(self) -> Config:
        """The config as ``serve`` would read it (presets applied), secrets not resolved."""
        try:
            text = self.config_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Config()
        except OSError as exc:
            raise ConnectError(f"{self.config_path}: cannot read: {exc.strerror}") from None
        try:
            return parse_config(text, str(self.config_path))
        except ConfigError as exc:
            raise ConnectError(str(exc)) from None

    def _configured(self, name: str) -> tuple[Provider, Secret | None]:
        provider = next((p for p in self._config().providers if p.name == name), None)
        if provider is None:
            raise ConnectError(f"no provider named {name!r} in {self.config_path}", bad_input=True)
        if not provider.api_keys:
            return provider, None
        try:
            return provider, resolve_secret(provider.api_keys[0], self.env, self.config_path.parent)
        except ValueError as exc:
            raise ConnectError(f"provider {name!r} key: {exc}") from None

    async def _list(self, provider: Provider, key: Secret | None) -> list[ModelInfo] | None:
        try:
            return await probe.list_models(provider, key, self.env)
        except UpstreamError as err:
            raise ConnectError(err.message) from None
        except ValueError as exc:
            raise ConnectError(str(exc)) from None

    async def _check(self, provider: Provider, key: Secret | None, model: str | None,
                     tools: bool) -> CheckResult:
        if model is None and provider.translated:
            raise ConnectError("a model id is needed to test an OpenAI-compatible provider", bad_input=True)
        return await probe.check(provider, key, self.env, model, tools=tools)


def _main_model(spec: ProviderInput) -> str | None:
    return spec.tiers.get("main") or (spec.models[0] if spec.models else None)


def _targets(target: str, provider: str) -> bool:
    return target == provider or target.startswith(provider + "/")


def _ref_label(ref: str) -> str:
    return ref if ref.startswith(("env:", "file:")) else "literal"
