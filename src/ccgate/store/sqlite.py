"""The embedded store: one SQLite file (stdlib ``sqlite3``), WAL mode.

Durability choice: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A transaction is
committed once its frames are in the WAL file, i.e. in the OS page cache: it survives the
process being killed at any instant (SIGKILL, OOM killer), which is what the crash test
checks. Only an OS crash or power loss can drop the last few commits (the database stays
consistent either way). ``synchronous=FULL`` would close that window at the price of an
fsync per commit on the usage writer; for usage counters and an admin-run key store that
trade is not worth it. See docs/keys.md.

Connections: one per thread (``threading.local``). In WAL mode readers never wait for
writers, so the gateway's event-loop thread (``KeyCache`` polling ``keys_version``) is never
held up by the usage writer thread or an admin write running in a worker thread; writers
queue on SQLite's own lock with ``busy_timeout``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

from ccgate.store.base import (
    DuplicateKeyName,
    GroupBy,
    IssuedKey,
    KeyConflict,
    KeyNotFound,
    RequestEntry,
    RequestFilter,
    RequestLogPolicy,
    StoreError,
    StoreMissing,
    UsageGroup,
    UsagePoint,
    UsageRow,
)
from ccgate.store.keys import iso
from ccgate.store.migrations import migrate
from ccgate.store.rows import (
    GROUP_COLUMN,
    KEY_COLUMNS,
    LOG_SELECT,
    PRUNE_EVERY,
    USED_TOKENS,
    entry,
    key_record,
    opt_float,
    opt_int,
    request_log_limit,
    request_log_where,
    usage_values,
)

BUSY_TIMEOUT_MS = 5000
_USAGE_COLUMNS = ("INSERT INTO usage (ts, key_id, model, provider, session_id, request_id, status, "
                  "input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, "
                  "cache_write_1h_tokens, cost_usd) VALUES ")
# Rows per INSERT statement. One multi-row statement is one sqlite3_step, so the writer thread
# hands the GIL back and forth once per 64 rows instead of once per row (executemany): each
# hand-over while the event loop runs stalls it, which cost more than the inserts themselves.
_ROWS_PER_INSERT = 64
# A batch is written in statements of these sizes only (greedy: 64s, then 16s, 4s, 1s), so each
# table has at most four INSERT texts and every one stays prepared in the connection's statement
# cache. With a statement per batch size (1..64 rows, two tables: past the cache's 128 entries)
# a batch of a new size was parsed and planned again, ~800 placeholders at a time.
_STATEMENT_ROWS = (_ROWS_PER_INSERT, 16, 4, 1)


_LOG_COLUMNS = ("INSERT INTO request_log (ts, key_id, model, provider, session_id, request_id, status, "
                "input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cache_write_1h_tokens, "
                "cost_usd, latency_ms, attempts, error) VALUES ")


def _usage_insert(rows: int) -> str:
    return _USAGE_COLUMNS + ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?)"] * rows)


def _log_insert(rows: int) -> str:
    return _LOG_COLUMNS + ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"] * rows)


_USAGE_INSERTS = {n: _usage_insert(n) for n in _STATEMENT_ROWS}
_LOG_INSERTS = {n: _log_insert(n) for n in _STATEMENT_ROWS}


def _statements(count: int) -> Iterator[tuple[int, int]]:
    """(start, rows) of the statements ``count`` rows are written in (``_STATEMENT_ROWS``)."""
    start = 0
    for size in _STATEMENT_ROWS:
        while count - start >= size:
            yield start, size
            start += size


def _insert(conn: sqlite3.Connection, sql: dict[int, str], values: list[tuple[object, ...]]) -> None:
    """``values`` (one tuple per row) in as few statements of the fixed sizes as fit."""
    for start, size in _statements(len(values)):
        conn.execute(sql[size], [v for row in values[start:start + size] for v in row])


def _prepare_file(path: Path, create: bool) -> None:
    if path.exists():
        if path.is_dir():
            raise StoreError(f"{path} is a directory; --db / CCGATE_DB must name a file")
        return
    if not create:
        raise StoreMissing(f"no key store at {path} yet (nothing has been created)")
    if not path.parent.exists():
        # Only the innermost directory gets 0700; parents are created like mkdir -p.
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(path.parent, 0o700)
    # Create the file ourselves so it is 0600 from the first byte; SQLite gives the -wal and
    # -shm files the same mode as the database file.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


class SQLiteStore:
    """``Store`` on one SQLite file. Safe to share between threads and processes."""

    remote = False  # a local file: a read is fast enough for the key cache's poll on the event loop

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        # What add_usage writes (set_request_log): usage rows always until told otherwise; the
        # request log only once the gateway turns it on.
        self._record_usage = True
        self._log: RequestLogPolicy | None = None
        self._pruned_at = 0.0
        try:
            _prepare_file(path, create)
            self.migrated_from, _ = migrate(self._conn(), path)
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"cannot open the key store {path}: {exc}") from None
        except BaseException:
            self.close()
            raise

    @property
    def location(self) -> str:
        return str(self.path)

    def health(self) -> dict[str, object]:
        return {"backend": "sqlite", "location": str(self.path)}

    # Connections -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise StoreError(f"the key store {self.path} is closed")
            # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread=False
            # only so close() may close every thread's connection; each is used by one thread.
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            self._conns.append(conn)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"the key store {self.path} is busy or unwritable: {exc}") from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._conn().execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the key store {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # Keys --------------------------------------------------------------------------------

    def add_key(self, key: IssuedKey) -> None:
        try:
            with self._write() as conn:
                conn.execute(
                    f"INSERT INTO keys ({KEY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (key.id, key.name, key.prefix, json.dumps(list(key.models)), key.rpm, key.tpm,
                     key.created_at, key.expires_at, key.revoked_at, key.digest, key.old_digest,
                     key.grace_until, key.budget_day, key.budget_month),
                )
        except sqlite3.IntegrityError as exc:
            if "keys.name" in str(exc):
                raise DuplicateKeyName(
                    f"a key named {key.name!r} already exists; pick another name, or revoke it first"
                ) from None
            raise StoreError(f"cannot add key {key.name!r}: {exc}") from None
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the key store {self.path}: {exc}") from None

    def get_key(self, key_id: str) -> IssuedKey | None:
        rows = self._read(f"SELECT {KEY_COLUMNS} FROM keys WHERE id = ?", (key_id,))
        return key_record(rows[0]) if rows else None

    def keys_named(self, name: str) -> list[IssuedKey]:
        rows = self._read(
            f"SELECT {KEY_COLUMNS} FROM keys WHERE name = ? ORDER BY created_at DESC, rowid DESC", (name,))
        return [key_record(r) for r in rows]

    def list_keys(self) -> list[IssuedKey]:
        rows = self._read(f"SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at, rowid")
        return [key_record(r) for r in rows]

    def _changed(self, conn: sqlite3.Connection, key_id: str, sql: str, params: Sequence[object],
                 conflict: str) -> IssuedKey:
        if conn.execute(sql, params).rowcount == 1:
            row = conn.execute(f"SELECT {KEY_COLUMNS} FROM keys WHERE id = ?", (key_id,)).fetchone()
            return key_record(row)
        exists = conn.execute("SELECT name, revoked_at FROM keys WHERE id = ?", (key_id,)).fetchone()
        if exists is None:
            raise KeyNotFound(f"no key with id {key_id!r}")
        if exists[1] is not None:
            raise KeyConflict(f"key {exists[0]} ({key_id}) was already revoked at {iso(exists[1])}")
        raise KeyConflict(conflict)

    def revoke_key(self, key_id: str, at: float) -> IssuedKey:
        try:
            with self._write() as conn:
                return self._changed(
                    conn, key_id,
                    "UPDATE keys SET revoked_at = ?, old_digest = NULL, grace_until = NULL "
                    "WHERE id = ? AND revoked_at IS NULL", (at, key_id),
                    f"key {key_id} changed while revoking it; try again",
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the key store {self.path}: {exc}") from None

    def rotate_key(
        self, key_id: str, *, expected_digest: bytes, digest: bytes, prefix: str,
        old_digest: bytes | None, grace_until: float | None,
    ) -> IssuedKey:
        try:
            with self._write() as conn:
                return self._changed(
                    conn, key_id,
                    "UPDATE keys SET digest = ?, prefix = ?, old_digest = ?, grace_until = ? "
                    "WHERE id = ? AND digest = ? AND revoked_at IS NULL",
                    (digest, prefix, old_digest, grace_until, key_id, expected_digest),
                    f"key {key_id} was rotated by someone else at the same time; nothing was changed",
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the key store {self.path}: {exc}") from None

    def set_key_budget(self, key_id: str, *, day: float | None, month: float | None) -> IssuedKey:
        try:
            with self._write() as conn:
                return self._changed(
                    conn, key_id,
                    "UPDATE keys SET budget_day = ?, budget_month = ? WHERE id = ? AND revoked_at IS NULL",
                    (day, month, key_id), f"key {key_id} changed while setting its budget; try again",
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the key store {self.path}: {exc}") from None

    def keys_version(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE name = 'keys_version'")
        return opt_int(rows[0][0]) or 0 if rows else 0

    # Usage -------------------------------------------------------------------------------

    def set_request_log(self, policy: RequestLogPolicy | None, *, usage: bool = True) -> None:
        self._record_usage = usage
        self._log = policy if policy is not None and policy.enabled else None
        self._pruned_at = 0.0

    def add_usage(self, rows: Sequence[UsageRow]) -> None:
        """Usage rows and, when the request log is on, the same requests into it: one
        transaction, one multi-row INSERT per table per 64 rows (the batch is one write)."""
        if not rows:
            return
        log = self._log
        values = [usage_values(r) for r in rows]  # once per row, for both tables
        usage = [v for v, r in zip(values, rows, strict=True) if not r.log_only] if self._record_usage else []
        try:
            with self._write() as conn:
                if usage:
                    _insert(conn, _USAGE_INSERTS, usage)
                if log is not None:
                    _insert(conn, _LOG_INSERTS, [(*v, r.latency_ms, r.attempts, r.error)
                                                 for v, r in zip(values, rows, strict=True)])
                if log is not None and time.monotonic() - self._pruned_at >= PRUNE_EVERY:
                    self._prune(conn, log)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record usage in {self.path}: {exc}") from None

    def _prune(self, conn: sqlite3.Connection, log: RequestLogPolicy) -> None:
        """Keep the request log within its retention and row count (runs in the writer)."""
        self._pruned_at = time.monotonic()
        conn.execute("DELETE FROM request_log WHERE ts < ?", (time.time() - log.retention_seconds,))
        conn.execute("DELETE FROM request_log WHERE id <= (SELECT id FROM request_log ORDER BY id DESC "
                     "LIMIT 1 OFFSET ?)", (log.max_rows,))

    def recent_requests(self, where: RequestFilter) -> list[RequestEntry]:
        clause, params = request_log_where(where, "?")
        sql = LOG_SELECT + clause + " ORDER BY r.id DESC LIMIT ?"
        rows = self._read(sql, [*params, request_log_limit(where)])
        return [entry(r) for r in rows]

    def usage_series(self, *, since: float, bucket: int, by: GroupBy | None) -> list[UsagePoint]:
        column = GROUP_COLUMN[by] if by is not None else "NULL"  # from a fixed table
        size = max(1, int(bucket))
        rows = self._read(
            f"SELECT CAST(u.ts / {size} AS INTEGER) * {size} AS b, {column}, COUNT(*), "
            "COALESCE(SUM(u.status >= 400), 0), COALESCE(SUM(u.input_tokens), 0), "
            "COALESCE(SUM(u.output_tokens), 0), COALESCE(SUM(u.cache_read_tokens), 0), "
            "COALESCE(SUM(u.cache_creation_tokens), 0) FROM usage u WHERE u.ts >= ? "
            f"GROUP BY b, {column} ORDER BY b",
            (since,),
        )
        return [
            UsagePoint(bucket=float(cast(float, r[0])), group=None if r[1] is None else str(r[1]),
                       requests=opt_int(r[2]) or 0, errors=opt_int(r[3]) or 0,
                       input_tokens=opt_int(r[4]) or 0, output_tokens=opt_int(r[5]) or 0,
                       cache_read_tokens=opt_int(r[6]) or 0, cache_creation_tokens=opt_int(r[7]) or 0)
            for r in rows
        ]

    def spend_by_key(self, since: float) -> dict[str, float]:
        rows = self._read("SELECT key_id, SUM(cost_usd) FROM usage WHERE ts >= ? AND key_id IS NOT NULL "
                          "AND cost_usd IS NOT NULL GROUP BY key_id", (since,))
        return {str(r[0]): float(cast(float, r[1])) for r in rows}

    def last_success(self, since: float) -> dict[str, float]:
        # From the request log: bounded (store.request_log.max_rows), so this stays cheap for a
        # page that polls it, where the usage table may hold months of rows.
        rows = self._read("SELECT provider, MAX(ts) FROM request_log WHERE ts >= ? AND status < 400 "
                          "AND provider IS NOT NULL GROUP BY provider", (since,))
        return {str(r[0]): float(cast(float, r[1])) for r in rows}

    def usage_summary(self, *, since: float | None, by: GroupBy) -> list[UsageGroup]:
        column = GROUP_COLUMN[by]  # from a fixed table: never user text in the SQL
        label = "MAX(k.name)" if by == "key" else "NULL"
        join = "LEFT JOIN keys k ON k.id = u.key_id" if by == "key" else ""
        where, params = ("WHERE u.ts >= ?", (since,)) if since is not None else ("", ())
        rows = self._read(
            f"SELECT {column}, {label}, COUNT(*), COALESCE(SUM(u.status >= 400), 0), "
            "COALESCE(SUM(u.input_tokens), 0), COALESCE(SUM(u.output_tokens), 0), "
            "COALESCE(SUM(u.cache_read_tokens), 0), COALESCE(SUM(u.cache_creation_tokens), 0), "
            "MIN(u.ts), MAX(u.ts), COALESCE(SUM(u.cost_usd), 0), COALESCE(SUM(u.cache_write_1h_tokens), 0), "
            f"COALESCE(SUM(u.cost_usd IS NULL AND {USED_TOKENS}), 0) "
            f"FROM usage u {join} {where} GROUP BY {column} ORDER BY "
            "SUM(u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_creation_tokens) DESC, "
            f"COUNT(*) DESC, {column}",
            params,
        )
        return [
            UsageGroup(
                group=None if r[0] is None else str(r[0]), label=None if r[1] is None else str(r[1]),
                requests=opt_int(r[2]) or 0, errors=opt_int(r[3]) or 0,
                input_tokens=opt_int(r[4]) or 0, output_tokens=opt_int(r[5]) or 0,
                cache_read_tokens=opt_int(r[6]) or 0, cache_creation_tokens=opt_int(r[7]) or 0,
                first_ts=opt_float(r[8]) or 0.0, last_ts=opt_float(r[9]) or 0.0,
                cost_usd=opt_float(r[10]) or 0.0, cache_write_1h_tokens=opt_int(r[11]) or 0,
                unpriced=opt_int(r[12]) or 0,
            )
            for r in rows
        ]
