"""Upgrading an old store file in place: a v1 file written by raw SQL opens as the latest schema."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from ccgate.store import KeyCache, KeyManager, SQLiteStore, StoreError, UsageRow
from ccgate.store import migrations as migrations_module
from ccgate.store.migrations import LATEST, MIGRATIONS, Migration
from tests.store.conftest import T0, FakeClock, dump

# The v1 schema exactly as ccgate 0.1 wrote it. Deliberately not taken from MIGRATIONS: if a
# released step were edited by mistake, this fixture would still be the old file.
V1_SQL = """
CREATE TABLE keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
    digest BLOB NOT NULL UNIQUE, models TEXT NOT NULL DEFAULT '[]', rpm INTEGER, tpm INTEGER,
    created_at REAL NOT NULL, expires_at REAL, revoked_at REAL
);
CREATE TABLE usage (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, key_id TEXT, model TEXT, provider TEXT,
    status INTEGER NOT NULL, input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0, cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX usage_ts ON usage(ts);
PRAGMA user_version = 1;
"""
V1_SECRET = "ccg_" + "A" * 43  # a fixed test value, never a real key
V1_REVOKED_SECRET = "ccg_" + "B" * 43


def write_v1(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_SQL)
    sha = hashlib.sha256
    conn.execute(
        "INSERT INTO keys VALUES ('key_00000000000000a1', 'alice', 'ccg_AAAAAAAA', ?, ?, 60, NULL, ?, ?, NULL)",
        (sha(V1_SECRET.encode()).digest(), json.dumps(["claude-*"]), T0 - 100, T0 + 86400),
    )
    conn.execute(
        "INSERT INTO keys VALUES ('key_00000000000000b2', 'bob', 'ccg_BBBBBBBB', ?, '[]', NULL, NULL, ?, NULL, ?)",
        (sha(V1_REVOKED_SECRET.encode()).digest(), T0 - 90, T0 - 50),
    )
    conn.executemany(
        "INSERT INTO usage (ts, key_id, model, provider, status, input_tokens, output_tokens, "
        "cache_read_tokens, cache_creation_tokens) VALUES (?,?,?,?,?,?,?,?,?)",
        [(T0 - 60 + i, "key_00000000000000a1", "claude-sonnet", "anthropic", 200, 10, 20, 30, 40) for i in range(5)],
    )
    conn.commit()
    conn.close()


def version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_v1_file_upgrades_in_place_to_latest(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_v1(path)
    v1_dump = dump(path)

    store = SQLiteStore(path)
    clock = FakeClock()
    try:
        assert store.migrated_from == 1 and version_of(path) == LATEST
        alice, bob = store.list_keys()
        assert (alice.id, alice.name, alice.models, alice.rpm, alice.expires_at) == (
            "key_00000000000000a1", "alice", ("claude-*",), 60, T0 + 86400)
        assert alice.old_digest is None and alice.grace_until is None
        assert bob.revoked_at == T0 - 50

        # Secrets issued under v1 still authenticate; the revoked one is still refused.
        cache = KeyCache(store, clock=clock, monotonic=clock)
        assert cache.authenticate(V1_SECRET) == alice
        assert cache.check(V1_REVOKED_SECRET).verdict == "revoked"

        # Old usage rows are intact; new columns are empty for them.
        [group] = store.usage_summary(since=None, by="key")
        assert (group.group, group.label, group.requests, group.input_tokens, group.cache_creation_tokens) == (
            "key_00000000000000a1", "alice", 5, 50, 200)
        assert [g.group for g in store.usage_summary(since=None, by="session")] == [None]

        # What v2 and v3 added works on the upgraded file: rotation with grace, session ids,
        # reusing a revoked key's name (v1 had UNIQUE(name)), the change counter.
        keys = KeyManager(store, clock)
        version = store.keys_version()
        rotated, new_secret = keys.rotate("alice", grace=3600)
        assert store.keys_version() > version
        cache.reload()
        assert cache.authenticate(V1_SECRET) == rotated and cache.authenticate(new_secret) == rotated
        bob2, _ = keys.create("bob")
        assert keys.resolve("bob") == bob2
        store.add_usage([UsageRow(ts=T0, status=200, session_id="sess-1", request_id="req-1")])
        assert "sess-1" in [g.group for g in store.usage_summary(since=None, by="session")]
    finally:
        store.close()

    # A consistent copy of the v1 file was kept before the upgrade.
    backup = tmp_path / "old.db.v1.bak"
    assert version_of(backup) == 1 and dump(backup) == v1_dump

    # Opening again is a no-op: no second backup, same version.
    SQLiteStore(path).close()
    assert sorted(p.name for p in tmp_path.glob("*.bak")) == ["old.db.v1.bak"]


def test_every_intermediate_version_upgrades(tmp_path: Path) -> None:
    """A file left at any older version (here: built by running the steps up to N) opens."""
    for stop in range(1, LATEST):
        path = tmp_path / f"v{stop}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        for step in MIGRATIONS[:stop]:
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step.version}")
        conn.close()
        store = SQLiteStore(path)
        try:
            assert store.migrated_from == stop and version_of(path) == LATEST
            KeyManager(store).create("works")
        finally:
            store.close()


def test_failing_step_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    write_v1(path)
    before = dump(path)
    broken = (*MIGRATIONS, Migration(LATEST + 1, "broken", ("CREATE TABLE extra (x)", "THIS IS NOT SQL")))
    monkeypatch.setattr(migrations_module, "MIGRATIONS", broken)
    monkeypatch.setattr(migrations_module, "LATEST", LATEST + 1)
    with pytest.raises(StoreError, match="cannot open the key store"):
        SQLiteStore(path)
    assert version_of(path) == 1 and dump(path) == before


def test_a_file_of_the_previous_release_upgrades_with_its_data(tmp_path: Path) -> None:
    """Schema 5 is what the release before the PostgreSQL backend wrote: keys with budgets,
    priced usage, the request log. It opens as the latest version with all of it intact."""
    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:5]:
        for statement in step.statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {step.version}")
    sha = hashlib.sha256
    conn.execute("INSERT INTO keys (id, name, prefix, digest, models, created_at, budget_day, budget_month) "
                 "VALUES ('key_00000000000000a1', 'alice', 'ccg_AAAAAAAA', ?, '[]', ?, 5.0, 100.0)",
                 (sha(V1_SECRET.encode()).digest(), T0 - 100))
    conn.execute("INSERT INTO usage (ts, key_id, model, status, input_tokens, cost_usd, cache_write_1h_tokens) "
                 "VALUES (?, 'key_00000000000000a1', 'claude-opus-5', 200, 10, 0.75, 3)", (T0 - 10,))
    conn.execute("INSERT INTO request_log (ts, key_id, status, latency_ms, attempts) "
                 "VALUES (?, 'key_00000000000000a1', 200, 12.5, 'a#0 529, a#1 200')", (T0 - 10,))
    conn.close()

    store = SQLiteStore(path)
    try:
        assert store.migrated_from == 5 and version_of(path) == LATEST
        [alice] = store.list_keys()
        assert (alice.budget_day, alice.budget_month) == (5.0, 100.0)
        assert store.spend_by_key(T0 - 100) == {alice.id: 0.75}
        [group] = store.usage_summary(since=None, by="key")
        assert (group.cache_write_1h_tokens, group.cost_usd) == (3, 0.75)
        from ccgate.store import RequestFilter

        [entry] = store.recent_requests(RequestFilter())
        assert (entry.key_name, entry.latency_ms, entry.attempts) == ("alice", 12.5, "a#0 529, a#1 200")
    finally:
        store.close()
    assert version_of(tmp_path / "v5.db.v5.bak") == 5
