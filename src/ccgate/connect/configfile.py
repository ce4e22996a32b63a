"""The config file as the user wrote it: read, edited and written back with comments, key order,
quoting and indentation kept (ruamel.yaml round-trip), validated before anything is written.

Only what connect owns is touched: one provider entry (its preset, name, kind, base_url,
api_keys, auth_header; anything else the user added, such as proxy or tls, stays) and the
routes whose ``match`` is one of the tier globs (tiers.MANAGED_MATCHES).
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from ccgate.config.load import check_semantics, parse_config, resolve_secrets
from ccgate.config.presets import find_preset
from ccgate.connect.model import ConnectError, RouteInfo
from ccgate.connect.tiers import MANAGED_MATCHES, TIER_MATCH
from ccgate.errors import ConfigError
from ccgate.setup.files import SetupFileError, apply_writes, backup_root, read_state

HEADER = ("ccgate configuration (docs/configuration.md). `ccgate connect` keeps your comments\n"
          "and formatting when it updates this file.\n")
OWNED_KEYS = ("preset", "name", "kind", "base_url", "api_keys", "auth_header")
_TIER_OF = {**{glob: tier for tier, glob in TIER_MATCH.items()}, "*": "main",
            "claude-ccgate-subagent": "subagent"}


def _new_yaml(indent: int = 2, offset: int = 2) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long URL or comment
    # ``sequence`` is where an item's content starts: after the dash's offset and "- ".
    yaml.indent(mapping=indent, sequence=offset + 2, offset=offset)
    return yaml


_KEY_ONLY = re.compile(r"^(?P<indent> *)[^\s#-][^#]*:\s*(#.*)?$")


def guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset) the file uses, from the first nested mapping and the first
    nested sequence (ruamel's own guess reads the sequence content column as the mapping's)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    mapping: int | None = None
    offset: int | None = None
    for parent, child in itertools.pairwise(lines):
        match = _KEY_ONLY.match(parent)
        if not match:
            continue
        step = len(child) - len(child.lstrip(" ")) - len(match.group("indent"))
        if child.lstrip().startswith("- "):
            offset = step if offset is None and step >= 0 else offset
        elif mapping is None and step > 0:
            mapping = step
    return mapping or 2, 2 if offset is None else offset


def entry_name(entry: Mapping[str, Any]) -> str | None:
    """A provider entry's effective name: ``name``, else its preset's."""
    name = entry.get("name")
    if name:
        return str(name)
    preset = find_preset(str(entry.get("preset") or ""))
    return preset.name if preset else None


@dataclass
class ConfigDocument:
    path: Path
    original: bytes | None  # None: the file does not exist yet
    data: CommentedMap
    yaml: YAML
    prefix: str = ""  # a file of only comments: kept as it is, above what connect adds

    @classmethod
    def load(cls, path: Path) -> ConfigDocument:
        try:
            raw: bytes | None = path.read_bytes()
        except FileNotFoundError:
            raw = None
        except OSError as exc:
            raise ConnectError(f"{path}: cannot read the config file: {exc.strerror}") from None
        if raw is None or not raw.strip():
            data = CommentedMap()
            data.yaml_set_start_comment(HEADER)
            return cls(path, raw, data, _new_yaml())
        text = raw.decode("utf-8", "replace")
        try:
            yaml = _new_yaml(*guess_indent(text))  # what connect adds looks like the rest
            data = yaml.load(text)
        except YAMLError as exc:
            raise ConnectError(f"{path}: invalid YAML, fix it first: {exc}".replace("\n", " ")) from None
        if data is None:  # only comments: ruamel would drop them
            return cls(path, raw, CommentedMap(), yaml, text if text.endswith("\n") else text + "\n")
        if not isinstance(data, CommentedMap):
            raise ConnectError(f"{path}: the top level must be a mapping of sections")
        return cls(path, raw, data, yaml)

    # -- reading -------------------------------------------------------------------------

    def provider_entries(self) -> list[CommentedMap]:
        providers = self.data.get("providers")
        return [p for p in providers if isinstance(p, CommentedMap)] if isinstance(providers, list) else []

    def find_provider(self, name: str) -> CommentedMap | None:
        return next((p for p in self.provider_entries() if entry_name(p) == name), None)

    def stored_key_refs(self, name: str) -> list[str]:
        entry = self.find_provider(name)
        keys = entry.get("api_keys") if entry is not None else None
        return [str(k) for k in keys] if isinstance(keys, list) else []

    def routes(self) -> list[RouteInfo]:
        models = self.data.get("models")
        out = []
        for item in models if isinstance(models, list) else []:
            if isinstance(item, Mapping) and "match" in item and "to" in item:
                match = str(item["match"])
                window = item.get("context_window")
                out.append(RouteInfo(match, str(item["to"]), _TIER_OF.get(match),
                                     window if isinstance(window, int) else None))
        return out

    # -- editing -------------------------------------------------------------------------

    def upsert_provider(self, name: str, entry: Mapping[str, Any]) -> Literal["added", "updated"]:
        """Add the entry, or update the provider of that name in place (other keys kept)."""
        existing = self.find_provider(name)
        if existing is None:
            providers = self.data.get("providers")
            if not isinstance(providers, list):
                providers = CommentedSeq()
                self.data["providers"] = providers
            _append_keeping_gap(providers, _block_entry(entry))
            return "added"
        for key in OWNED_KEYS:
            if key not in entry:
                if key in existing and not (key == "name" and existing.get("name") == name):
                    del existing[key]
            elif _plain(existing.get(key)) != _plain(entry[key]):
                existing[key] = _flow_list(entry[key]) if isinstance(entry[key], list) else entry[key]
        return "updated"

    def replace_managed_routes(self, routes: Sequence[RouteInfo]) -> None:
        """Put ``routes`` where the first managed route was (else at the end), dropping the rest."""
        models = self.data.get("models")
        if not isinstance(models, list):
            models = CommentedSeq()
            self.data["models"] = models
        managed = [i for i, r in enumerate(models)
                   if isinstance(r, Mapping) and r.get("match") in MANAGED_MATCHES]
        at = managed[0] if managed else len(models)
        for i in reversed(managed):
            del models[i]
        for offset, route in enumerate(routes):
            models.insert(at + offset, _route_map(route))

    def remove_provider(self, name: str) -> list[str]:
        """Remove the provider, the routes that target it and its place in fallbacks; returns
        the removed routes' matches."""
        entry = self.find_provider(name)
        if entry is None:
            raise ConnectError(f"no provider named {name!r} in {self.path}", bad_input=True)
        providers = self.data["providers"]
        providers.remove(entry)
        if not providers:
            del self.data["providers"]  # the embedded default (Anthropic) applies again
        removed: list[str] = []
        models = self.data.get("models")
        for route in list(models) if isinstance(models, list) else []:
            if not isinstance(route, Mapping):
                continue
            if _targets(str(route.get("to", "")), name):
                removed.append(str(route.get("match")))
                models.remove(route)
            elif isinstance(route.get("fallbacks"), list):
                for target in [t for t in route["fallbacks"] if _targets(str(t), name)]:
                    route["fallbacks"].remove(target)
        if isinstance(models, list) and not models:
            del self.data["models"]
        return removed

    def dump(self) -> bytes:
        stream = io.StringIO(self.prefix)
        stream.seek(len(self.prefix))
        if self.data or not self.prefix:
            self.yaml.dump(self.data, stream)
        return stream.getvalue().encode("utf-8")

    # -- validating and writing ----------------------------------------------------------

    def validate(self, text: bytes, env: Mapping[str, str], literal_keys: Mapping[str, str]) -> list[str]:
        """Everything ``load_config`` checks, on ``text`` before it is written. ``literal_keys``
        (provider -> key) stand in for secret files not written yet. An ``env:`` reference whose
        variable this shell lacks is a warning (the gateway's environment may have it)."""
        origin = str(self.path)
        try:
            config = parse_config(text.decode("utf-8"), origin)
            check_semantics(config, origin)
            for provider in config.providers:
                if provider.name in literal_keys:
                    provider.api_keys = [literal_keys[provider.name]]
            missing = sorted({ref[4:].strip() for ref in _env_refs(config) if not env.get(ref[4:].strip())})
            overlay = {**env, **{name: f"unset-in-this-shell-{name}" for name in missing}}
            resolve_secrets(config, origin, overlay, self.path.parent)
        except ConfigError as exc:
            raise ConnectError(f"the result would not be a valid config, nothing was written: {exc}",
                               bad_input=True) from None
        return [f"environment variable {name} is not set in this shell; the gateway needs it"
                for name in missing]

    def write(self, text: bytes, secrets: Mapping[Path, bytes] | None = None) -> Path:
        """Write the secret files and the config atomically, after one backup set of all of
        them; returns the backup directory. A secret file is 0600 in a 0700 directory."""
        secrets = secrets or {}
        writes = []
        for path, data in secrets.items():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            writes.append((read_state(path), data))
        writes.append((read_state(self.path), text))
        try:
            backup = apply_writes(writes, backup_root(self.path.parent))
        except SetupFileError as exc:
            raise ConnectError(str(exc)) from None
        for path in secrets:
            path.chmod(0o600)  # even if an older file had looser permissions
        return backup.directory


def _env_refs(config: Any) -> Iterable[str]:
    refs: list[str] = [p for provider in config.providers for p in provider.api_keys]
    refs += [t if isinstance(t, str) else t.token for t in config.server.auth.tokens]
    if config.server.admin.key:
        refs.append(config.server.admin.key)
    return [r for r in refs if r.startswith("env:")]


def _targets(target: str, provider: str) -> bool:
    return target == provider or target.startswith(provider + "/")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _flow_list(values: list[Any]) -> CommentedSeq:
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def _block_entry(entry: Mapping[str, Any]) -> CommentedMap:
    out = CommentedMap()
    for key in OWNED_KEYS:
        if key in entry:
            out[key] = _flow_list(entry[key]) if isinstance(entry[key], list) else entry[key]
    return out


def _append_keeping_gap(seq: CommentedSeq, item: CommentedMap) -> None:
    """Append ``item``; blank lines that followed the old last item (before the next section)
    now follow the new one, so the gap stays where the user put it."""
    last = seq[-1] if len(seq) else None
    seq.append(item)
    if not isinstance(last, CommentedMap) or not last or not item:
        return
    last_key, new_key = list(last.keys())[-1], list(item.keys())[-1]
    slot = last.ca.items.get(last_key)
    token = slot[2] if slot and len(slot) > 2 else None
    if token is not None and not str(token.value).strip():  # only blank lines, no comment text
        slot[2] = None
        item.ca.items[new_key] = [None, None, token, None]


def _route_map(route: RouteInfo) -> CommentedMap:
    out = CommentedMap(match=route.match, to=route.to)
    if route.context_window:
        out["context_window"] = route.context_window
    out.fa.set_flow_style()
    return out
