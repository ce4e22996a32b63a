"""The SQLite store through KeyManager: create, list, revoke, rotate, usage; file safety."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from ccgate.store import (
    DuplicateKeyName,
    InvalidInput,
    KeyConflict,
    KeyManager,
    KeyNotFound,
    SQLiteStore,
    StoreError,
    StoreMissing,
    UsageRow,
    key_summary,
    open_store,
)
from ccgate.store.keys import digest
from ccgate.store.migrations import LATEST
from tests.store.conftest import T0, FakeClock, dump


def test_create_stores_only_a_hash(sqlite_store: SQLiteStore, clock: FakeClock, db_path: Path) -> None:
    store = sqlite_store
    key, secret = KeyManager(store, clock).create("alice", models=["claude-*"], rpm=60, tpm=100_000,
                                                  expires_in=90 * 86400)
    assert secret.startswith("ccg_") and len(secret) >= 4 + 43
    assert key.prefix == secret[:12] and key.digest == digest(secret)
    assert (key.models, key.rpm, key.tpm) == (("claude-*",), 60, 100_000)
    assert key.created_at == T0 and key.expires_at == T0 + 90 * 86400
    assert store.get_key(key.id) == key
    raw = db_path.read_bytes() + Path(f"{db_path}-wal").read_bytes()
    assert secret.encode() not in raw and secret[12:].encode() not in raw
    assert secret not in repr(key) and "digest" not in str(key_summary(key, clock()))


def test_secrets_are_unique_and_random(store: SQLiteStore) -> None:
    keys = KeyManager(store)
    secrets = {keys.create(f"k{i}")[1] for i in range(20)}
    assert len(secrets) == 20


def test_duplicate_name_refused_until_revoked(store: SQLiteStore, clock: FakeClock) -> None:
    keys = KeyManager(store, clock)
    first, _ = keys.create("alice")
    with pytest.raises(DuplicateKeyName, match="a key named 'alice' already exists"):
        keys.create("alice")
    keys.revoke("alice")
    clock.advance(1)
    second, _ = keys.create("alice")
    assert keys.resolve("alice") == second  # the unrevoked one wins
    assert [k.id for k in store.keys_named("alice")] == [second.id, first.id]


def test_invalid_input_changes_nothing(sqlite_store: SQLiteStore, db_path: Path) -> None:
    keys = KeyManager(sqlite_store)
    before = dump(db_path)
    for kwargs in ({"name": "bad name"}, {"name": "ok", "models": ["claude-[x"]}, {"name": "ok", "rpm": -1},
                   {"name": "ok", "tpm": 0}):
        with pytest.raises(InvalidInput):
            keys.create(**kwargs)  # type: ignore[arg-type]
    assert dump(db_path) == before


def test_revoke(store: SQLiteStore, clock: FakeClock) -> None:
    keys = KeyManager(store, clock)
    key, _ = keys.create("alice")
    clock.advance(10)
    revoked = keys.revoke(key.id)
    assert revoked.revoked_at == T0 + 10 and revoked.status(clock()) == "revoked"
    with pytest.raises(KeyConflict, match="already revoked"):
        keys.revoke(key.id)
    with pytest.raises(KeyNotFound, match="no key with id 'key_0000000000000000'"):
        keys.revoke("key_0000000000000000")
    with pytest.raises(KeyNotFound, match="no key with id or name 'nobody'"):
        keys.revoke("nobody")


def test_rotate_with_and_without_grace(store: SQLiteStore, clock: FakeClock) -> None:
    keys = KeyManager(store, clock)
    key, old_secret = keys.create("alice")
    rotated, new_secret = keys.rotate("alice", grace=3600)
    assert new_secret != old_secret and rotated.digest == digest(new_secret)
    assert rotated.old_digest == digest(old_secret) and rotated.grace_until == T0 + 3600
    assert rotated.status(clock()) == "rotating" and rotated.id == key.id
    again, newest = keys.rotate(key.id)  # no grace: only the newest secret works
    assert again.digest == digest(newest) and again.old_digest is None and again.grace_until is None
    assert again.status(clock()) == "active"


def test_rotate_refuses_revoked_expired_and_concurrent(store: SQLiteStore, clock: FakeClock) -> None:
    keys = KeyManager(store, clock)
    gone, _ = keys.create("gone")
    keys.revoke("gone")
    with pytest.raises(KeyConflict, match="is revoked"):
        keys.rotate(gone.id)
    short, _ = keys.create("short", expires_in=60)
    clock.advance(61)
    with pytest.raises(KeyConflict, match="expired"):
        keys.rotate("short")
    live, _ = keys.create("live")
    store.rotate_key(live.id, expected_digest=live.digest, digest=b"x" * 32, prefix="ccg_x",
                     old_digest=None, grace_until=None)
    with pytest.raises(KeyConflict, match="rotated by someone else"):
        store.rotate_key(live.id, expected_digest=live.digest, digest=b"y" * 32, prefix="ccg_y",
                         old_digest=None, grace_until=None)
    assert short.status(clock()) == "expired"


def test_keys_version_moves_on_every_key_change(store: SQLiteStore) -> None:
    keys = KeyManager(store)
    seen = [store.keys_version()]
    key, _ = keys.create("a")
    seen.append(store.keys_version())
    keys.rotate(key.id, grace=60)
    seen.append(store.keys_version())
    keys.revoke(key.id)
    seen.append(store.keys_version())
    store.add_usage([UsageRow(ts=T0, status=200)])  # usage does not count as a key change
    seen.append(store.keys_version())
    assert seen[0] < seen[1] < seen[2] < seen[3] == seen[4]


def test_file_modes_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "ccgate.db"
    s = SQLiteStore(path)
    try:
        KeyManager(s).create("a")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(extra.stat().st_mode) == 0o600
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        conn.close()
    finally:
        s.close()


def test_missing_foreign_and_future_files(tmp_path: Path) -> None:
    with pytest.raises(StoreMissing):
        open_store(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the key store"):
        open_store(garbage)

    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a ccgate store"):
        open_store(foreign)
    assert dump(foreign) == ["BEGIN TRANSACTION;", "CREATE TABLE notes (x);", "COMMIT;"]

    future = tmp_path / "future.db"
    conn = sqlite3.connect(future)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(StoreError, match="written by a newer ccgate"):
        open_store(future)

    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)
    with pytest.raises(StoreError, match=r"mysql:// is not supported"):
        open_store("mysql://user:pw@127.0.0.1/ccgate")


def test_usage_summary_groups(store: SQLiteStore, clock: FakeClock) -> None:
    key, _ = KeyManager(store, clock).create("alice")
    rows = [
        UsageRow(ts=T0 - 10 * 86400, status=200, key_id=key.id, model="old", input_tokens=1000),
        UsageRow(ts=T0, status=200, key_id=key.id, model="claude-sonnet", provider="anthropic",
                 session_id="s1", request_id="r1", input_tokens=10, output_tokens=20,
                 cache_read_tokens=30, cache_creation_tokens=40),
        UsageRow(ts=T0 + 1, status=429, key_id=key.id, model="claude-sonnet", provider="anthropic",
                 session_id="s1", input_tokens=1),
        UsageRow(ts=T0 + 2, status=200, key_id="config:ci", model="deepseek-chat", provider="deepseek",
                 session_id="s2", input_tokens=5, output_tokens=5),
        UsageRow(ts=T0 + 3, status=499),
    ]
    store.add_usage(rows)
    since = T0 - 7 * 86400
    by_key = {g.group: g for g in store.usage_summary(since=since, by="key")}
    alice = by_key[key.id]
    assert (alice.label, alice.requests, alice.errors) == ("alice", 2, 1)
    assert (alice.input_tokens, alice.output_tokens, alice.cache_read_tokens, alice.cache_creation_tokens) == (
        11, 20, 30, 40)
    assert (alice.first_ts, alice.last_ts) == (T0, T0 + 1)
    assert by_key["config:ci"].label is None and by_key[None].errors == 1
    assert store.usage_summary(since=since, by="key")[0].group == key.id  # most tokens first
    assert {g.group: g.requests for g in store.usage_summary(since=since, by="model")} == {
        "claude-sonnet": 2, "deepseek-chat": 1, None: 1}
    assert {g.group: g.requests for g in store.usage_summary(since=since, by="provider")} == {
        "anthropic": 2, "deepseek": 1, None: 1}
    assert {g.group: g.requests for g in store.usage_summary(since=since, by="session")} == {
        "s1": 2, "s2": 1, None: 1}
    everything = store.usage_summary(since=None, by="model")
    assert sum(g.requests for g in everything) == 5 and everything[0].group == "old"


def test_many_threads_share_one_store(store: SQLiteStore) -> None:
    import threading

    def work(n: int) -> None:
        store.add_usage([UsageRow(ts=T0 + i, status=200, request_id=f"{n}-{i}") for i in range(50)])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(g.requests for g in store.usage_summary(since=None, by="key")) == 400


def test_closed_store_refuses_work(store: SQLiteStore) -> None:
    s = store
    s.close()
    import threading

    errors: list[Exception] = []

    def other_thread() -> None:
        try:
            s.list_keys()
        except StoreError as exc:
            errors.append(exc)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert errors and "closed" in str(errors[0])
