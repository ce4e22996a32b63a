"""ClientAuth with issued keys: one hash per request, the Client made once per key version,
and every change to the key (revocation, new limits, rotation) seen on the next request."""

from __future__ import annotations

import pytest

from ccgate.errors import AuthenticationFailed
from ccgate.server.auth import ClientAuth
from ccgate.store import KeyCache, KeyManager, SQLiteStore
from tests.store.conftest import FakeClock


def auth_for(store: SQLiteStore, clock: FakeClock) -> tuple[ClientAuth, KeyCache]:
    cache = KeyCache(store, clock=clock, monotonic=FakeClock(0), poll_interval=1.0)
    cache.reload()
    return ClientAuth({}, cache), cache


def test_the_client_of_an_unchanged_key_is_made_once(store: SQLiteStore, clock: FakeClock) -> None:
    key, secret = KeyManager(store, clock).create("alice", rpm=10)
    auth, _ = auth_for(store, clock)
    first = auth.authenticate(secret.encode(), None)
    assert first.key_id == key.id and first.issued == key and first.name == "alice"
    assert auth.authenticate(None, b"Bearer " + secret.encode()) is first
    own = auth.authenticate(None, b"Bearer sk-ant-oat-client", secret.encode())  # x-ccgate-key
    assert own.own_credential and own.key_id == key.id and not first.own_credential


def test_a_changed_key_gets_a_new_client_and_a_revoked_one_none(store: SQLiteStore, clock: FakeClock) -> None:
    manager = KeyManager(store, clock)
    key, secret = manager.create("bob", rpm=10)
    auth, cache = auth_for(store, clock)
    before = auth.authenticate(secret.encode(), None)
    cache.apply(manager.set_budget(key.id, day=5.0))  # what the admin API does
    after = auth.authenticate(secret.encode(), None)
    assert after is not before and after.issued is not None and after.issued.budget_day == 5.0
    cache.apply(manager.revoke(key.id))
    with pytest.raises(AuthenticationFailed, match="revoked"):
        auth.authenticate(secret.encode(), None)


def test_the_old_secret_of_a_rotation_works_until_its_grace_ends(store: SQLiteStore, clock: FakeClock) -> None:
    manager = KeyManager(store, clock)
    key, old = manager.create("carol")
    auth, cache = auth_for(store, clock)
    rotated, new = manager.rotate(key.id, grace=60)
    cache.apply(rotated)
    assert auth.authenticate(old.encode(), None).key_id == key.id
    assert auth.authenticate(new.encode(), None) is auth.authenticate(old.encode(), None)
    clock.advance(61)
    with pytest.raises(AuthenticationFailed, match="grace period is over"):
        auth.authenticate(old.encode(), None)
    assert auth.authenticate(new.encode(), None).key_id == key.id
