"""Fixtures for the key and usage store: a fresh SQLite file per test and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ccgate.store import SQLiteStore

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


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStore]:
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
