"""Fixtures for the key and usage store: a fresh SQLite file per test and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ccgate.store import SQLiteStore, Store, StoreURL, open_store

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15): no test depends on the wall clock


class FakeClock:
    """Injected into KeyManager / KeyCache / AdminApi in place of time.time / time.monotonic."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ccgate.db"


# The store contract runs on both backends: SQLite in the fast suite, PostgreSQL (a real
# server, tests/lab/postgres.py) in the lab.
BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.lab)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[Store]:
    """The store under test, once per backend."""
    if request.param == "postgres":
        s: Store = open_store(StoreURL(request.getfixturevalue("pg_url")))
    else:
        s = SQLiteStore(db_path)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SQLiteStore]:
    """For what only the file backend has (file modes, WAL, the bytes on disk)."""
    s = SQLiteStore(db_path)
    yield s
    s.close()


def dump(path: Path) -> list[str]:
    """Every row of the database as SQL text: compare before/after to prove nothing changed."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()
