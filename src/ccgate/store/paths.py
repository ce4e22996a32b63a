"""Where the embedded store lives: ``--db`` > ``$CCGATE_DB`` > config > the user data dir."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import platformdirs

DB_ENV = "CCGATE_DB"
DB_FILENAME = "ccgate.db"


def default_db_path() -> Path:
    """``~/.local/share/ccgate/ccgate.db`` on Linux (platformdirs' user data dir elsewhere)."""
    return platformdirs.user_data_path("ccgate", appauthor=False) / DB_FILENAME


def resolve_db_path(cli: str | None, env: Mapping[str, str], configured: str | None = None) -> Path:
    for candidate in (cli, env.get(DB_ENV), configured):
        if candidate:
            return Path(candidate).expanduser()
    return default_db_path()
