"""Where the store lives: ``--db`` > ``$CCGATE_DB`` > config > the user data dir.

A location is either a file path (SQLite; ``sqlite:///path`` says the same) or a
``postgresql://`` / ``postgres://`` URL (``StoreURL``). A URL may carry a password; ``StoreURL``
never shows it: ``str()``, ``repr()`` and every message built from them print ``***`` instead,
so a location can be logged, put in an error or shown on /readyz as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from ccgate.store.base import StoreError

DB_ENV = "CCGATE_DB"
DB_FILENAME = "ccgate.db"
POSTGRES_SCHEMES = ("postgresql", "postgres")
_PASSWORD_IN_NETLOC = re.compile(r"(://[^/@?#]*?:)[^/@?#]*@")
_PASSWORD_IN_QUERY = re.compile(r"(?i)([?&]password=)[^&#]*")


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """``store.pool``: the PostgreSQL connection pool and the bound on every wait (seconds)."""

    min_size: int = 1
    max_size: int = 4
    connect_timeout: float = 5.0  # connecting, and waiting for a free pooled connection
    statement_timeout: float = 5.0  # every statement (PostgreSQL's statement_timeout)


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A PostgreSQL store. ``url`` and ``password`` are secrets; ``str()`` is ``redacted``."""

    url: str = field(repr=False)
    password: str | None = field(default=None, repr=False)  # store.password, when the URL has none
    pool: PoolSettings = field(default_factory=PoolSettings)

    @property
    def redacted(self) -> str:
        return redact_url(self.url)

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"StoreURL({self.redacted!r})"


StoreLocation = Path | StoreURL


def redact_url(text: str) -> str:
    """``postgresql://app:s3cret@db/x`` -> ``postgresql://app:***@db/x`` (and ``?password=``)."""
    return _PASSWORD_IN_QUERY.sub(r"\1***", _PASSWORD_IN_NETLOC.sub(r"\1***@", text))


def parse_location(text: str) -> StoreLocation:
    """A path, ``sqlite:///path`` or a PostgreSQL URL. Any other ``scheme://`` is refused."""
    scheme, sep, rest = text.partition("://")
    if not sep or (len(scheme) == 1 and scheme.isalpha()):  # a path (C:\\... on Windows too)
        return Path(text).expanduser()
    scheme = scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        return StoreURL(text)
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise StoreError(f"{redact_url(text)}: write sqlite:///relative/path or sqlite:////absolute/path")
        return Path(rest[1:]).expanduser()
    raise StoreError(f"store URL scheme {scheme}:// is not supported; use a file path, sqlite:///PATH "
                     "or postgresql://HOST/DB")


def default_db_path() -> Path:
    """``~/.local/share/ccgate/ccgate.db`` on Linux (platformdirs' user data dir elsewhere)."""
    return platformdirs.user_data_path("ccgate", appauthor=False) / DB_FILENAME


def resolve_db_path(cli: str | None, env: Mapping[str, str],
                    configured: str | StoreLocation | None = None) -> StoreLocation:
    for candidate in (cli, env.get(DB_ENV), configured):
        if isinstance(candidate, StoreURL | Path):
            return candidate
        if candidate:
            return parse_location(candidate)
    return default_db_path()
