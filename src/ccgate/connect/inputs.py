"""A ``ProviderInput`` checked and turned into the provider entry the YAML will hold (pure,
apart from resolving an ``env:``/``file:`` key reference).

The entry is what a person would write (``preset: deepseek`` plus the key reference), not the
expanded provider: presets keep their meaning when ccgate's preset table improves.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from ccgate.config.load import apply_presets
from ccgate.config.model import Provider
from ccgate.config.presets import PRESETS, find_preset
from ccgate.config.secrets import Secret, resolve_secret
from ccgate.connect.model import ConnectError, ProviderInput
from ccgate.errors import ConfigError

SECRETS_DIR = "secrets"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KINDS = ("openai-compatible", "anthropic-compatible", "anthropic")


@dataclass(frozen=True)
class Draft:
    """One provider ready to test and save."""

    name: str
    entry: dict[str, Any]  # the YAML entry, key as a reference (never a literal)
    provider: Provider  # validated, preset applied
    key: Secret | None  # resolved, to test with
    literal_key: str | None  # a typed key, to go into the secrets file at ``entry``'s reference

    @property
    def secret_relpath(self) -> str:
        return f"{SECRETS_DIR}/{self.name}.key"


def build_draft(
    spec: ProviderInput, env: Mapping[str, str], config_dir: Path,
    stored_refs: Sequence[str] = (),
) -> Draft:
    """Check ``spec`` and build its entry. ``stored_refs``: the key references the config already
    holds for this provider, reused when no key is given (re-test without re-typing)."""
    entry, self_hosted = _base_entry(spec)
    name = provider_name(spec)
    if not _NAME_RE.match(name):
        raise ConnectError(
            f"provider name {name!r}: use letters, digits, '.', '_' or '-' (it names the key file)",
            bad_input=True,
        )
    refs, literal = _key_refs(spec.key, name, stored_refs)
    if refs:
        entry["api_keys"] = refs
    elif spec.preset is None:
        entry["auth_header"] = "none"  # a keyless server: send nothing rather than the client's token
    elif not self_hosted:
        raise ConnectError(
            f"provider {name!r} needs a key: --key SECRET, --key env:VAR or --key file:PATH",
            bad_input=True,
        )
    provider = validate_entry(entry)
    key = None
    if literal is not None:
        key = Secret(literal)
    elif refs:
        try:
            key = resolve_secret(refs[0], env, config_dir)
        except ValueError as exc:
            raise ConnectError(f"provider {name!r} key: {exc}", bad_input=True) from None
    return Draft(name, entry, provider, key, literal)


def provider_name(spec: ProviderInput) -> str:
    """The name the provider gets: ``spec.name``, else its preset's, else one from its URL."""
    if spec.name:
        return spec.name
    preset = find_preset(spec.preset or "")
    return preset.name if preset else name_from_url(spec.base_url or "")


def _base_entry(spec: ProviderInput) -> tuple[dict[str, Any], bool]:
    """The entry without its key, and whether it is a self-hosted preset."""
    entry: dict[str, Any] = {}
    if spec.preset:
        preset = find_preset(spec.preset)
        if preset is None:
            raise ConnectError(
                f"unknown preset {spec.preset!r} (known: {', '.join(PRESETS)})", bad_input=True
            )
        if spec.kind and spec.kind != preset.kind:
            raise ConnectError(f"--kind {spec.kind} contradicts preset {preset.name} ({preset.kind})",
                               bad_input=True)
        entry["preset"] = preset.name
        if spec.name and spec.name != preset.name:
            entry["name"] = spec.name
        if spec.base_url and spec.base_url.rstrip("/") != preset.base_url:
            entry["base_url"] = spec.base_url.rstrip("/")
        return entry, preset.self_hosted
    if not spec.base_url or not spec.kind:
        raise ConnectError("give --preset NAME, or --base-url URL with --kind "
                           "openai-compatible|anthropic-compatible", bad_input=True)
    if spec.kind not in KINDS:
        raise ConnectError(f"--kind {spec.kind!r}: use one of {', '.join(KINDS)}", bad_input=True)
    entry.update(name=spec.name or name_from_url(spec.base_url), kind=spec.kind,
                 base_url=spec.base_url.rstrip("/"))
    return entry, False


def _key_refs(key: str | None, name: str, stored: Sequence[str]) -> tuple[list[str], str | None]:
    """(references for the YAML, the literal to store). A literal goes to secrets/<name>.key."""
    if key is None or key == "":
        return list(stored), None
    key = key.strip()
    if key.startswith(("env:", "file:")):
        return [key], None
    if any(c.isspace() for c in key):
        raise ConnectError("the key contains whitespace; paste it again", bad_input=True)
    return [f"file:{SECRETS_DIR}/{name}.key"], key


def validate_entry(entry: Mapping[str, Any]) -> Provider:
    """The provider an entry stands for (presets applied), or ConnectError naming the field."""
    raw = copy.deepcopy(dict(entry))
    try:
        apply_presets({"providers": [raw]}, "provider")
        return msgspec.convert(raw, Provider)
    except ConfigError as exc:
        raise ConnectError(str(exc).removeprefix("provider: providers[0]."), bad_input=True) from None
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConnectError(f"provider {entry.get('name')!r}: {exc}", bad_input=True) from None


def name_from_url(url: str) -> str:
    """A provider name from its URL: ``api.deepseek.com`` -> deepseek, ``127.0.0.1:8000`` ->
    local-8000."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        return "custom"
    try:
        local = ipaddress.ip_address(host).is_private or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    if local:
        return f"local-{parts.port or (443 if parts.scheme == 'https' else 80)}"
    labels = [label for label in host.split(".") if label not in ("api", "www")]
    return (labels[0] if len(labels) > 1 else host.split(".")[0]) or "custom"
