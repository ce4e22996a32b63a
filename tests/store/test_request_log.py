"""The request log (store.request_log): written with the usage rows in one transaction, read
back newest first with filters, bounded by retention and row count; usage series per bucket."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ccgate.store import RequestFilter, RequestLogPolicy, SQLiteStore, UsageRecorder, UsageRow
from ccgate.store import sqlite as sqlite_module


def row(ts: float, status: int = 200, **kw: object) -> UsageRow:
    base: dict[str, object] = {"model": "claude-sonnet-4-5", "provider": "lab", "input_tokens": 10,
                               "output_tokens": 5, "latency_ms": 12.5}
    return UsageRow(ts=ts, status=status, **{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "ccgate.db")
    s.set_request_log(RequestLogPolicy(enabled=True, retention_seconds=3600, max_rows=1000))
    return s


def test_one_write_fills_usage_and_the_log(store: SQLiteStore) -> None:
    now = time.time()
    store.add_usage([row(now - 2, request_id="r1", session_id="s1"),
                     row(now - 1, 429, request_id="r2", attempts="lab#0 429, lab#1 429", error="rate limited")])
    entries = store.recent_requests(RequestFilter())
    assert [e.request_id for e in entries] == ["r2", "r1"]  # newest first
    assert entries[0].attempts == "lab#0 429, lab#1 429" and entries[0].error == "rate limited"
    assert entries[1].latency_ms == 12.5 and entries[1].session_id == "s1" and entries[1].input_tokens == 10
    assert sum(g.requests for g in store.usage_summary(since=None, by="model")) == 2
    assert [e.request_id for e in store.recent_requests(RequestFilter(errors=True))] == ["r2"]
    assert [e.request_id for e in store.recent_requests(RequestFilter(status=200))] == ["r1"]
    assert store.recent_requests(RequestFilter(provider="other")) == []
    assert len(store.recent_requests(RequestFilter(limit=1))) == 1


def test_key_filter_matches_id_or_name(store: SQLiteStore) -> None:
    from ccgate.store import KeyManager

    key, _ = KeyManager(store).create("alice")
    store.add_usage([row(time.time(), key_id=key.id), row(time.time(), key_id="config:ci")])
    assert [e.key_name for e in store.recent_requests(RequestFilter(key="alice"))] == ["alice"]
    assert [e.key_id for e in store.recent_requests(RequestFilter(key="config:ci"))] == ["config:ci"]


def test_the_log_is_off_unless_enabled_and_usage_can_be_off(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "ccgate.db")
    s.add_usage([row(time.time())])
    assert s.recent_requests(RequestFilter()) == []  # a plain store: usage only
    s.set_request_log(RequestLogPolicy(), usage=False)
    s.add_usage([row(time.time())])
    assert len(s.recent_requests(RequestFilter())) == 1
    assert sum(g.requests for g in s.usage_summary(since=None, by="model")) == 1


def test_retention_and_max_rows_prune(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    store.set_request_log(RequestLogPolicy(enabled=True, retention_seconds=3600, max_rows=5))
    store.add_usage([row(now - 7200, request_id="old")] + [row(now - i, request_id=f"r{i}") for i in range(8, 0, -1)])
    ids = [e.request_id for e in store.recent_requests(RequestFilter())]
    assert ids == ["r1", "r2", "r3", "r4", "r5"]  # the old one by age, then the oldest beyond 5
    # Usage rows are not the log's: all nine are still counted.
    assert sum(g.requests for g in store.usage_summary(since=None, by="model")) == 9
    # Pruning runs at most once a minute.
    store.add_usage([row(now, request_id=f"n{i}") for i in range(3)])
    assert len(store.recent_requests(RequestFilter())) == 8
    monkeypatch.setattr(sqlite_module, "PRUNE_EVERY", 0.0)
    store.add_usage([row(now, request_id="last")])
    assert len(store.recent_requests(RequestFilter())) == 5


def test_usage_series_buckets_and_last_success(store: SQLiteStore) -> None:
    t = 1_800_000_000.0  # a multiple of 60
    store.add_usage([row(t + 1), row(t + 59, input_tokens=1), row(t + 61, 502, provider="b"),
                     row(t + 62, cache_read_tokens=7)])
    points = store.usage_series(since=t, bucket=60, by="provider")
    assert [(p.bucket, p.group, p.requests, p.errors, p.input_tokens) for p in points] == [
        (t, "lab", 2, 0, 11), (t + 60, "b", 1, 1, 10), (t + 60, "lab", 1, 0, 10)]
    total = store.usage_series(since=t, bucket=60, by=None)
    assert [(p.bucket, p.requests, p.cache_read_tokens) for p in total] == [(t, 2, 0), (t + 60, 2, 7)]
    assert store.last_success(t) == {"lab": t + 62}


def test_recorder_writes_the_log_off_the_caller(store: SQLiteStore) -> None:
    recorder = UsageRecorder(store, interval=0.01)
    recorder.record(row(time.time(), request_id="via-recorder", error=None))
    assert recorder.flush(5)
    recorder.close()
    assert [e.request_id for e in store.recent_requests(RequestFilter())] == ["via-recorder"]


def test_batches_of_any_size_are_written_whole_and_in_order(tmp_path: Path) -> None:
    """Every batch size from 1 to 150 rows (and log-only rows in between) goes in with the fixed
    statement sizes: each row once in the log, each counted row once in usage, in order."""
    store = SQLiteStore(tmp_path / "ccgate.db")
    store.set_request_log(RequestLogPolicy(enabled=True, retention_seconds=3600, max_rows=100_000))
    now, n, expected_usage = time.time(), 0, 0
    for size in range(1, 151):
        batch = [row(now, request_id=f"r{n + i}", log_only=(n + i) % 7 == 0) for i in range(size)]
        expected_usage += sum(not r.log_only for r in batch)
        store.add_usage(batch)
        n += size
    conn = store._conn()
    log_ids = [r[0] for r in conn.execute("SELECT request_id FROM request_log ORDER BY id")]
    assert log_ids == [f"r{i}" for i in range(n)]
    usage_ids = [r[0] for r in conn.execute("SELECT request_id FROM usage ORDER BY rowid")]
    assert usage_ids == [f"r{i}" for i in range(n) if i % 7]
    assert len(usage_ids) == expected_usage


def test_a_batch_is_cut_into_statements_of_the_fixed_sizes_only() -> None:
    for count in (0, 1, 3, 4, 17, 63, 64, 65, 100, 500):
        parts = list(sqlite_module._statements(count))
        assert sum(size for _, size in parts) == count
        assert [start for start, _ in parts] == [sum(s for _, s in parts[:i]) for i in range(len(parts))]
        assert {size for _, size in parts} <= set(sqlite_module._STATEMENT_ROWS)
    assert list(sqlite_module._statements(100)) == [(0, 64), (64, 16), (80, 16), (96, 4)]
