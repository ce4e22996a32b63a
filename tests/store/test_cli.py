"""``ccgate keys`` and ``ccgate usage``: output, secrecy, and bad input that changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccgate.cli.main import main
from ccgate.store import KeyCache, SQLiteStore, UsageRow
from tests.store.conftest import FakeClock, dump

pytestmark = pytest.mark.lab


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store" / "ccgate.db"
    monkeypatch.setenv("CCGATE_DB", str(path))
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def create(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = cli(capsys, "keys", "create", *args)
    assert code == 0, err
    return out.strip()


def listed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, _ = cli(capsys, "keys", "list", "--json")
    assert code == 0
    data = json.loads(out)
    assert isinstance(data, list)
    return data


def test_create_prints_the_secret_once_and_list_never_does(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "keys", "create", "--name", "alice", "--models", "claude-*", "claude-3-*haiku*",
                         "--models", "gpt-4o", "--rpm", "60", "--tpm", "100000", "--expires", "90d")
    assert code == 0
    secret = out.strip()
    assert out == secret + "\n" and secret.startswith("ccg_")  # alone on stdout
    assert "cannot be shown again" in err and secret not in err and secret[:12] in err

    code, table, list_err = cli(capsys, "keys", "list")
    assert code == 0 and secret not in table + list_err and secret[12:20] not in table
    header, row = table.splitlines()
    assert header.split() == ["NAME", "ID", "PREFIX", "MODELS", "RPM", "TPM", "BUDGET", "CREATED", "EXPIRES",
                              "STATUS"]
    assert row.split()[0] == "alice" and secret[:12] + "..." in row and "claude-*,claude-3-*haiku*,gpt-4o" in row
    assert row.split()[-1] == "active" and "100,000" in row

    [entry] = listed(capsys)
    assert entry["name"] == "alice" and entry["models"] == ["claude-*", "claude-3-*haiku*", "gpt-4o"]
    assert (entry["rpm"], entry["tpm"], entry["status"]) == (60, 100000, "active")
    assert entry["expires_at"] is not None and "digest" not in entry and secret not in json.dumps(entry)


def test_revoke_by_name_and_by_id(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    create(capsys, "--name", "alice")
    create(capsys, "--name", "bob")
    code, out, _ = cli(capsys, "keys", "revoke", "alice")
    assert code == 0 and "Revoked key alice" in out
    bob_id = next(e["id"] for e in listed(capsys) if e["name"] == "bob")
    code, out, _ = cli(capsys, "keys", "revoke", str(bob_id))
    assert code == 0 and str(bob_id) in out
    assert {e["name"]: e["status"] for e in listed(capsys)} == {"alice": "revoked", "bob": "revoked"}
    create(capsys, "--name", "alice")  # a revoked key's name may be reused
    assert sorted(str(e["status"]) for e in listed(capsys)) == ["active", "revoked", "revoked"]


def test_rotate_with_grace_keeps_the_old_secret_working(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = create(capsys, "--name", "alice")
    code, out, err = cli(capsys, "keys", "rotate", "alice", "--grace", "1h")
    new = out.strip()
    assert code == 0 and out == new + "\n" and new.startswith("ccg_") and new != old
    assert "keeps working until" in err and old not in err and new not in err
    [entry] = listed(capsys)
    assert entry["status"] == "rotating" and entry["prefix"] == new[:12]

    store = SQLiteStore(db)
    try:
        [key] = store.list_keys()
        assert key.grace_until is not None and key.grace_until - key.created_at >= 3600
        clock = FakeClock(key.grace_until - 1)  # just before the grace period ends
        cache = KeyCache(store, clock=clock, monotonic=clock)
        cache.reload()
        assert cache.authenticate(old) == key and cache.authenticate(new) == key
        clock.advance(1)
        assert cache.authenticate(old) is None and cache.authenticate(new) == key
    finally:
        store.close()

    code, out, err = cli(capsys, "keys", "rotate", "alice")
    assert code == 0 and "The old secret no longer works" in err
    assert listed(capsys)[0]["status"] == "active"


BAD_INPUT = [
    (["keys", "create", "--name", "alice"], 1, "a key named 'alice' already exists"),
    (["keys", "create", "--name", "bad name"], 2, "argument --name: 'bad name' is not a valid key name"),
    (["keys", "create", "--name", "key_x"], 2, "reserved for key ids"),
    (["keys", "create", "--name", "b", "--models", "claude-[x"], 2, "argument --models: 'claude-[x' has an unclosed '['"),
    (["keys", "create", "--name", "b", "--models", ""], 2, "argument --models: '' is not a model glob"),
    (["keys", "create", "--name", "b", "--rpm", "-5"], 2, "argument --rpm: must be a whole number from 1"),
    (["keys", "create", "--name", "b", "--tpm", "0"], 2, "argument --tpm: must be a whole number from 1"),
    (["keys", "create", "--name", "b", "--rpm", "lots"], 2, "argument --rpm: must be a whole number from 1"),
    (["keys", "create", "--name", "b", "--expires", "90"], 2, "argument --expires: '90' is not a duration"),
    (["keys", "create", "--name", "b", "--expires", "3 months"], 2, "is not a duration; use a number followed by m, h, d or w"),
    (["keys", "create", "--models", "claude-*"], 2, "the following arguments are required: --name"),
    (["keys"], 2, "the following arguments are required: ACTION"),
    (["keys", "delete", "alice"], 2, "invalid choice: 'delete'"),
    (["keys", "revoke", "nobody"], 1, "no key with id or name 'nobody'"),
    (["keys", "revoke", "key_0123456789abcdef"], 1, "no key with id 'key_0123456789abcdef'"),
    (["keys", "revoke", "gone"], 1, "already revoked"),
    (["keys", "rotate", "nobody"], 1, "no key with id or name 'nobody'"),
    (["keys", "rotate", "gone"], 1, "is revoked; create a new key instead"),
    (["keys", "rotate", "alice", "--grace", "1y"], 2, "argument --grace: '1y' is not a duration"),
    (["keys", "rotate", "alice", "--grace", "0h"], 2, "argument --grace: '0h' is zero"),
    (["usage", "--since", "yesterday"], 2, "argument --since: 'yesterday' is not a duration"),
    (["usage", "--by", "user"], 2, "argument --by: invalid choice: 'user'"),
]


@pytest.mark.parametrize(("argv", "code", "message"), BAD_INPUT, ids=[" ".join(a) for a, _, _ in BAD_INPUT])
def test_bad_input_is_a_clear_error_and_changes_nothing(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str,
) -> None:
    secret = create(capsys, "--name", "alice")
    create(capsys, "--name", "gone")
    assert cli(capsys, "keys", "revoke", "gone")[0] == 0
    before = dump(db)
    got, out, err = cli(capsys, *argv)
    assert got == code and message in err, err
    assert out == "" and secret not in err  # no secret was printed, none leaked
    assert dump(db) == before


def test_missing_store_is_not_created_by_read_commands(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "keys", "revoke", "alice")
    assert code == 1 and "no key store at" in err and "CCGATE_DB" in err
    code, out, err = cli(capsys, "keys", "list")
    assert code == 0 and out == "" and "no keys" in err
    assert cli(capsys, "keys", "list", "--json")[1].strip() == "[]"
    code, out, err = cli(capsys, "usage")
    assert code == 0 and "no usage recorded" in err
    assert not db.exists() and not db.parent.exists()


def test_db_option_beats_the_environment(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.db"
    code, _, _ = cli(capsys, "keys", "create", "--db", str(other), "--name", "elsewhere")
    assert code == 0 and other.exists() and not db.exists()
    code, out, _ = cli(capsys, "keys", "list", "--db", str(other))
    assert "elsewhere" in out


def test_usage_table_and_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    create(capsys, "--name", "alice")
    store = SQLiteStore(db)
    try:
        [key] = store.list_keys()
        now = key.created_at
        store.add_usage([
            UsageRow(ts=now, status=200, key_id=key.id, model="claude-sonnet-4-5", provider="anthropic",
                     session_id="sess-a", input_tokens=1200, output_tokens=300, cache_read_tokens=5000,
                     cache_creation_tokens=700),
            UsageRow(ts=now, status=529, key_id=key.id, model="claude-sonnet-4-5", provider="anthropic",
                     session_id="sess-a"),
            UsageRow(ts=now, status=200, key_id=key.id, model="deepseek-chat", provider="deepseek",
                     session_id="sess-b", input_tokens=10, output_tokens=5),
            UsageRow(ts=now - 30 * 86400, status=200, key_id=key.id, model="ancient", input_tokens=999_999),
        ])
    finally:
        store.close()

    code, out, _ = cli(capsys, "usage", "--by", "model")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["MODEL", "REQUESTS", "ERRORS"]
    assert lines[1].split()[:7] == ["claude-sonnet-4-5", "2", "1", "1,200", "300", "5,000", "700"]
    assert lines[2].split()[:2] == ["deepseek-chat", "1"]
    assert lines[-1].split()[:3] == ["TOTAL", "3", "1"] and "ancient" not in out  # older than 7d

    code, out, _ = cli(capsys, "usage", "--by", "key")
    assert out.splitlines()[1].split()[:3] == ["alice", key.id, "3"]
    code, out, _ = cli(capsys, "usage", "--by", "session", "--since", "all")
    assert "sess-a" in out and "(none)" in out and out.splitlines()[-1].split()[1] == "4"

    code, out, _ = cli(capsys, "usage", "--by", "provider", "--json")
    report = json.loads(out)
    assert report["by"] == "provider" and report["since"].endswith("Z")
    assert {g["group"]: g["requests"] for g in report["data"]} == {"anthropic": 2, "deepseek": 1}


def test_console_entry_point(tmp_path: Path) -> None:
    """The real ``python -m ccgate`` has the subcommands registered."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CCGATE_DB": str(tmp_path / "k.db")}
    created = subprocess.run([sys.executable, "-m", "ccgate", "keys", "create", "--name", "ci"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    listing = subprocess.run([sys.executable, "-m", "ccgate", "keys", "list"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert listing.returncode == 0 and "ci" in listing.stdout and secret not in listing.stdout + listing.stderr
    usage = subprocess.run([sys.executable, "-m", "ccgate", "usage"], capture_output=True, text=True, env=env,
                           timeout=60)
    assert usage.returncode == 0 and "no usage recorded" in usage.stderr
