"""``ccgate config check``: the same validation ``serve`` runs, without serving.
``ccgate config schema``: the JSON Schema of the config file, for editors (docs/configuration.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import msgspec

from ccgate.config.load import LoadedConfig, load_config
from ccgate.config.model import Config
from ccgate.errors import ConfigError
from ccgate.proxy_env import resolve_proxy


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate the config file and show what it means")
    check.add_argument("--config", metavar="FILE", help="config file to check")
    check.add_argument("--json", action="store_true",
                       help='print {"ok": ..., ...} on stdout (the error too) instead of prose')
    sub.add_parser("schema", help="print the JSON Schema of the config file (for editors)")


def run(args: argparse.Namespace) -> int:
    if args.config_command == "schema":
        print(json.dumps(config_schema(), indent=2))
        return 0
    return _check(args)


def config_schema() -> dict[str, Any]:
    """The config's JSON Schema, generated from the very structs that validate it
    (``config.model.Config``), so the two cannot disagree."""
    schema: dict[str, Any] = msgspec.json.schema(Config)
    provider = schema["$defs"]["Provider"]
    # A preset fills the name (and kind, base_url) before validation: name or preset is required.
    provider["required"] = [f for f in provider.get("required", []) if f != "name"]
    provider["anyOf"] = [{"required": ["name"]}, {"required": ["preset"]}]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ccgate configuration (ccgate.yaml)", **schema}


def _check(args: argparse.Namespace) -> int:
    from ccgate.cli.serve import describe

    try:
        loaded = load_config(args.config)
        store = store_summary(loaded)
    except ConfigError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        else:
            print(f"ccgate: config error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**check_json(loaded), "store": store}, indent=2))
        return 0
    server = loaded.config.server
    print(f"config ok: {loaded.source}")
    for line in describe(loaded, server.host, server.port)[1:]:
        print(line)
    if store["backend"] != "off":
        pool = store.get("pool")
        extra = (f" (pool {pool['min_size']}-{pool['max_size']} connections, connect timeout "
                 f"{pool['connect_timeout']:g} s, statement timeout {pool['statement_timeout']:g} s; "
                 "not connected by config check)") if isinstance(pool, dict) else ""
        print(f"  store: {store['backend']} {store['location']}{extra}")
    login = loaded.login
    if login is not None:
        groups = ["/".join(sorted(p.groups)) or "everyone" for p in login.policies.policies]
        policies = ", ".join(groups) or "none"
        print(f"  Claude Code /login: {login.public_url} via {login.oidc.issuer}; session {login.ttl} s; "
              f"policies: {policies} (docs/login.md)")
    return 0


def store_summary(loaded: LoadedConfig) -> dict[str, Any]:
    """Which store ``serve`` would open (``$CCGATE_DB`` included), without opening it; the
    password never appears. ConfigError if it could not be opened at all (bad URL, password
    reference, or the PostgreSQL extra missing)."""
    import importlib.util
    import os

    from ccgate.server.store_location import store_location
    from ccgate.store import StoreURL

    settings = loaded.config.store
    if not settings.enabled:
        return {"backend": "off"}
    where = store_location(None, os.environ, settings, loaded.path)
    if not isinstance(where, StoreURL):
        return {"backend": "sqlite", "location": str(where)}
    if importlib.util.find_spec("psycopg") is None or importlib.util.find_spec("psycopg_pool") is None:
        raise ConfigError(f"store: {where} is PostgreSQL, but psycopg is not installed; "
                          "install the PostgreSQL support: pip install 'ccgate[postgres]'")
    pool = where.pool
    return {"backend": "postgresql", "location": str(where),
            "pool": {"min_size": pool.min_size, "max_size": pool.max_size,
                     "connect_timeout": pool.connect_timeout, "statement_timeout": pool.statement_timeout}}


def check_json(loaded: LoadedConfig) -> dict[str, Any]:
    """What ``config check`` shows, as data; secret values never (only how many keys)."""
    import os

    config = loaded.config
    providers = []
    for provider in config.providers:
        decision = resolve_proxy(provider.base_url, provider.proxy, os.environ)
        providers.append({
            "name": provider.name, "kind": provider.kind, "base_url": provider.base_url,
            "proxy": decision.proxy.display if decision.proxy else None, "proxy_reason": decision.reason,
            "keys": len(loaded.secrets.provider_keys[provider.name]),
        })
    return {
        "ok": True, "config": loaded.source,
        "listen": {"host": config.server.host, "port": config.server.port},
        "providers": providers,
        "models": [{"match": m.match, "to": m.to, "fallbacks": list(m.fallbacks)} for m in config.models],
        "client_tokens": len(loaded.secrets.client_tokens),
        "redis": None if config.redis is None else {  # never the URL: it may hold the password
            "url_from": loaded.secrets.redis_url.reference if loaded.secrets.redis_url else None,
            "prefix": config.redis.prefix, "timeout": config.redis.timeout,
            "on_failure": {"rate_limits": config.redis.on_failure.rate_limits},
        },
    }
