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
    UsageGroup,
    UsagePoint,
    UsageRow,
    UsageStore,
)
from ccgate.store.cache import KeyCache, KeyCheck
from ccgate.store.keys import KeyManager, key_summary
from ccgate.store.paths import DB_ENV, default_db_path, resolve_db_path
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
    "RequestEntry",
    "RequestFilter",
    "RequestLogPolicy",
    "RequestLogStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreMissing",
    "UsageGroup",
    "UsagePoint",
    "UsageRecorder",
    "UsageRow",
    "UsageStore",
    "default_db_path",
    "key_summary",
    "open_store",
    "parse_duration",
    "resolve_db_path",
    "session_id_from_headers",
]


def open_store(location: str | Path, *, create: bool = True) -> Store:
    """Open the store at ``location``; today a file path (SQLite).

    The single place a later ``postgresql://`` backend plugs in. ``create=False`` raises
    ``StoreMissing`` instead of creating an empty database (read-only CLI commands).
    """
    text = str(location)
    if "://" in text:
        raise StoreError(f"store URL {text.split('://')[0]}:// is not supported yet; use a file path")
    return SQLiteStore(Path(text).expanduser(), create=create)
