"""Pricing (store/cost.py), the budget tracker's windows (store/budget.py), and a v4 store file
upgraded to v5 keeping its rows, with cost and budgets working on it."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from ccgate.store import KeyManager, SQLiteStore, UsageRow
from ccgate.store.budget import BudgetTracker, day_window, month_window
from ccgate.store.cost import Price, PriceBook, base_model, builtin_prices, format_usd
from ccgate.store.migrations import MIGRATIONS
from tests.store.conftest import T0

SONNET = Price(3.0, 15.0, 3.75, 6.0, 0.3)
KINDS = {"anthropic": "anthropic", "deepseek": "anthropic-compatible", "openrouter": "openai-compatible"}


def _utc(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=dt.UTC).timestamp()


# Pricing ---------------------------------------------------------------------------------------


def test_each_kind_of_token_is_billed_at_its_own_price() -> None:
    # 1M of each: 3 input + 15 output + 0.3 read + 5m writes 3.75 ...
    assert SONNET.cost(input_tokens=1_000_000, output_tokens=0) == pytest.approx(3.0)
    assert SONNET.cost(input_tokens=0, output_tokens=1_000_000) == pytest.approx(15.0)
    assert SONNET.cost(input_tokens=0, output_tokens=0, cache_read_tokens=1_000_000) == pytest.approx(0.3)
    assert SONNET.cost(input_tokens=0, output_tokens=0, cache_creation_tokens=1_000_000) == pytest.approx(3.75)
    one_hour = SONNET.cost(input_tokens=0, output_tokens=0, cache_creation_tokens=1_000_000,
                           cache_write_1h_tokens=1_000_000)
    assert one_hour == pytest.approx(6.0)


def test_cache_writes_split_between_the_5_minute_and_1_hour_price() -> None:
    # 2000 written: 500 with the 1-hour TTL, 1500 with the 5-minute one.
    cost = SONNET.cost(input_tokens=100, output_tokens=40, cache_read_tokens=10_000,
                       cache_creation_tokens=2000, cache_write_1h_tokens=500)
    expected = (100 * 3 + 40 * 15 + 10_000 * 0.3 + 1500 * 3.75 + 500 * 6) / 1e6
    assert cost == pytest.approx(expected)
    # A 1-hour count above the total (a confused upstream) is clamped to the total.
    clamped = SONNET.cost(input_tokens=0, output_tokens=0, cache_creation_tokens=100, cache_write_1h_tokens=900)
    assert clamped == pytest.approx(100 * 6 / 1e6)


def test_cache_prices_left_out_bill_as_plain_input() -> None:
    plain = Price(input=2.0, output=8.0)
    assert plain.cost(input_tokens=0, output_tokens=0, cache_read_tokens=1000, cache_creation_tokens=1000,
                      cache_write_1h_tokens=400) == pytest.approx(2000 * 2.0 / 1e6)


def test_builtin_table_has_a_source_a_date_and_current_models() -> None:
    table = builtin_prices()
    assert table.source.startswith("https://platform.claude.com/") and dt.date.fromisoformat(table.checked)
    assert table.models["claude-opus-4-8"] == Price(5.0, 25.0, 6.25, 10.0, 0.5)
    assert table.models["claude-haiku-4-5"] == Price(1.0, 5.0, 1.25, 2.0, 0.1)
    for name, price in table.models.items():  # Anthropic's multipliers hold for every row ...
        if name == "claude-3-haiku":  # ... but Haiku 3's, listed rounded ($0.30, $0.03)
            continue
        assert price.cache_write_5m == pytest.approx(price.input * 1.25), name
        assert price.cache_write_1h == pytest.approx(price.input * 2), name
        assert price.cache_read == pytest.approx(price.input * 0.1), name


@pytest.mark.parametrize(("model", "base"), [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"), ("claude-opus-4-8[1m]", "claude-opus-4-8"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku"), ("claude-haiku-4-5", "claude-haiku-4-5"),
])
def test_snapshot_ids_price_as_their_model(model: str, base: str) -> None:
    assert base_model(model) == base
    assert PriceBook({}, KINDS).price("anthropic", model) == builtin_prices().models[base]


def test_unknown_model_or_non_anthropic_provider_is_unpriced_never_zero() -> None:
    book = PriceBook({}, KINDS)
    usage = {"input_tokens": 10, "output_tokens": 1, "cache_read_tokens": 0, "cache_creation_tokens": 0,
             "cache_write_1h_tokens": 0}
    assert book.cost("anthropic", "claude-future-9", **usage) is None
    # claude-* through an Anthropic-compatible provider bills at that provider's prices, unknown here.
    assert book.cost("deepseek", "claude-sonnet-4-5", **usage) is None
    assert book.cost("anthropic", None, **usage) is None
    # ... but a request that used no tokens costs nothing whatever its model.
    assert book.cost("anthropic", "claude-future-9", **dict.fromkeys(usage, 0)) == 0.0
    assert format_usd(None) == "unknown"


def test_config_prices_win_scoped_by_provider_or_for_every_provider() -> None:
    cheap = Price(1.0, 2.0)
    book = PriceBook({"deepseek/deepseek-*": cheap, "openrouter/anthropic/claude-*": Price(4.0, 4.0),
                      "vendor/model-x": Price(9.0, 9.0), "claude-opus-4-8": Price(1.0, 1.0)}, KINDS)
    assert book.price("deepseek", "deepseek-chat") == cheap
    assert book.price("anthropic", "deepseek-chat") is None  # scoped to the deepseek provider
    # "openrouter" names a provider, so the rest is the model glob (which holds a "/" itself).
    assert book.price("openrouter", "anthropic/claude-sonnet-4.5") == Price(4.0, 4.0)
    # "vendor" is no provider: the whole key is a model id, for any provider.
    assert book.price("deepseek", "vendor/model-x") == Price(9.0, 9.0)
    # An unscoped entry overrides the built-in table (and dated ids match it too).
    assert book.price("anthropic", "claude-opus-4-8-20260101") == Price(1.0, 1.0)


# Budget windows ---------------------------------------------------------------------------------


def test_windows_are_the_utc_day_and_calendar_month() -> None:
    now = _utc(2026, 2, 28, 23, 59, 59)
    assert day_window(now) == (_utc(2026, 2, 28), _utc(2026, 3, 1))
    assert month_window(now) == (_utc(2026, 2, 1), _utc(2026, 3, 1))
    assert month_window(_utc(2026, 12, 31, 12)) == (_utc(2026, 12, 1), _utc(2027, 1, 1))


def _row(key: str, cost: float | None, **kw: object) -> UsageRow:
    return UsageRow(ts=0.0, status=200, key_id=key, cost_usd=cost, **kw)  # type: ignore[arg-type]


def test_tracker_counts_committed_cost_and_rolls_over_at_midnight_utc(tmp_path: Path) -> None:
    now = [_utc(2026, 3, 31, 23, 0)]
    tracker = BudgetTracker(lambda: now[0])
    key = KeyManager(SQLiteStore(tmp_path / "k.db")).create("alice", budget_day=1.0, budget_month=2.5)[0]
    tracker.add([_row(key.id, 0.6), _row(key.id, None), _row(key.id, 5.0, log_only=True), _row("other", 9.0)])
    assert tracker.spent(key.id) == pytest.approx((0.6, 0.6)) and tracker.check(key) is None
    tracker.add([_row(key.id, 0.4)])
    over = tracker.check(key)
    assert over is not None and (over.window, over.budget) == ("daily", 1.0)
    assert over.resets_at == _utc(2026, 4, 1) and "2026-04-01T00:00:00Z" in over.message("alice")
    now[0] = _utc(2026, 4, 1, 0, 0, 1)  # a new day and a new month: both start at zero
    assert tracker.check(key) is None and tracker.spent(key.id) == (0.0, 0.0)
    for _ in range(3):
        tracker.add([_row(key.id, 0.9)])
        now[0] += 86400
    over = tracker.check(key)
    assert over is not None and over.window == "monthly" and over.resets_at == _utc(2026, 5, 1)


def test_seed_reads_this_day_and_month_from_the_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    now = _utc(2026, 6, 15, 12)
    store.add_usage([
        UsageRow(ts=now - 3600, status=200, key_id="k", cost_usd=1.0),  # today
        UsageRow(ts=_utc(2026, 6, 2), status=200, key_id="k", cost_usd=2.0),  # this month
        UsageRow(ts=_utc(2026, 5, 31, 23), status=200, key_id="k", cost_usd=4.0),  # last month
        UsageRow(ts=now - 60, status=200, key_id="k", cost_usd=None),  # unpriced
    ])
    tracker = BudgetTracker(lambda: now)
    tracker.add([_row("k", 50.0)])  # replaced by the seed
    tracker.seed(store)
    assert tracker.spent("k") == pytest.approx((1.0, 3.0))


# Migration -------------------------------------------------------------------------------------


def test_a_v4_store_upgrades_to_v5_keeping_rows_and_gains_cost_and_budgets(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:4]:
        for statement in step.statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {step.version}")
    conn.execute("INSERT INTO keys (id, name, prefix, digest, models, created_at) VALUES "
                 "('key_00000000000000a1', 'alice', 'ccg_AAAAAAAA', x'00', ?, ?)", (json.dumps([]), T0))
    conn.execute("INSERT INTO usage (ts, key_id, model, status, input_tokens) VALUES (?, 'key_00000000000000a1', "
                 "'claude-sonnet-4-5', 200, 1000)", (T0,))
    conn.close()
    store = SQLiteStore(path)
    try:
        assert store.migrated_from == 4
        assert (path.parent / "v4.db.v4.bak").exists()
        key = store.get_key("key_00000000000000a1")
        assert key is not None and (key.budget_day, key.budget_month) == (None, None)
        # The old row has no cost (written before prices): unknown, not zero.
        [group] = store.usage_summary(since=None, by="key")
        assert (group.input_tokens, group.cost_usd, group.unpriced) == (1000, 0.0, 1)
        updated = KeyManager(store).set_budget("alice", day=3.0)
        assert (updated.budget_day, updated.budget_month) == (3.0, None)
        store.add_usage([UsageRow(ts=T0 + 1, status=200, key_id=key.id, input_tokens=5, cache_creation_tokens=4,
                                  cache_write_1h_tokens=3, cost_usd=0.25)])
        [group] = store.usage_summary(since=None, by="key")
        assert (group.cost_usd, group.cache_write_1h_tokens, group.unpriced) == (0.25, 3, 1)
        assert store.spend_by_key(T0) == {key.id: 0.25}
    finally:
        store.close()
