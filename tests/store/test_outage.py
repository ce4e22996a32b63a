"""The store unreachable (PostgreSQL down), without a server: the recorder holds rows in order
within its bound and catches up; the key cache serves what it has and logs once per outage;
store locations never show a password. The same behaviour on a real PostgreSQL is in
test_postgres_serve.py."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ccgate.config.model import Store as StoreConfig
from ccgate.errors import ConfigError
from ccgate.server.store_location import store_location
from ccgate.store import (
    IssuedKey,
    KeyCache,
    StoreError,
    StoreUnavailable,
    StoreURL,
    UsageRecorder,
    UsageRow,
    parse_location,
)
from ccgate.store.paths import redact_url
from tests.store.conftest import T0, FakeClock


class FlakyStore:
    """A usage store that is down while ``down`` is set; remembers every row it took."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.rows: list[UsageRow] = []
        self.attempts = 0

    def add_usage(self, batch: Sequence[UsageRow]) -> None:
        self.attempts += 1
        if self.down.is_set():
            raise StoreUnavailable("cannot reach the PostgreSQL store postgresql://u:***@db/x: refused")
        self.rows.extend(batch)

    def usage_summary(self, **kwargs: object) -> list[object]:
        return []

    def spend_by_key(self, since: float) -> dict[str, float]:
        return {}


def row(i: int) -> UsageRow:
    return UsageRow(ts=T0 + i, status=200, request_id=f"r{i}", input_tokens=1)


def wait(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_rows_are_held_in_order_within_the_bound_and_written_once_back(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    store.down.set()
    recorder = UsageRecorder(store, batch_size=10, interval=0.01, max_pending=50, outage_retry=0.02)
    caplog.set_level(logging.WARNING, "ccgate.store")
    for i in range(30):
        recorder.record(row(i))
    wait(lambda: recorder.store_down and recorder.buffered == 30)
    for i in range(30, 60):  # 20 more fit, 10 are dropped
        recorder.record(row(i))
    assert recorder.dropped == 10 and recorder.buffered == 50
    time.sleep(0.1)  # several retries while down
    assert store.attempts > 2 and not store.rows

    store.down.clear()
    wait(lambda: recorder.buffered == 0)
    assert [r.request_id for r in store.rows] == [f"r{i}" for i in range(50)]  # in order, each once
    assert recorder.written == 50 and recorder.failed == 0 and not recorder.store_down
    recorder.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("usage store is unreachable" in m for m in messages) == 1  # one line per episode
    assert sum("buffer full" in m for m in messages) == 1 and sum("reachable again" in m for m in messages) == 1


def test_rows_still_held_at_close_are_counted() -> None:
    store = FlakyStore()
    store.down.set()
    recorder = UsageRecorder(store, batch_size=10, interval=0.01, outage_retry=0.02)
    for i in range(5):
        recorder.record(row(i))
    wait(lambda: recorder.store_down)
    recorder.close(timeout=10)
    assert recorder.dropped_at_close == 5 and recorder.buffered == 0 and not store.rows


class DownKeyStore:
    def __init__(self, key: IssuedKey) -> None:
        self.key = key
        self.down = False
        self.version = 1
        self.polls = 0

    def keys_version(self) -> int:
        self.polls += 1
        if self.down:
            raise StoreUnavailable("unreachable")
        return self.version

    def list_keys(self) -> list[IssuedKey]:
        return [self.key]


def test_key_cache_refresher_serves_cached_keys_while_down(caplog: pytest.LogCaptureFixture) -> None:
    from ccgate.store.keys import digest

    secret = "ccg_" + "K" * 43
    key = IssuedKey(id="key_1", name="a", prefix=secret[:12], models=(), rpm=None, tpm=None, created_at=T0,
                    expires_at=None, revoked_at=None, digest=digest(secret))
    store = DownKeyStore(key)
    clock = FakeClock()
    cache = KeyCache(store, clock=clock, poll_interval=0.01)  # type: ignore[arg-type]
    cache.reload()
    cache.start_refresher()
    caplog.set_level(logging.WARNING, "ccgate.store")
    try:
        polls = store.polls
        assert cache.authenticate(secret) == key
        assert store.polls == polls or store.polls > polls  # the lookup itself never polls
        store.down = True
        wait(lambda: store.polls > polls + 5)
        assert cache.authenticate(secret) == key  # still served from memory
        store.down = False
        store.version = 2
        store.key = IssuedKey(**{**{f: getattr(key, f) for f in key.__dataclass_fields__}, "revoked_at": T0})
        wait(lambda: cache.check(secret).verdict == "revoked")
    finally:
        cache.stop_refresher()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot refresh issued keys" in m for m in messages) == 1 and any("back" in m for m in messages)


@pytest.mark.parametrize(("text", "kind", "shown"), [
    ("/var/lib/ccgate/ccgate.db", Path, "/var/lib/ccgate/ccgate.db"),
    ("sqlite:///rel/ccgate.db", Path, "rel/ccgate.db"),
    ("sqlite:////abs/ccgate.db", Path, "/abs/ccgate.db"),
    ("postgresql://app:s3cr%40t@db.internal:5432/ccgate", StoreURL, "postgresql://app:***@db.internal:5432/ccgate"),
    ("postgres://app@db/ccgate?password=s3cret&sslmode=require", StoreURL,
     "postgres://app@db/ccgate?password=***&sslmode=require"),
])
def test_locations_parse_and_never_show_a_password(text: str, kind: type, shown: str) -> None:
    location = parse_location(text)
    assert isinstance(location, kind) and str(location) == shown
    assert "s3cr" not in repr(location) and "s3cr" not in f"{location}"


def test_bad_locations_and_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="mysql:// is not supported"):
        parse_location("mysql://u:pw@h/x")
    assert redact_url("postgresql://u:p@h/x") == "postgresql://u:***@h/x"
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="either path"):
        msgspec.convert({"path": "a.db", "url": "postgresql://h/x"}, StoreConfig)
    with pytest.raises(msgspec.ValidationError, match="postgresql://"):
        msgspec.convert({"url": "redis://h"}, StoreConfig)
    with pytest.raises(msgspec.ValidationError, match="max_size"):
        msgspec.convert({"url": "postgresql://h/x", "pool": {"min_size": 5, "max_size": 2}}, StoreConfig)

    config = msgspec.convert({"url": "postgresql://app@127.0.0.1/x", "password": "env:PGPW",
                              "pool": {"max_size": 9, "statement_timeout": 1.5}}, StoreConfig)
    with pytest.raises(ConfigError, match=r"store\.password: environment variable PGPW is not set"):
        store_location(None, {}, config, tmp_path / "ccgate.yaml")
    location = store_location(None, {"PGPW": "hunter2-pw"}, config, tmp_path / "ccgate.yaml")
    assert isinstance(location, StoreURL) and location.password == "hunter2-pw"
    assert location.pool.max_size == 9 and location.pool.statement_timeout == 1.5
    assert "hunter2" not in repr(location) and "hunter2" not in str(location)
    # $CCGATE_DB wins over the config, and still gets the config's password and pool.
    from_env = store_location(None, {"CCGATE_DB": "postgresql://other@127.0.0.1/y", "PGPW": "pw"}, config, None)
    assert isinstance(from_env, StoreURL) and from_env.password == "pw" and "other@" in str(from_env)
    relative = msgspec.convert({"path": "data/ccgate.db"}, StoreConfig)
    assert store_location(None, {}, relative, tmp_path / "ccgate.yaml") == tmp_path / "data" / "ccgate.db"


def test_a_missing_postgres_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from ccgate.store import open_store

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(StoreError, match=r"pip install 'ccgate\[postgres\]'") as caught:
        open_store("postgresql://app:hunter2-pw@127.0.0.1/x")
    assert "hunter2" not in str(caught.value) and "app:***@" in str(caught.value)
