"""Finding, parsing and validating the config file.

Search order: ``--config``, ``$CCGATE_CONFIG``, ``./ccgate.yaml``, the user config dir
(``~/.config/ccgate/ccgate.yaml`` on Linux). With no file at all the defaults apply:
forward to api.anthropic.com with the client's own key, through the environment's proxy.
Every error names the file and the key path (``providers[0].base_url: ...``).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import platformdirs
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarfloat import ScalarFloat

from ccgate.config.model import REDIS_SCHEMES, Config, Login, Provider, ResolvedSecrets, local_url
from ccgate.config.model import Store as StoreConfig
from ccgate.config.presets import ALIASES, PRESETS, find_preset
from ccgate.config.secrets import Secret, resolve_secret
from ccgate.errors import ConfigError
from ccgate.login.policy import PolicySet, compile_policy
from ccgate.login.settings import MIN_JWT_SECRET, LoginSettings, OidcSettings, parse_ttl
from ccgate.login.urls import check_issuer, check_public_url
from ccgate.proxy_env import DIRECT, ProxyURLError, parse_proxy_url, resolve_proxy

CONFIG_ENV = "CCGATE_CONFIG"
FILE_NAME = "ccgate.yaml"
MIN_METRICS_TOKEN_LENGTH = 16  # as the admin key (server/admin.py)


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    secrets: ResolvedSecrets
    path: Path | None  # None when running on embedded defaults
    login: LoginSettings | None = None  # the compiled ``login:`` section (login/settings.py)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "embedded defaults"


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The config file to use, or None for embedded defaults."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (given with --config)")
        return path
    from_env = env.get(CONFIG_ENV, "").strip()
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (given in ${CONFIG_ENV})")
        return path
    for candidate in (Path.cwd() / FILE_NAME, Path(platformdirs.user_config_dir("ccgate")) / FILE_NAME):
        if candidate.is_file():
            return candidate
    return None


_PATH_RE = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_PART_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`")
_ENUM_RE = re.compile(r"^Invalid enum value (?P<value>.*)$")

# Where each key and item of the file is: path (("providers", 0, "kind")) -> line number.
Lines = dict[tuple[str | int, ...], int]


def _explain_validation(exc: msgspec.ValidationError, lines: Lines | None = None) -> str:
    """Turn msgspec's 'X - at `$.a[0].b`' into 'a[0].b: X (line N)', with the valid choices and
    a "did you mean" for an unknown key or a bad enum value."""
    text = str(exc)
    match = _PATH_RE.search(text)
    if not match:
        return text
    where = match.group("path") or "(top level)"
    path = _parse_path(match.group("path"))
    problem = text[: match.start()]
    unknown = _UNKNOWN_RE.match(problem)
    if unknown:
        path = (*path, unknown.group("field"))
        problem += _suggest(unknown.group("field"), sorted(_struct_fields(path[:-1])), "known keys")
    enum = _ENUM_RE.match(problem)
    if enum:
        problem += _enum_hint(path, enum.group("value").strip("'\""))
    return f"{where}: {problem}{_line_of(path, lines)}"


def _parse_path(text: str) -> tuple[str | int, ...]:
    return tuple(int(index) if index else name for name, index in _PART_RE.findall(text))


def _line_of(path: tuple[str | int, ...], lines: Lines | None) -> str:
    """" (line N)" of the deepest part of ``path`` the file has."""
    for end in range(len(path), 0, -1):
        line = (lines or {}).get(path[:end])
        if line is not None:
            return f" (line {line})"
    return ""


def _suggest(word: str, choices: list[str], label: str) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6) or [
        c for c in choices if c.startswith(word) or word.startswith(c)][:1]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} ({label}: {', '.join(choices)})" if choices else hint


def _enum_hint(path: tuple[str | int, ...], value: str) -> str:
    choices = sorted(str(v) for v in _literal_values(path))
    hint = _suggest(value, choices, "valid values")
    if path[-1:] == ("kind",) and find_preset(value) is not None:
        hint += f"; for the provider itself, write preset: {value}"
    return hint


def _type_at(path: tuple[str | int, ...]) -> msgspec.inspect.Type | None:
    """The schema type at ``path`` of the config (``config.model.Config``), or None."""
    current: msgspec.inspect.Type | None = msgspec.inspect.type_info(Config)
    for part in path:
        current = _unwrap(current)
        if isinstance(current, msgspec.inspect.ListType) and isinstance(part, int):
            current = current.item_type
        elif isinstance(current, msgspec.inspect.StructType) and isinstance(part, str):
            current = next((f.type for f in current.fields if f.encode_name == part), None)
        else:
            return None
    return _unwrap(current)


def _unwrap(kind: msgspec.inspect.Type | None) -> msgspec.inspect.Type | None:
    if isinstance(kind, msgspec.inspect.UnionType):  # str | ClientToken: the structured one
        named = (msgspec.inspect.StructType, msgspec.inspect.LiteralType)
        return next((t for t in kind.types if isinstance(t, named)), kind)
    return kind


def _struct_fields(path: tuple[str | int, ...]) -> list[str]:
    kind = _type_at(path)
    fields = [f.encode_name for f in kind.fields] if isinstance(kind, msgspec.inspect.StructType) else []
    return fields + (["preset"] if "preset" not in fields and path[-2:-1] == ("providers",) else [])


def _literal_values(path: tuple[str | int, ...]) -> tuple[object, ...]:
    kind = _type_at(path)
    return kind.values if isinstance(kind, msgspec.inspect.LiteralType) else ()


def read_yaml(text: str, origin: str) -> tuple[Any, Lines]:
    """The file as plain data, parsed as YAML 1.2 (``proxy: off`` stays the string "off";
    only true/false are booleans), and the line of every key and item, for error messages."""
    parser = YAML(typ="rt", pure=True)
    try:
        data = parser.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{origin}: invalid YAML{where}: {problem}") from None
    lines: Lines = {}
    return _plain(data, (), lines), lines


def _plain(node: Any, path: tuple[str | int, ...], lines: Lines) -> Any:
    """ruamel's round-trip nodes as plain dicts, lists and scalars, noting each one's line."""
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            key = _plain(key, path, {})
            lines[(*path, key)] = node.lc.key(key)[0] + 1 if isinstance(key, str | int) else 0
            out[key] = _plain(value, (*path, key), lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            lines[(*path, i)] = node.lc.item(i)[0] + 1
            items.append(_plain(value, (*path, i), lines))
        return items
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, ScalarBoolean):
        return bool(node)
    if isinstance(node, ScalarFloat):
        return float(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, str):
        return str(node)
    return node


def parse_config(text: str, origin: str) -> Config:
    data, lines = read_yaml(text, origin)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of sections")
    apply_presets(data, origin)
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{origin}: {_explain_validation(exc, lines)}") from None


def apply_presets(data: dict[str, Any], origin: str) -> None:
    """Fill each provider's unset fields from its preset, in the raw data (what is written wins)."""
    providers = data.get("providers")
    if not isinstance(providers, list):
        return
    for i, raw in enumerate(providers):
        if not isinstance(raw, dict):
            continue
        where = f"{origin}: providers[{i}]"
        name = raw.get("preset")
        if name is None:
            _check_missing_kind(raw, where)
            if raw.get("kind") == "openai-compatible":
                if "base_url" not in raw:
                    raise ConfigError(f"{where}.base_url: required for an openai-compatible provider")
                raw.setdefault("auth_header", "bearer")  # the OpenAI convention
            continue
        preset = find_preset(str(name))
        if preset is None:
            known = [*PRESETS, *ALIASES]
            close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}.preset: unknown preset {name!r} (known: {', '.join(known)}){hint}")
        raw.setdefault("name", preset.name)
        raw.setdefault("kind", preset.kind)
        raw.setdefault("base_url", preset.base_url)
        if "auth_header" not in raw:
            # Self-hosted servers usually run without a key; when one is given, send it as Bearer.
            no_key = preset.auth_header == "none" and raw.get("api_keys")
            raw["auth_header"] = "bearer" if no_key else preset.auth_header
        user_quirks = raw.get("quirks") or {}
        if not isinstance(user_quirks, dict):
            raise ConfigError(f"{where}.quirks: must be a mapping of quirk names to values")
        if raw["kind"] == preset.kind:
            raw["quirks"] = {**preset.quirks, **user_quirks}


def _check_missing_kind(raw: dict[str, Any], where: str) -> None:
    """No ``kind:`` means Anthropic's API, whose root ccgate appends /v1/messages to; a base URL
    that ends in /v1 is almost always an OpenAI-compatible server (vLLM, Ollama, LM Studio,
    OpenRouter), so say that rather than "drop the /v1"."""
    url = raw.get("base_url")
    if "kind" in raw or not isinstance(url, str) or not url.rstrip("/").endswith("/v1"):
        return
    raise ConfigError(
        f"{where}.base_url: {url!r} ends in /v1 but the provider has no kind:, so it would be "
        "treated as kind: anthropic (ccgate appends /v1/messages). For an OpenAI-compatible "
        "server (vLLM, Ollama, LM Studio, OpenRouter, ...) add kind: openai-compatible; for an "
        "Anthropic API give kind: anthropic and the URL without /v1"
    )


def check_semantics(config: Config, origin: str) -> None:
    """Rules that span fields: names unique, routes point at known providers, proxies parse."""
    names = [p.name for p in config.providers]
    if not names:
        raise ConfigError(f"{origin}: providers: at least one provider is required")
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{origin}: providers[{i}].name: duplicate provider name {name!r}")
    for i, provider in enumerate(config.providers):
        _check_provider(provider, f"{origin}: providers[{i}]")
    for i, route in enumerate(config.models):
        targets = [("to", route.to)] + [(f"fallbacks[{j}]", t) for j, t in enumerate(route.fallbacks)]
        for field, target in targets:
            target_name = target.split("/", 1)[0]
            if target_name not in names:
                raise ConfigError(
                    f"{origin}: models[{i}].{field}: unknown provider {target_name!r} "
                    f"(known: {', '.join(names)})"
                )


def _check_provider(provider: Provider, where: str) -> None:
    if provider.proxy is not None and provider.proxy.strip().lower() not in DIRECT:
        try:
            parse_proxy_url(provider.proxy, source="proxy")
        except ProxyURLError as exc:
            raise ConfigError(f"{where}.{exc}") from None
    for field in ("ca_file", "client_cert", "client_key"):
        value = getattr(provider.tls, field)
        if value is not None and not Path(value).expanduser().is_file():
            raise ConfigError(f"{where}.tls.{field}: file not found: {value}")
    if provider.tls.client_key and not provider.tls.client_cert:
        raise ConfigError(f"{where}.tls.client_key: client_key needs client_cert")


def _resolve_client_tokens(
    config: Config, origin: str, env: Mapping[str, str], base: Path
) -> dict[str, Secret]:
    client_tokens: dict[str, Secret] = {}
    seen: set[str] = set()
    for i, entry in enumerate(config.server.auth.tokens):
        ref, name = (entry, f"token{i}") if isinstance(entry, str) else (entry.token, entry.name)
        try:
            secret = resolve_secret(ref, env, base)
        except ValueError as exc:
            raise ConfigError(f"{origin}: server.auth.tokens[{i}]: {exc}") from None
        if secret.value in seen:
            raise ConfigError(f"{origin}: server.auth.tokens[{i}]: duplicate client token")
        if name in client_tokens:
            raise ConfigError(f"{origin}: server.auth.tokens[{i}].name: duplicate name {name!r}")
        seen.add(secret.value)
        client_tokens[name] = secret
    return client_tokens


def resolve_secrets(config: Config, origin: str, env: Mapping[str, str], base: Path) -> ResolvedSecrets:
    client_tokens = _resolve_client_tokens(config, origin, env, base)
    provider_keys: dict[str, list[Secret]] = {}
    for i, provider in enumerate(config.providers):
        keys = []
        for j, ref in enumerate(provider.api_keys):
            try:
                keys.append(resolve_secret(ref, env, base))
            except ValueError as exc:
                raise ConfigError(f"{origin}: providers[{i}].api_keys[{j}]: {exc}") from None
        provider_keys[provider.name] = keys
    admin_key = None
    if config.server.admin.key is not None:
        try:
            admin_key = resolve_secret(config.server.admin.key, env, base)
        except ValueError as exc:
            raise ConfigError(f"{origin}: server.admin.key: {exc}") from None
    metrics_token = _resolve_metrics_token(config, origin, env, base)
    if client_tokens or config.login is not None:
        for i, provider in enumerate(config.providers):
            if not provider_keys[provider.name] and provider.auth_header != "none":
                raise ConfigError(
                    f"{origin}: providers[{i}].api_keys: client authentication is on (client tokens or "
                    "login:), so the "
                    "client's credential is a gateway token and cannot be forwarded; give this "
                    "provider its own api_keys (or auth_header: none for a server without auth)"
                )
    redis_url, redis_password = _resolve_redis(config, origin, env, base)
    return ResolvedSecrets(client_tokens=client_tokens, provider_keys=provider_keys, admin_key=admin_key,
                           metrics_token=metrics_token, redis_url=redis_url, redis_password=redis_password)


def _resolve_redis(config: Config, origin: str, env: Mapping[str, str], base: Path
                   ) -> tuple[Secret | None, Secret | None]:
    """``redis.url`` (a URL or a reference to one) and ``redis.password``; neither value ever
    appears in an error (a URL may carry the password)."""
    redis = config.redis
    if redis is None:
        return None, None
    where = f"{origin}: redis"
    try:
        url = resolve_secret(redis.url, env, base)
    except ValueError as exc:
        raise ConfigError(f"{where}.url: {exc}") from None
    scheme = url.value.partition("://")[0].lower() if "://" in url.value else ""
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(f"{where}.url: must start with redis://, rediss:// or unix:// "
                          f"(from {url.reference}; the value is not shown)")
    password = None
    if redis.password is not None:
        try:
            password = resolve_secret(redis.password, env, base)
        except ValueError as exc:
            raise ConfigError(f"{where}.password: {exc}") from None
    tls = redis.tls
    for field in ("ca_file", "client_cert", "client_key"):
        value = getattr(tls, field)
        if value is not None and not Path(value).expanduser().is_file():
            raise ConfigError(f"{where}.tls.{field}: file not found: {value}")
    if tls.client_key is not None and tls.client_cert is None:
        raise ConfigError(f"{where}.tls.client_key: client_key needs client_cert")
    if scheme != "rediss" and tls != type(tls)():
        raise ConfigError(f"{where}.tls: TLS settings need a rediss:// URL")
    return url, password


def _resolve_metrics_token(config: Config, origin: str, env: Mapping[str, str], base: Path) -> Secret | None:
    if config.server.metrics.token is None:
        return None
    try:
        token = resolve_secret(config.server.metrics.token, env, base)
    except ValueError as exc:
        raise ConfigError(f"{origin}: server.metrics.token: {exc}") from None
    if len(token.value) < MIN_METRICS_TOKEN_LENGTH:  # guessable tokens guard nothing
        raise ConfigError(f"{origin}: server.metrics.token: use at least {MIN_METRICS_TOKEN_LENGTH} "
                          "random characters")
    return token


def load_config(explicit: str | None = None, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Find, parse and validate the config. Raises ConfigError with a precise message."""
    env = os.environ if env is None else env
    path = find_config_file(explicit, env)
    if path is None:
        config = Config()
        origin, base = "embedded defaults", Path.cwd()
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config file: {exc}") from None
        origin, base = str(path), path.parent
        config = parse_config(text, origin)
    check_semantics(config, origin)
    for provider in config.providers:
        try:  # the proxy the environment names for this provider must be usable too
            resolve_proxy(provider.base_url, provider.proxy, env)
        except ProxyURLError as exc:
            raise ConfigError(f"proxy for provider {provider.name!r}: {exc}") from None
    secrets = resolve_secrets(config, origin, env, base)
    login = compile_login(config.login, origin, env, base) if config.login is not None else None
    return LoadedConfig(config=config, secrets=secrets, path=path, login=login)


def compile_login(login: Login, origin: str, env: Mapping[str, str], base: Path) -> LoginSettings:
    """The ``login:`` section checked whole (URLs, secrets, every policy) and compiled: a broken
    policy fails ``config check``, serve and reload here, and is never served."""
    where = f"{origin}: login"

    def secret(ref: str, field: str) -> str:
        try:
            return resolve_secret(ref, env, base).value
        except ValueError as exc:
            raise ConfigError(f"{where}.{field}: {exc}") from None

    try:
        public_url = check_public_url(login.public_url, allow_public_address=login.allow_public_address)
    except ValueError as exc:
        raise ConfigError(f"{where}.public_url: {exc}") from None
    try:
        issuer = check_issuer(login.oidc.issuer)
    except ValueError as exc:
        raise ConfigError(f"{where}.oidc.issuer: {exc}") from None
    if not login.oidc.client_id.strip():
        raise ConfigError(f"{where}.oidc.client_id: required")
    if "openid" not in login.oidc.scopes:
        raise ConfigError(f"{where}.oidc.scopes: must include openid")
    if login.oidc.ca_file is not None and not Path(login.oidc.ca_file).expanduser().is_file():
        raise ConfigError(f"{where}.oidc.ca_file: file not found: {login.oidc.ca_file}")
    jwt_secret = secret(login.session.jwt_secret, "session.jwt_secret")
    if len(jwt_secret) < MIN_JWT_SECRET:
        raise ConfigError(f"{where}.session.jwt_secret: use at least {MIN_JWT_SECRET} random characters "
                          "(openssl rand -base64 48)")
    try:
        ttl = parse_ttl(login.session.ttl)
    except ValueError as exc:
        raise ConfigError(f"{where}.session.{exc}") from None
    policies = []
    for i, policy in enumerate(login.policies):
        try:
            policies.append(compile_policy(i, policy.groups, policy.settings))
        except ValueError as exc:
            raise ConfigError(f"{where}.policies[{i}].{exc}") from None
    forward_to = login.telemetry.forward_to
    if forward_to is not None and not forward_to.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.telemetry.forward_to: {forward_to!r} must be an http(s) URL")
    if login.device_rate_limit < 1 or login.telemetry.max_body_bytes < 1024:
        raise ConfigError(f"{where}: device_rate_limit must be at least 1, telemetry.max_body_bytes 1024")
    client_secret = (secret(login.oidc.client_secret, "oidc.client_secret")
                     if login.oidc.client_secret is not None else None)
    oidc = OidcSettings(
        issuer=issuer, client_id=login.oidc.client_id, client_secret=client_secret,
        scopes=tuple(login.oidc.scopes),
        allowed_email_domains=tuple(d.lower().lstrip("@") for d in login.oidc.allowed_email_domains),
        groups_claim=login.oidc.groups_claim, ca_file=login.oidc.ca_file,
    )
    return LoginSettings(
        public_url=public_url, oidc=oidc, jwt_secret=jwt_secret, ttl=ttl, policies=PolicySet(policies),
        telemetry_forward_to=forward_to, telemetry_max_body=login.telemetry.max_body_bytes,
        device_rate_limit=login.device_rate_limit,
    )


@dataclass(frozen=True)
class GatewayClientView:
    """What a client of the gateway needs from its config: where it listens and the client
    tokens (``ccgate setup`` and ``ccgate code``). ``path`` None: no file, embedded defaults."""

    path: Path | None
    host: str
    port: int
    client_tokens: dict[str, Secret]
    slow_providers: tuple[str, ...] = ()  # providers marked ``slow: true``

    @property
    def url(self) -> str:
        """The gateway root as a local client reaches it: a wildcard address becomes loopback."""
        return local_url(self.host, self.port)


def load_client_view(
    explicit: str | None = None, env: Mapping[str, str] | None = None
) -> GatewayClientView:
    """The config file parsed and validated, with only ``server.auth.tokens`` resolved.

    A client does not need the provider keys, and the shell it runs in often lacks them
    (``environment variable ANTHROPIC_API_KEY is not set``); resolving them would make the
    whole file unusable to it. Raises ConfigError like ``load_config``.
    """
    env = os.environ if env is None else env
    path = find_config_file(explicit, env)
    if path is None:
        default = Config().server
        return GatewayClientView(None, default.host, default.port, {})
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    config = parse_config(text, str(path))
    tokens = _resolve_client_tokens(config, str(path), env, path.parent)
    slow = tuple(p.name for p in config.providers if p.slow)
    return GatewayClientView(path, config.server.host, config.server.port, tokens, slow)


def configured_store(explicit: str | None, env: Mapping[str, str]) -> tuple[Path, StoreConfig] | None:
    """The config file ``serve`` would use and its ``store:`` section, for the keys and usage
    commands; None without a config file.

    Only the file is parsed (no secrets resolved), so ``ccgate keys`` works where the provider
    keys' environment variables are not set.
    """
    path = find_config_file(explicit, env)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    return path, parse_config(text, str(path)).store


def store_target(store: StoreConfig, config_path: Path | None) -> str | None:
    """``store.url`` as written, or ``store.path`` (relative to the config file); None if unset."""
    if store.url:
        return store.url
    if not store.path:
        return None
    path = Path(store.path).expanduser()
    return str(path if path.is_absolute() or config_path is None else config_path.parent / path)


def store_password(store: StoreConfig, config_path: Path | None, env: Mapping[str, str]) -> str | None:
    """``store.password`` (a secret reference) resolved; None if unset."""
    if not store.password:
        return None
    try:
        return resolve_secret(store.password, env, config_path.parent if config_path else Path.cwd()).value
    except ValueError as exc:
        raise ConfigError(f"{config_path or 'config'}: store.password: {exc}") from None


__all__ = [
    "GatewayClientView",
    "LoadedConfig",
    "configured_store",
    "find_config_file",
    "load_client_view",
    "load_config",
    "store_password",
    "store_target",
]
