"""Migrations on PostgreSQL: a database at schema 1 (written by raw SQL) or at any later version
upgrades in place with its data; replicas starting together on a fresh database do not race;
a foreign, newer or absent database is refused without a change.

"The previous release" for PostgreSQL: this backend is new, so no released ccgate ever wrote a
PostgreSQL database. Its migrations replay the same numbered history as SQLite's (1 to LATEST),
so these tests build databases at each earlier version and upgrade them, starting from version
1 written by hand below (not taken from MIGRATIONS, so an edited released step would show).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import pytest

from ccgate.store import KeyCache, KeyManager, StoreError, StoreMissing, StoreURL, UsageRow, open_store
from ccgate.store.migrations import LATEST, MIGRATIONS
from ccgate.store.postgres import PostgresStore
from tests.store.conftest import T0, FakeClock

pytestmark = pytest.mark.lab

PG_V1_SQL = (
    """CREATE TABLE keys (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
        digest BYTEA NOT NULL UNIQUE, models TEXT NOT NULL DEFAULT '[]', rpm BIGINT, tpm BIGINT,
        created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION,
        seq BIGINT GENERATED ALWAYS AS IDENTITY)""",
    """CREATE TABLE usage (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts DOUBLE PRECISION NOT NULL,
        key_id TEXT, model TEXT, provider TEXT, status INTEGER NOT NULL,
        input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0,
        cache_read_tokens BIGINT NOT NULL DEFAULT 0, cache_creation_tokens BIGINT NOT NULL DEFAULT 0)""",
    "CREATE INDEX usage_ts ON usage(ts)",
    "CREATE TABLE ccgate_schema (version INTEGER NOT NULL)",
    "INSERT INTO ccgate_schema VALUES (1)",
)
V1_SECRET = "ccg_" + "A" * 43  # fixed test values, never real keys
V1_REVOKED_SECRET = "ccg_" + "B" * 43


def run_sql(url: str, statements: Any, params: Any = None) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cur = conn.execute(statement, params)
            if cur.description is not None:
                rows = list(cur.fetchall())
        return rows


def write_v1(url: str) -> None:
    run_sql(url, PG_V1_SQL)
    sha = hashlib.sha256
    run_sql(url, ["INSERT INTO keys (id, name, prefix, digest, models, rpm, created_at, expires_at) "
                  "VALUES ('key_00000000000000a1', 'alice', 'ccg_AAAAAAAA', %s, %s, 60, %s, %s)"],
            (sha(V1_SECRET.encode()).digest(), json.dumps(["claude-*"]), T0 - 100, T0 + 86400))
    run_sql(url, ["INSERT INTO keys (id, name, prefix, digest, created_at, revoked_at) "
                  "VALUES ('key_00000000000000b2', 'bob', 'ccg_BBBBBBBB', %s, %s, %s)"],
            (sha(V1_REVOKED_SECRET.encode()).digest(), T0 - 90, T0 - 50))
    for i in range(5):
        run_sql(url, ["INSERT INTO usage (ts, key_id, model, provider, status, input_tokens, output_tokens, "
                      "cache_read_tokens, cache_creation_tokens) VALUES (%s, 'key_00000000000000a1', "
                      "'claude-sonnet', 'anthropic', 200, 10, 20, 30, 40)"], (T0 - 60 + i,))


def version_of(url: str) -> int:
    return int(run_sql(url, ["SELECT version FROM ccgate_schema"])[0][0])


def test_v1_database_upgrades_in_place_with_its_data(pg_url: str) -> None:
    write_v1(pg_url)
    store = open_store(StoreURL(pg_url))
    clock = FakeClock()
    try:
        assert isinstance(store, PostgresStore) and store.migrated_from == 1 and version_of(pg_url) == LATEST
        alice, bob = store.list_keys()
        assert (alice.name, alice.models, alice.rpm, alice.expires_at) == ("alice", ("claude-*",), 60, T0 + 86400)
        assert bob.revoked_at == T0 - 50
        cache = KeyCache(store, clock=clock, monotonic=clock)
        cache.reload()
        assert cache.authenticate(V1_SECRET) == alice
        assert cache.check(V1_REVOKED_SECRET).verdict == "revoked"
        [group] = store.usage_summary(since=None, by="key")
        assert (group.label, group.requests, group.input_tokens, group.cache_creation_tokens) == ("alice", 5, 50, 200)

        # What later versions added works on the upgraded database: rotation with grace, a
        # revoked key's name reused (v1 had UNIQUE(name)), the change counter's trigger, cost.
        keys = KeyManager(store, clock)
        version = store.keys_version()
        rotated, new_secret = keys.rotate("alice", grace=3600)
        assert store.keys_version() > version
        cache.reload()
        assert cache.authenticate(V1_SECRET) == rotated and cache.authenticate(new_secret) == rotated
        bob2, _ = keys.create("bob")
        assert keys.resolve("bob") == bob2 != bob
        store.add_usage([UsageRow(ts=T0, status=200, key_id=alice.id, session_id="s", cost_usd=0.25)])
        assert store.spend_by_key(T0 - 1) == {alice.id: 0.25}
    finally:
        store.close()
    again = open_store(StoreURL(pg_url))  # a no-op the second time
    try:
        assert isinstance(again, PostgresStore) and again.migrated_from == LATEST
    finally:
        again.close()


def test_every_intermediate_version_upgrades(postgres_server: Any) -> None:
    for stop in range(1, LATEST):
        url = postgres_server.url(postgres_server.create_database(f"v{stop}"))
        run_sql(url, ["CREATE TABLE ccgate_schema (version INTEGER NOT NULL)", "INSERT INTO ccgate_schema VALUES (0)"])
        for step in MIGRATIONS[:stop]:
            run_sql(url, [*step.postgres, f"UPDATE ccgate_schema SET version = {step.version}"])
        store = open_store(StoreURL(url))
        try:
            assert isinstance(store, PostgresStore) and store.migrated_from == stop and version_of(url) == LATEST
            KeyManager(store).create("works")
        finally:
            store.close()


def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    stores: list[Any] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(4)

    def start() -> None:
        gate.wait()
        try:
            stores.append(open_store(StoreURL(pg_url)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not errors and len(stores) == 4
        assert sorted(s.migrated_from for s in stores) == [0, LATEST, LATEST, LATEST]
        assert run_sql(pg_url, ["SELECT count(*) FROM meta"]) == [(1,)]
        KeyManager(stores[0]).create("a")
        assert stores[3].keys_version() == stores[0].keys_version()  # one counter for everyone
    finally:
        for s in stores:
            s.close()


def test_foreign_newer_and_absent_databases_are_refused(postgres_server: Any) -> None:
    absent = postgres_server.url(postgres_server.create_database("absent"))
    with pytest.raises(StoreMissing):
        open_store(StoreURL(absent), create=False)
    assert run_sql(absent, ["SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"]) == [(0,)]

    foreign = postgres_server.url(postgres_server.create_database("foreign"))
    run_sql(foreign, ["CREATE TABLE notes (x TEXT)"])
    with pytest.raises(StoreError, match="not a ccgate store"):
        open_store(StoreURL(foreign))
    assert run_sql(foreign, ["SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"]) == [(1,)]

    newer = postgres_server.url(postgres_server.create_database("newer"))
    run_sql(newer, ["CREATE TABLE ccgate_schema (version INTEGER NOT NULL)",
                    f"INSERT INTO ccgate_schema VALUES ({LATEST + 1})"])
    with pytest.raises(StoreError, match="written by a newer ccgate") as caught:
        open_store(StoreURL(newer))
    assert "pg-Test" not in str(caught.value) and ":***@" in str(caught.value)


def test_a_failing_step_leaves_the_database_as_it_was(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ccgate.store import migrations as migrations_module
    from ccgate.store import postgres as postgres_module
    from ccgate.store.migrations import Migration

    write_v1(pg_url)
    broken = (*MIGRATIONS, Migration(LATEST + 1, "broken", (), ("CREATE TABLE extra (x TEXT)", "NOT SQL")))
    monkeypatch.setattr(migrations_module, "MIGRATIONS", broken)
    monkeypatch.setattr(postgres_module, "MIGRATIONS", broken)
    monkeypatch.setattr(postgres_module, "LATEST", LATEST + 1)
    with pytest.raises(StoreError):
        open_store(StoreURL(pg_url))
    assert version_of(pg_url) == 1  # every step rolled back with the broken one
    assert run_sql(pg_url, ["SELECT to_regclass('extra') IS NULL, to_regclass('meta') IS NULL"]) == [(True, True)]


def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreError, match="cannot reach the PostgreSQL store") as caught:
        open_store(StoreURL(f"postgresql://u:secret-pw@127.0.0.1:{port}/x"))
    assert "secret-pw" not in str(caught.value)


def test_a_schema_5_database_upgrades_with_its_data(pg_url: str) -> None:
    """Schema 5 (what SQLite's previous release had: budgets, cost, the request log) built on
    PostgreSQL with data, then opened: version 6 adds usage_batches, nothing else moves."""
    run_sql(pg_url, ["CREATE TABLE ccgate_schema (version INTEGER NOT NULL)", "INSERT INTO ccgate_schema VALUES (0)"])
    for step in MIGRATIONS[:5]:
        run_sql(pg_url, [*step.postgres, f"UPDATE ccgate_schema SET version = {step.version}"])
    run_sql(pg_url, ["INSERT INTO keys (id, name, prefix, digest, created_at, budget_day, budget_month) "
                     "VALUES ('key_00000000000000a1', 'alice', 'ccg_AAAAAAAA', %s, %s, 5.0, 100.0)"],
            (hashlib.sha256(V1_SECRET.encode()).digest(), T0 - 100))
    run_sql(pg_url, ["INSERT INTO usage (ts, key_id, model, status, input_tokens, cost_usd, cache_write_1h_tokens) "
                     "VALUES (%s, 'key_00000000000000a1', 'claude-opus-5', 200, 10, 0.75, 3)"], (T0 - 10,))
    run_sql(pg_url, ["INSERT INTO request_log (ts, key_id, status, latency_ms, attempts) "
                     "VALUES (%s, 'key_00000000000000a1', 200, 12.5, 'a#0 529, a#1 200')"], (T0 - 10,))
    before = store_version = 0
    store = open_store(StoreURL(pg_url))
    try:
        assert isinstance(store, PostgresStore)
        before, store_version = store.migrated_from, version_of(pg_url)
        [alice] = store.list_keys()
        assert (alice.budget_day, alice.budget_month) == (5.0, 100.0)
        assert store.spend_by_key(T0 - 100) == {alice.id: 0.75}
        [group] = store.usage_summary(since=None, by="key")
        assert (group.cache_write_1h_tokens, group.cost_usd, group.label) == (3, 0.75, "alice")
        from ccgate.store import RequestFilter

        [entry] = store.recent_requests(RequestFilter())
        assert (entry.key_name, entry.latency_ms, entry.attempts) == ("alice", 12.5, "a#0 529, a#1 200")
    finally:
        store.close()
    assert (before, store_version) == (5, LATEST)
    assert run_sql(pg_url, ["SELECT to_regclass('usage_batches') IS NOT NULL"]) == [(True,)]
