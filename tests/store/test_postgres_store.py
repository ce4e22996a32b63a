"""What only the PostgreSQL store has: a retried batch is written once even when its COMMIT's
answer was lost, every statement is bounded by statement_timeout, a pooled connection that
died is replaced, and nothing it says shows the password."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import pytest

from ccgate.store import KeyManager, PoolSettings, StoreUnavailable, StoreURL, UsageRecorder, UsageRow
from ccgate.store.postgres import PostgresStore
from tests.lab.postgres import PASSWORD
from tests.store.conftest import T0

pytestmark = pytest.mark.lab


class LostCommitAnswer(PostgresStore):
    """Commits the batch, then fails as if the connection dropped before the answer came."""

    lose = 2

    def add_usage(self, rows: Sequence[UsageRow]) -> None:
        super().add_usage(rows)
        if self.lose:
            self.lose -= 1
            raise StoreUnavailable("connection lost after COMMIT (test)")


def count(store: PostgresStore) -> tuple[int, int]:
    [(rows, distinct)] = store._read("SELECT count(*), count(DISTINCT request_id) FROM usage")
    return int(rows), int(distinct)


def test_a_batch_retried_after_a_lost_commit_answer_is_written_once(pg_url: str) -> None:
    store = LostCommitAnswer(StoreURL(pg_url))
    recorder = UsageRecorder(store, batch_size=10, interval=0.01, outage_retry=0.05)
    try:
        for i in range(25):
            recorder.record(UsageRow(ts=T0 + i, status=200, key_id="k", request_id=f"r{i}", input_tokens=1))
        deadline = time.monotonic() + 20
        while recorder.buffered and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recorder.flush(10) and recorder.buffered == 0 and store.lose == 0
        assert count(store) == (25, 25)  # without usage_batches the two retries would add 20 rows
    finally:
        recorder.close()
        store.close()


def test_every_statement_is_bounded_by_statement_timeout(pg_url: str) -> None:
    url = replace(StoreURL(pg_url), pool=PoolSettings(statement_timeout=0.3, connect_timeout=2))
    store = PostgresStore(url)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"statement timed out after 0\.3 s"):
            store._read("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3
        assert store.health()["reachable"] is False
        KeyManager(store).create("after")  # the pool is fine afterwards
        assert store.health()["reachable"] is True
    finally:
        store.close()


def test_pooled_connections_killed_by_the_server_are_replaced(pg_url: str) -> None:
    import psycopg

    store = PostgresStore(StoreURL(pg_url))
    try:
        KeyManager(store).create("a")
        with psycopg.connect(pg_url, autocommit=True) as admin:  # as a restart or a DBA would
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'ccgate' AND pid <> pg_backend_pid()")
        assert [k.name for k in store.list_keys()] == ["a"]  # no error for the caller
        health = store.health()
        assert health["reachable"] is True and PASSWORD not in repr(health) and ":***@" in str(health["location"])
    finally:
        store.close()
