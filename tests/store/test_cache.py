"""KeyCache: hot-path lookups by digest, time checks on each call, ~1 s change polling."""

from __future__ import annotations

from pathlib import Path

from ccgate.store import IssuedKey, KeyCache, KeyManager, SQLiteStore, StoreError
from tests.store.conftest import FakeClock


class CountingStore:
    """Wraps a store and counts the calls the cache makes, to prove lookups skip the disk."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.calls = 0
        self.fail = False

    def keys_version(self) -> int:
        self.calls += 1
        if self.fail:
            raise StoreError("disk on fire")
        return self.inner.keys_version()

    def list_keys(self) -> list[IssuedKey]:
        self.calls += 1
        return self.inner.list_keys()


def make_cache(store: object, clock: FakeClock, mono: FakeClock) -> KeyCache:
    return KeyCache(store, clock=clock, monotonic=mono, poll_interval=1.0)  # type: ignore[arg-type]


def test_authenticate_valid_unknown_and_foreign_tokens(store: SQLiteStore, clock: FakeClock) -> None:
    key, secret = KeyManager(store, clock).create("alice", models=["claude-*"])
    cache = make_cache(store, clock, FakeClock(0))
    cache.reload()
    assert cache.authenticate(secret) == key and cache.authenticate(secret.encode()) == key
    assert cache.authenticate(secret + "x") is None
    assert cache.authenticate("ccg_" + "A" * 43) is None
    assert cache.authenticate("sk-ant-api03-something") is None and cache.authenticate("") is None
    assert key.allows_model("claude-sonnet-4-5") and not key.allows_model("gpt-4o")


def test_expiry_and_grace_are_checked_at_call_time(store: SQLiteStore, clock: FakeClock) -> None:
    keys = KeyManager(store, clock)
    key, secret = keys.create("short", expires_in=3600)
    rotated, new_secret = keys.rotate(key.id, grace=600)
    cache = make_cache(store, clock, FakeClock(0))
    cache.reload()
    assert cache.check(secret).verdict == "ok" and cache.check(new_secret).verdict == "ok"
    clock.advance(599)
    assert cache.authenticate(secret) == rotated
    clock.advance(1)  # grace over: the old secret stops, the new one goes on
    assert cache.check(secret).verdict == "grace_over" and cache.authenticate(secret) is None
    assert cache.authenticate(new_secret) == rotated
    clock.advance(3000)  # expired: both stop, no reload needed
    assert cache.check(new_secret).verdict == "expired"
    assert cache.check(new_secret).key == rotated


def test_no_store_access_between_polls(store: SQLiteStore, clock: FakeClock) -> None:
    counting = CountingStore(store)
    mono = FakeClock(0)
    _, secret = KeyManager(store, clock).create("alice")
    cache = make_cache(counting, clock, mono)
    cache.reload()
    calls = counting.calls
    for _ in range(1000):
        assert cache.authenticate(secret) is not None
    assert counting.calls == calls  # a thousand requests, no I/O
    mono.advance(1.0)
    cache.authenticate(secret)
    assert counting.calls == calls + 1  # one cheap version check, nothing changed: no reload


def test_changes_from_another_process_show_up_at_the_next_poll(db_path: Path, clock: FakeClock) -> None:
    gateway_store, cli_store = SQLiteStore(db_path), SQLiteStore(db_path)  # two connections, as two processes
    try:
        mono = FakeClock(0)
        cache = make_cache(gateway_store, clock, mono)
        cache.reload()
        key, secret = KeyManager(cli_store, clock).create("alice")
        assert cache.authenticate(secret) is None  # not yet polled
        mono.advance(1.0)
        assert cache.authenticate(secret) == key
        KeyManager(cli_store, clock).revoke("alice")
        assert cache.authenticate(secret) == key  # within the poll interval: still cached
        mono.advance(1.0)
        assert cache.check(secret).verdict == "revoked"
    finally:
        gateway_store.close()
        cli_store.close()


def test_apply_updates_this_process_at_once(store: SQLiteStore, clock: FakeClock) -> None:
    keys = KeyManager(store, clock)
    cache = make_cache(store, clock, FakeClock(0))
    cache.reload()
    key, secret = keys.create("alice")
    cache.apply(key)
    assert cache.authenticate(secret) == key
    rotated, new_secret = keys.rotate(key.id)
    cache.apply(rotated)
    assert cache.authenticate(secret) is None and cache.authenticate(new_secret) == rotated
    assert len(cache) == 1


def test_store_failure_keeps_serving_cached_keys(store: SQLiteStore, clock: FakeClock, caplog) -> None:  # type: ignore[no-untyped-def]
    counting = CountingStore(store)
    mono = FakeClock(0)
    key, secret = KeyManager(store, clock).create("alice")
    cache = make_cache(counting, clock, mono)
    cache.reload()
    counting.fail = True
    mono.advance(5)
    assert cache.authenticate(secret) == key
    assert "cannot refresh issued keys" in caplog.text and secret not in caplog.text
