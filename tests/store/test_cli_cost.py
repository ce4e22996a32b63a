"""``ccgate keys create/update --budget-*`` and the cost column of ``ccgate usage`` (in-process
``main``: no server, no subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccgate.store import SQLiteStore, UsageRow
from tests.store.test_cli import cli, create, listed


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store" / "ccgate.db"
    monkeypatch.setenv("CCGATE_DB", str(path))
    return path


def test_budgets_at_create_update_and_in_the_listing(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    create(capsys, "--name", "alice", "--budget-day", "5", "--budget-month", "$120.50")
    [key] = listed(capsys)
    assert (key["budget_day"], key["budget_month"]) == (5.0, 120.5)
    code, out, _ = cli(capsys, "keys", "list")
    assert code == 0 and "$5.00/day $120.50/month" in out and "BUDGET" in out.splitlines()[0]

    code, out, _ = cli(capsys, "keys", "update", "alice", "--budget-day", "none")
    assert code == 0 and "budgets $120.50/month" in out
    [key] = listed(capsys)
    assert (key["budget_day"], key["budget_month"]) == (None, 120.5)  # the month budget was kept


def test_create_and_update_with_json_print_the_key_with_its_budgets(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "keys", "create", "--name", "alice", "--budget-day", "5", "--json")
    created = json.loads(out)
    assert code == 0 and created["secret"].startswith("ccg_")
    assert (created["key"]["budget_day"], created["key"]["budget_month"]) == (5.0, None)
    code, out, _ = cli(capsys, "keys", "update", "alice", "--budget-month", "40", "--json")
    updated = json.loads(out)  # stdout is the one object, no prose
    assert code == 0 and "secret" not in updated and updated["key"]["id"] == created["key"]["id"]
    assert (updated["key"]["budget_day"], updated["key"]["budget_month"]) == (5.0, 40.0)


@pytest.mark.parametrize(("args", "message"), [
    (["keys", "update", "alice"], "nothing to change"),
    (["keys", "update", "alice", "--budget-day", "-4"], "must be an amount in USD above 0"),
    (["keys", "update", "alice", "--budget-month", "lots"], "is not an amount in USD"),
    (["keys", "create", "--name", "bob", "--budget-day", "0"], "must be an amount in USD above 0"),
])
def test_bad_budgets_exit_2_and_change_nothing(db: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                               message: str) -> None:
    create(capsys, "--name", "alice", "--budget-day", "1")
    before = listed(capsys)
    code, _, err = cli(capsys, *args)
    assert code == 2 and message in err
    assert listed(capsys) == before


def test_update_of_an_unknown_or_revoked_key_exits_1(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    create(capsys, "--name", "alice")
    assert cli(capsys, "keys", "update", "nobody", "--budget-day", "1")[0] == 1
    assert cli(capsys, "keys", "revoke", "alice")[0] == 0
    code, _, err = cli(capsys, "keys", "update", "alice", "--budget-day", "1")
    assert code == 1 and "revoked" in err


def test_usage_shows_cost_and_unknown_for_unpriced(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    create(capsys, "--name", "alice")
    store = SQLiteStore(db)
    try:
        [key] = store.list_keys()
        now = key.created_at
        store.add_usage([
            UsageRow(ts=now, status=200, key_id=key.id, model="claude-sonnet-4-5", provider="anthropic",
                     input_tokens=1000, cache_creation_tokens=100, cache_write_1h_tokens=40, cost_usd=1.5),
            UsageRow(ts=now, status=200, key_id=key.id, model="deepseek-chat", provider="deepseek",
                     input_tokens=10, output_tokens=5),
        ])
    finally:
        store.close()
    code, out, _ = cli(capsys, "usage", "--by", "model")
    lines = out.splitlines()
    assert code == 0 and "COST" in lines[0]
    assert "$1.50" in lines[1] and lines[1].startswith("claude-sonnet-4-5")
    assert "unknown" in lines[2] and lines[2].startswith("deepseek-chat")
    assert "$1.50 + 1 unpriced" in lines[-1] and lines[-1].startswith("TOTAL")

    code, out, _ = cli(capsys, "usage", "--by", "model", "--json")
    data = {g["group"]: g for g in json.loads(out)["data"]}
    assert data["claude-sonnet-4-5"]["cost_usd"] == 1.5 and data["claude-sonnet-4-5"]["cache_write_1h_tokens"] == 40
    assert data["deepseek-chat"]["cost_usd"] is None and data["deepseek-chat"]["unpriced_requests"] == 1
