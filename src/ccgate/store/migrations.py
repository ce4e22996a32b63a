"""Schema migrations for both stores: one ordered list of versions, applied in place.

Each version has its SQLite statements (``statements``) and its PostgreSQL statements
(``postgres``): one version sequence, the same numbers on both backends, so "schema 5" means
the same tables and columns wherever it lives. PostgreSQL's steps are applied by
``store/postgres.py`` (version in the ``ccgate_schema`` table, all steps in one transaction
under an advisory lock); SQLite's below.

Why hand-rolled and not Alembic + SQLAlchemy Core: the schema is four tables and a trigger,
the steps are plain DDL that differs per dialect anyway (BLOB/BYTEA, SQLite's table rebuild vs
ALTER ... DROP CONSTRAINT, triggers), and the stores write SQL directly for speed (multi-row
INSERT, COPY). Alembic would add two dependencies and a second schema description for ~20
statements, while the guarantees we need (all or nothing, one migrator at a time, refuse a
newer or foreign database) are a dozen lines per backend.

The schema version lives in ``PRAGMA user_version`` (a field in the database header, so it
is read without touching any table and changes atomically with the step's DDL). Opening a
file runs every step above its version in one ``BEGIN IMMEDIATE`` transaction: a crash
half way leaves the old version intact, and two processes opening an old file at once do not
both migrate it (the second sees the new version once it gets the lock).

Before an existing file is upgraded, a copy is written next to it (``<db>.v<N>.bak``).

Rules for new steps: append, never edit a released step; a step is a list of statements
(no ``executescript``: it commits on its own and would break the all-or-nothing upgrade).
SQLite cannot drop a constraint, so changing one means rebuilding the table (step 3).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ccgate.store.base import StoreError


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    statements: tuple[str, ...]  # SQLite
    postgres: tuple[str, ...] = ()  # PostgreSQL: the same change in its dialect


_KEY_COLUMNS_V3 = (
    "id, name, prefix, digest, models, rpm, tpm, created_at, expires_at, revoked_at, old_digest, grace_until"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "issued keys and usage rows", (
        """CREATE TABLE keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            digest BLOB NOT NULL UNIQUE,
            models TEXT NOT NULL DEFAULT '[]',
            rpm INTEGER,
            tpm INTEGER,
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL
        )""",
        """CREATE TABLE usage (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            key_id TEXT,
            model TEXT,
            provider TEXT,
            status INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_creation_tokens INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX usage_ts ON usage(ts)",
    ), postgres=(
        """CREATE TABLE keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            digest BYTEA NOT NULL UNIQUE,
            models TEXT NOT NULL DEFAULT '[]',
            rpm BIGINT,
            tpm BIGINT,
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION,
            revoked_at DOUBLE PRECISION,
            seq BIGINT GENERATED ALWAYS AS IDENTITY
        )""",
        """CREATE TABLE usage (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ts DOUBLE PRECISION NOT NULL,
            key_id TEXT,
            model TEXT,
            provider TEXT,
            status INTEGER NOT NULL,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_tokens BIGINT NOT NULL DEFAULT 0,
            cache_creation_tokens BIGINT NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX usage_ts ON usage(ts)",
    )),
    Migration(2, "key rotation with a grace period; Claude Code session and request id on usage", (
        "ALTER TABLE keys ADD COLUMN old_digest BLOB",
        "ALTER TABLE keys ADD COLUMN grace_until REAL",
        "CREATE UNIQUE INDEX keys_old_digest ON keys(old_digest) WHERE old_digest IS NOT NULL",
        "ALTER TABLE usage ADD COLUMN session_id TEXT",
        "ALTER TABLE usage ADD COLUMN request_id TEXT",
    ), postgres=(
        "ALTER TABLE keys ADD COLUMN old_digest BYTEA",
        "ALTER TABLE keys ADD COLUMN grace_until DOUBLE PRECISION",
        "CREATE UNIQUE INDEX keys_old_digest ON keys(old_digest) WHERE old_digest IS NOT NULL",
        "ALTER TABLE usage ADD COLUMN session_id TEXT",
        "ALTER TABLE usage ADD COLUMN request_id TEXT",
    )),
    Migration(3, "names unique among unrevoked keys only; keys_version change counter", (
        # Rebuild: the v1 UNIQUE(name) constraint cannot be dropped in place.
        """CREATE TABLE keys_v3 (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            digest BLOB NOT NULL UNIQUE,
            models TEXT NOT NULL DEFAULT '[]',
            rpm INTEGER,
            tpm INTEGER,
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL,
            old_digest BLOB,
            grace_until REAL
        )""",
        f"INSERT INTO keys_v3 ({_KEY_COLUMNS_V3}) SELECT {_KEY_COLUMNS_V3} FROM keys",
        "DROP TABLE keys",
        "ALTER TABLE keys_v3 RENAME TO keys",
        "CREATE UNIQUE INDEX keys_live_name ON keys(name) WHERE revoked_at IS NULL",
        "CREATE INDEX keys_name ON keys(name)",
        "CREATE UNIQUE INDEX keys_old_digest ON keys(old_digest) WHERE old_digest IS NOT NULL",
        # keys_version: bumped by triggers on any change to keys, whoever makes it (CLI, admin
        # API, another replica, hand-written SQL), so a running gateway can poll one row
        # instead of re-reading every key. PRAGMA data_version would also change on every
        # usage write and make the gateway reload keys constantly under traffic.
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO meta (name, value) VALUES ('keys_version', 1)",
        """CREATE TRIGGER keys_changed_insert AFTER INSERT ON keys BEGIN
            UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END""",
        """CREATE TRIGGER keys_changed_update AFTER UPDATE ON keys BEGIN
            UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END""",
        """CREATE TRIGGER keys_changed_delete AFTER DELETE ON keys BEGIN
            UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END""",
    ), postgres=(
        "ALTER TABLE keys DROP CONSTRAINT keys_name_key",
        "CREATE UNIQUE INDEX keys_live_name ON keys(name) WHERE revoked_at IS NULL",
        "CREATE INDEX keys_name ON keys(name)",
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        "INSERT INTO meta (name, value) VALUES ('keys_version', 1)",
        # One trigger per row as on SQLite; TRUNCATE has only statement triggers.
        """CREATE FUNCTION ccgate_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; RETURN NULL; END $$""",
        """CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OR DELETE ON keys
            FOR EACH ROW EXECUTE FUNCTION ccgate_keys_changed()""",
        """CREATE TRIGGER keys_truncated AFTER TRUNCATE ON keys
            FOR EACH STATEMENT EXECUTE FUNCTION ccgate_keys_changed()""",
    )),
    Migration(4, "request log for the console (bounded by store.request_log)", (
        # Usage rows are kept for reports; this table holds the same requests with what the
        # Requests page shows besides (latency, attempt trail, error) and is pruned to the
        # configured retention and row count. No request or response bodies.
        """CREATE TABLE request_log (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            request_id TEXT,
            key_id TEXT,
            model TEXT,
            provider TEXT,
            session_id TEXT,
            status INTEGER NOT NULL,
            latency_ms REAL,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
            attempts TEXT,
            error TEXT
        )""",
        "CREATE INDEX request_log_ts ON request_log(ts)",
    ), postgres=(
        """CREATE TABLE request_log (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ts DOUBLE PRECISION NOT NULL,
            request_id TEXT,
            key_id TEXT,
            model TEXT,
            provider TEXT,
            session_id TEXT,
            status INTEGER NOT NULL,
            latency_ms DOUBLE PRECISION,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_tokens BIGINT NOT NULL DEFAULT 0,
            cache_creation_tokens BIGINT NOT NULL DEFAULT 0,
            attempts TEXT,
            error TEXT
        )""",
        "CREATE INDEX request_log_ts ON request_log(ts)",
    )),
    Migration(5, "cost per usage row (1-hour cache writes apart); daily and monthly budgets per key", (
        # cost_usd NULL: the model had no price when the row was written (shown as unknown).
        "ALTER TABLE usage ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE usage ADD COLUMN cost_usd REAL",
        "ALTER TABLE request_log ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE request_log ADD COLUMN cost_usd REAL",
        "ALTER TABLE keys ADD COLUMN budget_day REAL",
        "ALTER TABLE keys ADD COLUMN budget_month REAL",
        # No new index: the budget tracker's seed (spend per key since the month began) is a
        # range scan on usage_ts, run at start and reload, not per request.
    ), postgres=(
        "ALTER TABLE usage ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE usage ADD COLUMN cost_usd DOUBLE PRECISION",
        "ALTER TABLE request_log ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE request_log ADD COLUMN cost_usd DOUBLE PRECISION",
        "ALTER TABLE keys ADD COLUMN budget_day DOUBLE PRECISION",
        "ALTER TABLE keys ADD COLUMN budget_month DOUBLE PRECISION",
    )),
    Migration(6, "PostgreSQL: ids of committed usage batches, so a retried batch is never written twice", (
        # Nothing on SQLite: a commit there is local, it either returned or did not happen.
    ), postgres=(
        # A batch whose COMMIT went through but whose answer was lost with the connection is
        # retried by the usage writer; its id (a digest of its rows) is found here and the
        # retry writes nothing. Ids older than a day are pruned.
        "CREATE TABLE usage_batches (id BYTEA PRIMARY KEY, ts DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX usage_batches_ts ON usage_batches(ts)",
    )),
)

LATEST = MIGRATIONS[-1].version
assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()
    return bool(row[0])


def migrate(conn: sqlite3.Connection, path: Path) -> tuple[int, int]:
    """Bring ``conn``'s database to ``LATEST``. Returns (version before, version after).

    ``conn`` must be in autocommit mode (isolation_level=None).
    """
    before = schema_version(conn)
    _refuse_unknown(conn, path, before)
    if before == LATEST:
        return before, before
    if before > 0:
        backup(conn, path, before)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)  # another process may have migrated while we waited
        _refuse_unknown(conn, path, current)
        for step in MIGRATIONS[current:]:
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step.version}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return before, LATEST


def _refuse_unknown(conn: sqlite3.Connection, path: Path, version: int) -> None:
    if version > LATEST:
        raise StoreError(
            f"{path} has schema version {version}, written by a newer ccgate (this one knows up to "
            f"{LATEST}); upgrade ccgate or point --db / CCGATE_DB at another file"
        )
    if version == 0 and _has_tables(conn):
        raise StoreError(f"{path} is an SQLite database but not a ccgate store; nothing was changed")


def backup(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    """A consistent copy of the database before it is upgraded, mode 0600."""
    target = path.with_name(f"{path.name}.v{version}.bak")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.v{version}.{n}.bak")
        n += 1
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    dest = sqlite3.connect(target)
    try:
        conn.backup(dest)
    finally:
        dest.close()
    return target
