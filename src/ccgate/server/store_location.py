"""Which store the gateway and the keys/usage commands open: ``--db`` > ``$CCGATE_DB`` >
``store.url`` / ``store.path`` > the user data dir, with the config's PostgreSQL settings
(``store.password``, ``store.pool``) applied to a URL wherever it came from.

Here and not in ``config/`` or ``store/``: config never imports the store and the store never
reads the config; this is the one place the two meet (the CLI imports it too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from ccgate.config.load import store_password, store_target
from ccgate.config.model import Store as StoreConfig
from ccgate.errors import ConfigError
from ccgate.store import PoolSettings, StoreError, StoreLocation, StoreURL, resolve_db_path


def store_location(cli: str | None, env: Mapping[str, str], store: StoreConfig | None,
                   config_path: Path | None) -> StoreLocation:
    """ConfigError (a message without the password) if a location or the password is unusable."""
    try:
        location = resolve_db_path(cli, env, store_target(store, config_path) if store is not None else None)
    except StoreError as exc:
        raise ConfigError(f"store: {exc}") from None
    if not isinstance(location, StoreURL) or store is None:
        return location
    pool = store.pool
    return replace(
        location, password=store_password(store, config_path, env) or location.password,
        pool=PoolSettings(min_size=pool.min_size, max_size=pool.max_size,
                          connect_timeout=pool.connect_timeout, statement_timeout=pool.statement_timeout),
    )
