"""login/accounts.py: a developer's key, created once even when two processes sign the same
developer in at the same moment (workers, replicas on one store)."""

from __future__ import annotations

from pathlib import Path

from ccgate.login.accounts import DeveloperKeys, key_name
from ccgate.login.tokens import Identity
from ccgate.store import IssuedKey, KeyManager, SQLiteStore

ADA = Identity(sub="ada-1", email="ada@example.test", name="Ada", groups=())


class LateReader(SQLiteStore):
    """A store whose first name lookup misses a key another process is creating meanwhile."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.misses = 1

    def keys_named(self, name: str) -> list[IssuedKey]:
        if self.misses:
            self.misses -= 1
            KeyManager(SQLiteStore(self.path)).create(name)  # the other process wins the race
            return []
        return list(super().keys_named(name))


def test_the_first_sign_in_creates_the_key_and_the_next_reuses_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "ccgate.db")
    keys = DeveloperKeys(store, None)
    first = keys.key_for(ADA)
    assert first.name == key_name(ADA) and keys.key_for(ADA).id == first.id


def test_a_key_created_by_another_process_meanwhile_is_used_not_an_error(tmp_path: Path) -> None:
    store = LateReader(tmp_path / "ccgate.db")
    key = DeveloperKeys(store, None).key_for(ADA)
    assert store.misses == 0
    assert [k.id for k in store.keys_named(key_name(ADA))] == [key.id]  # one key, theirs
