"""The store on PostgreSQL (``store.url: postgresql://...``): psycopg 3 and its connection pool.

Needs the ``ccgate[postgres]`` extra; ``open_postgres`` says so when it is missing.

Threads, not asyncio: every caller is already off the event loop (the usage writer thread,
the admin API's and console's worker threads, the key cache's refresher thread for a remote
store), so the sync API is the simple one and the event loop never waits on the network.

Bounded waits: connecting and waiting for a pooled connection are bounded by
``pool.connect_timeout``; every statement by PostgreSQL's ``statement_timeout``
(``pool.statement_timeout``), set per connection at connect time. A connection that died while
idle in the pool (PostgreSQL restarted) is found by a cheap check when it is taken out and
replaced. Connection-level failures raise ``StoreUnavailable`` (the gateway serves on from its
key cache and buffers usage); everything else ``StoreError``.

Writes: usage and request-log rows go in with ``COPY ... FROM STDIN`` in one transaction per
batch; the key change counter (``keys_version``) is bumped by a trigger, so a key changed by
any process or replica moves it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

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
    StoreUnavailable,
    UsageGroup,
    UsagePoint,
    UsageRow,
)
from ccgate.store.keys import iso
from ccgate.store.migrations import LATEST, MIGRATIONS
from ccgate.store.paths import StoreURL, redact_url
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

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

EXTRA_HINT = "install the PostgreSQL support: pip install 'ccgate[postgres]'"
# pg_advisory_xact_lock key for schema migrations: replicas starting together against one fresh
# database take turns; the second sees the first one's version and has nothing to do.
MIGRATION_LOCK = 0x63636761_7465  # "ccgate"
MIGRATION_STATEMENT_TIMEOUT = "10min"  # a migration may rewrite big tables; it is not a request
BATCH_ID_TTL = 86400.0  # seconds a committed batch's id is kept: far longer than any retry

_USAGE_COPY = ("COPY usage (ts, key_id, model, provider, session_id, request_id, status, input_tokens, "
               "output_tokens, cache_read_tokens, cache_creation_tokens, cache_write_1h_tokens, cost_usd) "
               "FROM STDIN")
_LOG_COPY = ("COPY request_log (ts, key_id, model, provider, session_id, request_id, status, input_tokens, "
             "output_tokens, cache_read_tokens, cache_creation_tokens, cache_write_1h_tokens, cost_usd, "
             "latency_ms, attempts, error) FROM STDIN")


def open_postgres(url: StoreURL, *, create: bool = True) -> PostgresStore:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise StoreError(f"store {url} is PostgreSQL, but psycopg is not installed; {EXTRA_HINT}") from None
    return PostgresStore(url, create=create)


class PostgresStore:
    """``Store`` on PostgreSQL. Thread-safe: each call takes a pooled connection."""

    remote = True

    def __init__(self, url: StoreURL, *, create: bool = True) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._psycopg = psycopg
        self._record_usage = True
        self._log: RequestLogPolicy | None = None
        self._pruned_at = 0.0
        self._state_lock = threading.Lock()
        self._reachable = True
        self._last_error: str | None = None
        self._down_since: float | None = None
        self._closed = False
        pool = url.pool
        self._connect_kwargs: dict[str, Any] = {
            "connect_timeout": max(1, math.ceil(pool.connect_timeout)),
            "options": f"-c statement_timeout={int(pool.statement_timeout * 1000)}",
            "application_name": "ccgate",
        }
        if url.password is not None:
            self._connect_kwargs["password"] = url.password
        self.migrated_from = self._migrate(create)
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            url.url, min_size=pool.min_size, max_size=pool.max_size, kwargs=self._connect_kwargs,
            timeout=pool.connect_timeout, max_waiting=64, name="ccgate-store", open=False,
            check=ConnectionPool.check_connection,
        )
        self._pool.open(wait=False)

    @property
    def location(self) -> str:
        return url_text(self.url)

    def health(self) -> dict[str, object]:
        with self._state_lock:
            out: dict[str, object] = {"backend": "postgresql", "location": self.location,
                                      "reachable": self._reachable}
            if self._last_error is not None and not self._reachable:
                out["error"] = self._last_error
            if self._down_since is not None:
                out["down_seconds"] = round(time.monotonic() - self._down_since, 1)
        stats = self._pool.get_stats()
        out["pool"] = {"size": stats.get("pool_size", 0), "available": stats.get("pool_available", 0),
                       "waiting": stats.get("requests_waiting", 0), "max_size": self.url.pool.max_size}
        return out

    def close(self) -> None:
        self._closed = True
        self._pool.close(timeout=5.0)

    # Connections and errors --------------------------------------------------------------

    def _failed(self, exc: BaseException, doing: str) -> StoreError:
        """The StoreError to raise for a driver exception; records reachability for health()."""
        from psycopg_pool import PoolTimeout, TooManyRequests

        psycopg = self._psycopg
        text = redact_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        unavailable = isinstance(exc, PoolTimeout | TooManyRequests | psycopg.OperationalError
                                 | psycopg.InterfaceError) and not isinstance(exc, psycopg.errors.QueryCanceled)
        if isinstance(exc, psycopg.errors.QueryCanceled):
            unavailable = True
            text = f"statement timed out after {self.url.pool.statement_timeout:g} s"
        if unavailable:
            with self._state_lock:
                if self._reachable:
                    self._down_since = time.monotonic()
                self._reachable, self._last_error = False, text
            return StoreUnavailable(f"cannot reach the PostgreSQL store {self.location} to {doing}: {text}")
        return StoreError(f"the PostgreSQL store {self.location} could not {doing}: {text}")

    def _ok(self) -> None:
        if not self._reachable:
            with self._state_lock:
                self._reachable, self._last_error, self._down_since = True, None, None

    @contextlib.contextmanager
    def _tx(self, doing: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """One pooled connection in a transaction: committed on success, rolled back on error."""
        psycopg = self._psycopg
        from psycopg_pool import PoolTimeout, TooManyRequests

        if self._closed:
            raise StoreError(f"the key store {self.location} is closed")
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, TooManyRequests) as exc:
            raise self._failed(exc, doing) from None
        self._ok()

    def _read(self, sql: str, params: Sequence[object] = (), doing: str = "read") -> list[tuple[Any, ...]]:
        psycopg = self._psycopg
        try:
            with self._tx(doing) as conn:
                return list(conn.execute(sql, params).fetchall())
        except psycopg.Error as exc:
            raise self._failed(exc, doing) from None

    # Migrations ----------------------------------------------------------------------------

    def _migrate(self, create: bool) -> int:
        """Bring the database to ``LATEST`` in one transaction under an advisory lock."""
        psycopg = self._psycopg
        try:
            with psycopg.connect(self.url.url, **self._connect_kwargs) as conn:
                conn.execute(f"SET LOCAL statement_timeout = '{MIGRATION_STATEMENT_TIMEOUT}'")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                return self._migrate_locked(conn, create)
        except StoreError:
            raise
        except psycopg.Error as exc:
            raise self._failed(exc, "open it") from None

    def _migrate_locked(self, conn: psycopg.Connection[tuple[Any, ...]], create: bool) -> int:
        versioned = conn.execute("SELECT to_regclass('ccgate_schema') IS NOT NULL").fetchone()
        if versioned is not None and versioned[0]:
            row = conn.execute("SELECT version FROM ccgate_schema").fetchone()
            before = int(row[0]) if row else 0
        else:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()
            if tables is not None and tables[0]:
                raise StoreError(f"{self.location} has tables but is not a ccgate store; nothing was changed")
            if not create:
                raise StoreMissing(f"no key store at {self.location} yet (nothing has been created)")
            conn.execute("CREATE TABLE ccgate_schema (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO ccgate_schema (version) VALUES (0)")
            before = 0
        if before > LATEST:
            raise StoreError(
                f"{self.location} has schema version {before}, written by a newer ccgate (this one knows up "
                f"to {LATEST}); upgrade ccgate or point store.url at another database")
        for step in MIGRATIONS[before:]:
            for statement in step.postgres:
                conn.execute(statement)
            conn.execute("UPDATE ccgate_schema SET version = %s", (step.version,))
        return before

    # Keys --------------------------------------------------------------------------------

    def add_key(self, key: IssuedKey) -> None:
        psycopg = self._psycopg
        try:
            with self._tx("add a key") as conn:
                conn.execute(
                    f"INSERT INTO keys ({KEY_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (key.id, key.name, key.prefix, json.dumps(list(key.models)), key.rpm, key.tpm,
                     key.created_at, key.expires_at, key.revoked_at, key.digest, key.old_digest,
                     key.grace_until, key.budget_day, key.budget_month),
                )
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "keys_live_name":
                raise DuplicateKeyName(
                    f"a key named {key.name!r} already exists; pick another name, or revoke it first"
                ) from None
            raise StoreError(f"cannot add key {key.name!r}: {exc.diag.message_primary}") from None
        except psycopg.Error as exc:
            raise self._failed(exc, "add a key") from None

    def get_key(self, key_id: str) -> IssuedKey | None:
        rows = self._read(f"SELECT {KEY_COLUMNS} FROM keys WHERE id = %s", (key_id,))
        return key_record(rows[0]) if rows else None

    def keys_named(self, name: str) -> list[IssuedKey]:
        rows = self._read(f"SELECT {KEY_COLUMNS} FROM keys WHERE name = %s ORDER BY created_at DESC, seq DESC",
                          (name,))
        return [key_record(r) for r in rows]

    def list_keys(self) -> list[IssuedKey]:
        return [key_record(r) for r in self._read(f"SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at, seq")]

    def _change(self, key_id: str, sql: str, params: Sequence[object], conflict: str, doing: str) -> IssuedKey:
        psycopg = self._psycopg
        try:
            with self._tx(doing) as conn:
                row = conn.execute(sql + f" RETURNING {KEY_COLUMNS}", params).fetchone()
                if row is not None:
                    return key_record(row)
                exists = conn.execute("SELECT name, revoked_at FROM keys WHERE id = %s", (key_id,)).fetchone()
        except psycopg.Error as exc:
            raise self._failed(exc, doing) from None
        if exists is None:
            raise KeyNotFound(f"no key with id {key_id!r}")
        if exists[1] is not None:
            raise KeyConflict(f"key {exists[0]} ({key_id}) was already revoked at {iso(exists[1])}")
        raise KeyConflict(conflict)

    def revoke_key(self, key_id: str, at: float) -> IssuedKey:
        return self._change(
            key_id, "UPDATE keys SET revoked_at = %s, old_digest = NULL, grace_until = NULL "
            "WHERE id = %s AND revoked_at IS NULL", (at, key_id),
            f"key {key_id} changed while revoking it; try again", "revoke a key")

    def rotate_key(
        self, key_id: str, *, expected_digest: bytes, digest: bytes, prefix: str,
        old_digest: bytes | None, grace_until: float | None,
    ) -> IssuedKey:
        return self._change(
            key_id, "UPDATE keys SET digest = %s, prefix = %s, old_digest = %s, grace_until = %s "
            "WHERE id = %s AND digest = %s AND revoked_at IS NULL",
            (digest, prefix, old_digest, grace_until, key_id, expected_digest),
            f"key {key_id} was rotated by someone else at the same time; nothing was changed", "rotate a key")

    def set_key_budget(self, key_id: str, *, day: float | None, month: float | None) -> IssuedKey:
        return self._change(
            key_id, "UPDATE keys SET budget_day = %s, budget_month = %s WHERE id = %s AND revoked_at IS NULL",
            (day, month, key_id), f"key {key_id} changed while setting its budget; try again", "set a budget")

    def keys_version(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE name = 'keys_version'", doing="read the key version")
        return opt_int(rows[0][0]) or 0 if rows else 0

    # Usage -------------------------------------------------------------------------------

    def set_request_log(self, policy: RequestLogPolicy | None, *, usage: bool = True) -> None:
        self._record_usage = usage
        self._log = policy if policy is not None and policy.enabled else None
        self._pruned_at = 0.0

    def add_usage(self, rows: Sequence[UsageRow]) -> None:
        """Usage rows and (request log on) the same requests into the log: one transaction,
        one COPY per table."""
        if not rows:
            return
        psycopg = self._psycopg
        log = self._log
        counted = [r for r in rows if not r.log_only] if self._record_usage else []
        batch_id = _batch_id(rows)
        try:
            with self._tx("record usage") as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO usage_batches (id, ts) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                            (batch_id, time.time()))
                if cur.rowcount == 0:
                    return  # committed before: a retry after the COMMIT's answer was lost
                if counted:
                    with cur.copy(_USAGE_COPY) as copy:
                        for r in counted:
                            copy.write_row(usage_values(r))
                if log is not None:
                    with cur.copy(_LOG_COPY) as copy:
                        for r in rows:
                            copy.write_row((*usage_values(r), r.latency_ms, r.attempts, r.error))
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY:
                    self._prune(cur, log)
        except psycopg.Error as exc:
            raise self._failed(exc, "record usage") from None

    def _prune(self, cur: psycopg.Cursor[tuple[Any, ...]], log: RequestLogPolicy | None) -> None:
        """Batch ids past any retry, and the request log to its bounds (in the writer's transaction)."""
        self._pruned_at = time.monotonic()
        cur.execute("DELETE FROM usage_batches WHERE ts < %s", (time.time() - BATCH_ID_TTL,))
        if log is not None:
            cur.execute("DELETE FROM request_log WHERE ts < %s", (time.time() - log.retention_seconds,))
            cur.execute("DELETE FROM request_log WHERE id <= (SELECT id FROM request_log "
                        "ORDER BY id DESC LIMIT 1 OFFSET %s)", (log.max_rows,))

    def recent_requests(self, where: RequestFilter) -> list[RequestEntry]:
        clause, params = request_log_where(where, "%s")
        sql = LOG_SELECT + clause + " ORDER BY r.id DESC LIMIT %s"
        rows = self._read(sql, [*params, request_log_limit(where)])
        return [entry(r) for r in rows]

    def usage_series(self, *, since: float, bucket: int, by: GroupBy | None) -> list[UsagePoint]:
        column = GROUP_COLUMN[by] if by is not None else "NULL::text"  # from a fixed table
        size = max(1, int(bucket))
        rows = self._read(
            f"SELECT floor(u.ts / {size}) * {size} AS b, {column}, COUNT(*), "
            "COUNT(*) FILTER (WHERE u.status >= 400), COALESCE(SUM(u.input_tokens), 0), "
            "COALESCE(SUM(u.output_tokens), 0), COALESCE(SUM(u.cache_read_tokens), 0), "
            "COALESCE(SUM(u.cache_creation_tokens), 0) FROM usage u WHERE u.ts >= %s "
            f"GROUP BY b, {column} ORDER BY b",
            (since,),
        )
        return [
            UsagePoint(bucket=float(r[0]), group=None if r[1] is None else str(r[1]),
                       requests=opt_int(r[2]) or 0, errors=opt_int(r[3]) or 0,
                       input_tokens=opt_int(r[4]) or 0, output_tokens=opt_int(r[5]) or 0,
                       cache_read_tokens=opt_int(r[6]) or 0, cache_creation_tokens=opt_int(r[7]) or 0)
            for r in rows
        ]

    def spend_by_key(self, since: float) -> dict[str, float]:
        rows = self._read("SELECT key_id, SUM(cost_usd) FROM usage WHERE ts >= %s AND key_id IS NOT NULL "
                          "AND cost_usd IS NOT NULL GROUP BY key_id", (since,), doing="read spending")
        return {str(r[0]): float(r[1]) for r in rows}

    def last_success(self, since: float) -> dict[str, float]:
        rows = self._read("SELECT provider, MAX(ts) FROM request_log WHERE ts >= %s AND status < 400 "
                          "AND provider IS NOT NULL GROUP BY provider", (since,))
        return {str(r[0]): float(r[1]) for r in rows}

    def usage_summary(self, *, since: float | None, by: GroupBy) -> list[UsageGroup]:
        column = GROUP_COLUMN[by]  # from a fixed table: never user text in the SQL
        label = "MAX(k.name)" if by == "key" else "NULL::text"
        join = "LEFT JOIN keys k ON k.id = u.key_id" if by == "key" else ""
        where, params = ("WHERE u.ts >= %s", (since,)) if since is not None else ("", ())
        rows = self._read(
            f"SELECT {column}, {label}, COUNT(*), COUNT(*) FILTER (WHERE u.status >= 400), "
            "COALESCE(SUM(u.input_tokens), 0), COALESCE(SUM(u.output_tokens), 0), "
            "COALESCE(SUM(u.cache_read_tokens), 0), COALESCE(SUM(u.cache_creation_tokens), 0), "
            "MIN(u.ts), MAX(u.ts), COALESCE(SUM(u.cost_usd), 0), COALESCE(SUM(u.cache_write_1h_tokens), 0), "
            f"COUNT(*) FILTER (WHERE u.cost_usd IS NULL AND {USED_TOKENS}) "
            f"FROM usage u {join} {where} GROUP BY {column} ORDER BY "
            "SUM(u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_creation_tokens) DESC, "
            f"COUNT(*) DESC, {column} NULLS FIRST",
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


def _batch_id(rows: Sequence[UsageRow]) -> bytes:
    """A digest of everything a batch writes: the same rows retried give the same id. Rows carry
    the gateway's request id and a microsecond timestamp, so two different batches never do."""
    h = hashlib.blake2b(digest_size=16)
    for r in rows:
        h.update(repr((*usage_values(r), r.latency_ms, r.attempts, r.error, r.log_only)).encode())
    return h.digest()


def url_text(url: StoreURL) -> str:
    """The URL for messages: no password, no query string (it may hold sslkey paths, options)."""
    return url.redacted.split("?", 1)[0]
