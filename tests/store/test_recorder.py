"""UsageRecorder: non-blocking record(), batched commits, flush/close, overload and failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from ccgate.store import SQLiteStore, StoreError, UsageRecorder, UsageRow, session_id_from_headers
from tests.store.conftest import T0


def rows(n: int, start: int = 0) -> list[UsageRow]:
    return [UsageRow(ts=T0 + i, status=200, request_id=f"r{i}", input_tokens=1) for i in range(start, start + n)]


def total_requests(store: SQLiteStore) -> int:
    return sum(g.requests for g in store.usage_summary(since=None, by="key"))


def test_batches_of_batch_size_then_flush_commits_the_rest(store: SQLiteStore) -> None:
    batches: list[int] = []
    recorder = UsageRecorder(store, batch_size=100, interval=3600, on_commit=lambda b: batches.append(len(b)))
    for row in rows(250):
        recorder.record(row)
    assert recorder.flush(timeout=30)
    assert batches == [100, 100, 50] and total_requests(store) == 250 and recorder.written == 250
    recorder.close()


def test_interval_commits_without_flush(store: SQLiteStore) -> None:
    committed = threading.Event()
    recorder = UsageRecorder(store, batch_size=1000, interval=0.01, on_commit=lambda b: committed.set())
    recorder.record(rows(1)[0])
    assert committed.wait(timeout=30)  # a bound for a hung test, not a speed assertion
    assert total_requests(store) == 1
    recorder.close()


def test_close_commits_queued_rows_and_later_rows_are_dropped(store: SQLiteStore) -> None:
    recorder = UsageRecorder(store, batch_size=1000, interval=3600)
    for row in rows(30):
        recorder.record(row)
    recorder.close()
    assert total_requests(store) == 30
    recorder.record(rows(1, 99)[0])
    assert recorder.dropped == 1 and total_requests(store) == 30
    recorder.close()  # idempotent


class BlockingStore:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.rows: list[UsageRow] = []

    def add_usage(self, batch: Sequence[UsageRow]) -> None:
        self.entered.set()
        self.release.wait(timeout=60)
        self.rows.extend(batch)


def test_full_queue_drops_instead_of_blocking() -> None:
    slow = BlockingStore()
    recorder = UsageRecorder(slow, batch_size=1, interval=3600, max_pending=5)  # type: ignore[arg-type]
    recorder.record(rows(1)[0])
    assert slow.entered.wait(timeout=30)  # the writer is stuck in the disk
    for row in rows(20, 1):
        recorder.record(row)  # must return at once even though nothing drains
    assert recorder.dropped == 15
    slow.release.set()
    recorder.close()
    assert len(slow.rows) == 6 and recorder.written == 6


class FlakyStore:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.rows: list[UsageRow] = []

    def add_usage(self, batch: Sequence[UsageRow]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("database is locked")
        self.rows.extend(batch)


def test_transient_errors_are_retried() -> None:
    flaky = FlakyStore(failures=2)
    recorder = UsageRecorder(flaky, interval=3600, retry_delays=(0, 0))  # type: ignore[arg-type]
    for row in rows(10):
        recorder.record(row)
    recorder.close()
    assert len(flaky.rows) == 10 and recorder.failed == 0


def test_persistent_errors_drop_the_batch_and_keep_going(caplog: pytest.LogCaptureFixture) -> None:
    flaky = FlakyStore(failures=3)
    recorder = UsageRecorder(flaky, interval=3600, retry_delays=(0, 0))  # type: ignore[arg-type]
    for row in rows(10):
        recorder.record(row)
    assert recorder.flush(timeout=30)
    assert recorder.failed == 10 and "dropped 10 usage rows after retries" in caplog.text
    for row in rows(5, 10):
        recorder.record(row)
    recorder.close()
    assert len(flaky.rows) == 5 and recorder.written == 5


async def test_aclose_from_the_event_loop(store: SQLiteStore) -> None:
    recorder = UsageRecorder(store, interval=3600)
    recorder.record(rows(1)[0])
    await recorder.aclose()
    assert total_requests(store) == 1


def test_session_id_from_headers() -> None:
    assert session_id_from_headers([(b"x-claude-code-session-id", b" 3f2a-11 ")]) == "3f2a-11"
    assert session_id_from_headers([(b"other", b"x")]) is None
    assert session_id_from_headers([(b"x-claude-code-session-id", b"bad\x01value")]) is None
    assert len(session_id_from_headers([(b"x-claude-code-session-id", b"a" * 1000)]) or "") == 128


def test_a_row_recorded_during_a_commit_is_committed_without_further_traffic() -> None:
    slow = BlockingStore()
    recorder = UsageRecorder(slow, batch_size=1, interval=0.01)  # type: ignore[arg-type]
    recorder.record(rows(1)[0])
    assert slow.entered.wait(timeout=30)  # the writer is inside a commit
    recorder.record(rows(1, 1)[0])  # nothing else will arrive to wake it
    slow.release.set()
    for _ in range(3000):  # a bound for a hung test, not a speed assertion
        if len(slow.rows) == 2:
            break
        time.sleep(0.01)
    assert [r.request_id for r in slow.rows] == ["r0", "r1"]
    recorder.close()


def test_rows_from_many_threads_are_all_committed(store: SQLiteStore) -> None:
    recorder = UsageRecorder(store, batch_size=7, interval=0.005)
    threads = [threading.Thread(target=lambda s=s: [recorder.record(r) for r in rows(200, s)])
               for s in range(0, 1000, 200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.close()
    assert total_requests(store) == 1000 and recorder.written == 1000 and recorder.dropped == 0


def test_price_hook_and_call_in_writer_run_in_the_writer_between_commits(store: SQLiteStore) -> None:
    seen: list[tuple[str, int]] = []
    recorder = UsageRecorder(store, batch_size=1000, interval=30.0)
    recorder.price = lambda row: UsageRow(ts=row.ts, status=row.status, key_id="k", cost_usd=0.5)

    def count() -> int:
        seen.append((threading.current_thread().name, len(store.spend_by_key(0))))
        return int(store.spend_by_key(0).get("k", 0) * 2)

    try:
        for row in rows(3):
            recorder.record(row)
        # Urgent: runs without waiting out the 30 s interval, after the rows before it committed.
        assert recorder.call_in_writer(count).result(timeout=5) == 3
        assert seen == [("ccgate-usage-writer", 1)]
    finally:
        recorder.close()
    # After close it runs in the caller's thread.
    assert recorder.call_in_writer(lambda: threading.current_thread().name).result(timeout=1) == "MainThread"


def test_a_failing_price_hook_records_the_rows_without_a_cost(store: SQLiteStore) -> None:
    recorder = UsageRecorder(store)

    def broken(row: UsageRow) -> UsageRow:
        raise RuntimeError("pricing bug")

    recorder.price = broken
    try:
        for row in rows(2):
            recorder.record(row)
        assert recorder.flush(5)
    finally:
        recorder.close()
    assert total_requests(store) == 2 and recorder.failed == 0
