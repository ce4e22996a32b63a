"""Issued client keys and usage: an embedded SQLite store behind a backend-neutral protocol.

    store = open_store(resolve_db_path(args.db, os.environ))   # SQLiteStore
    cache = KeyCache(store); cache.reload()                    # hot-path auth, no disk I/O
    recorder = UsageRecorder(store)                            # non-blocking usage writes
    KeyManager(store).create("alice", models=["claude-*"])     # -> (IssuedKey, secret)

See docs/keys.md.
"""

from __future__ import annotations

from pathlib import Path

from ccgate.store.base import (
    GROUP_BY,
    DuplicateKeyName,
    GroupBy,
    InvalidInput,
    IssuedKey,
    KeyConflict,
    KeyNotFound,
    KeyStatus,
    KeyStore,
    RequestEntry,
    RequestFilter,
    RequestLogPolicy,
    RequestLogStore,
    Store,
    StoreError,
    StoreMissing,
    StoreUnavailable,
    UsageGroup,
    UsagePoint,
    UsageRow,
    UsageStore,
)
from ccgate.store.cache import KeyCache, KeyCheck
from ccgate.store.keys import KeyManager, key_summary
from ccgate.store.paths import (
    DB_ENV,
    PoolSettings,
    StoreLocation,
    StoreURL,
    default_db_path,
    parse_location,
    resolve_db_path,
)
from ccgate.store.recorder import UsageRecorder, session_id_from_headers
from ccgate.store.sqlite import SQLiteStore
from ccgate.store.validate import parse_duration

__all__ = [
    "DB_ENV",
    "GROUP_BY",
    "DuplicateKeyName",
    "GroupBy",
    "InvalidInput",
    "IssuedKey",
    "KeyCache",
    "KeyCheck",
    "KeyConflict",
    "KeyManager",
    "KeyNotFound",
    "KeyStatus",
    "KeyStore",
    "PoolSettings",
    "RequestEntry",
    "RequestFilter",
    "RequestLogPolicy",
    "RequestLogStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreLocation",
    "StoreMissing",
    "StoreURL",
    "StoreUnavailable",
    "UsageGroup",
    "UsagePoint",
    "UsageRecorder",
    "UsageRow",
    "UsageStore",
    "default_db_path",
    "key_summary",
    "open_store",
    "parse_duration",
    "parse_location",
    "resolve_db_path",
    "session_id_from_headers",
]


def open_store(location: str | Path | StoreURL, *, create: bool = True) -> Store:
    """Open the store at ``location``: a file path or ``sqlite:///path`` (SQLite), or a
    ``postgresql://`` URL (the ``ccgate[postgres]`` extra; imported only then).

    ``create=False`` raises ``StoreMissing`` instead of creating an empty database (read-only
    CLI commands).
    """
    where = location if isinstance(location, Path | StoreURL) else parse_location(str(location))
    if isinstance(where, StoreURL):
        from ccgate.store.postgres import open_postgres

        return open_postgres(where, create=create)
    return SQLiteStore(where.expanduser(), create=create)
