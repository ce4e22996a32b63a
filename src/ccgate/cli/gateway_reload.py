"""After the config changed: ask a running gateway to reload it (``server.control``: the admin
API with the admin key, else SIGHUP through its pidfile), or say what to do."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from ccgate.config.load import load_config, parse_config
from ccgate.config.model import Server
from ccgate.errors import ConfigError

ADMIN_KEY_ENV = "CCGATE_ADMIN_KEY"


def reload_gateway(config_path: Path, env: Mapping[str, str], *, quiet: bool, out: TextIO) -> dict[str, Any]:
    """Ask the gateway the config names to reload; the outcome as a dict (printed unless quiet)."""
    server, admin_key = _server_and_admin_key(config_path, env)
    restart = f"ccgate serve --config {config_path}"
    control = _control()
    if control is None:
        message, ok = "this build cannot ask a running gateway to reload", False
    else:
        try:
            message, ok = str(control.request_reload(server.host, server.port, admin_key)), True
        except control.ReloadError as exc:
            message, ok = f"the gateway did not reload: {exc}", False
    if not quiet:
        print(f"Gateway: {message}", file=out)
        if not ok:
            print(f"  restart it to apply the change: {restart}", file=out)
    return {"message": message, "ok": ok, "restart_command": restart}


def _control() -> ModuleType | None:
    """``server.control`` (pidfile + SIGHUP, or the admin reload endpoint), when present."""
    try:
        return importlib.import_module("ccgate.server.control")
    except ImportError:
        return None


def _server_and_admin_key(config_path: Path, env: Mapping[str, str]) -> tuple[Server, str | None]:
    try:
        loaded = load_config(str(config_path), env)
    except ConfigError:  # a provider's env key missing here: the address is still known
        try:
            config = parse_config(config_path.read_text(encoding="utf-8"), str(config_path))
        except (OSError, ConfigError):
            return Server(), env.get(ADMIN_KEY_ENV) or None
        return config.server, env.get(ADMIN_KEY_ENV) or None
    key = loaded.secrets.admin_key.value if loaded.secrets.admin_key else env.get(ADMIN_KEY_ENV)
    return loaded.config.server, key or None
