"""Setup as a new user meets it: a config whose provider secrets are not in this shell, undo
after Claude Code has rewritten its files, a run without a terminal, and subscription mode."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Home

KEY = "sk-gw-test-0123456789abcdef"
CONFIG = """\
server:
  host: 0.0.0.0
  port: 4646
  auth:
    tokens: [{token: "tok-from-config-123456789", name: dev}]
providers:
  - name: anthropic
    api_keys: [env:ANTHROPIC_API_KEY]
"""


def load(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def use_config(home: Home, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = home.root / "gw.yaml"
    path.write_text(text)
    monkeypatch.setenv("CCGATE_CONFIG", str(path))
    return path


def test_provider_secret_missing_from_the_shell_does_not_matter(
    home: Home, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_config(home, monkeypatch, CONFIG)  # ANTHROPIC_API_KEY is not set (conftest scrubs it)
    r = cli("--no-verify")
    assert r.code == 0, r.err
    assert "warning" not in r.err
    assert load(home.settings)["env"] == {
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:4646", "ANTHROPIC_AUTH_TOKEN": "tok-from-config-123456789"}
    assert "tok-from-config-123456789" not in r.out + r.err


def test_unreadable_config_stops_setup_instead_of_using_defaults(
    home: Home, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_config(home, monkeypatch, CONFIG.replace('"tok-from-config-123456789"', "env:GW_TOKEN"))
    before = home.snapshot()
    r = cli("--no-verify")
    assert r.code == 2
    assert "environment variable GW_TOKEN is not set" in r.err and "--gateway URL and --key KEY" in r.err
    assert home.snapshot() == before  # nothing written, no backup
    r = cli("--no-verify", "--gateway", "http://gw.example:4646", "--key", KEY)
    assert r.code == 0 and "ccgate config not used" in r.err
    assert load(home.settings)["env"]["ANTHROPIC_BASE_URL"] == "http://gw.example:4646"


CLAUDE_REWRITE = '{\n  "numStartups": 3,\n  "hasCompletedOnboarding": true,\n  "userID": "abc123",\n  "migrationVersion": 7\n}\n'


def test_undo_after_claude_code_rewrote_a_file_setup_created(home: Home, cli: Any) -> None:
    assert cli("--key", KEY, "--no-verify").code == 0
    home.global_config.write_text(CLAUDE_REWRITE)  # Claude Code's first run
    r = cli("--undo")
    assert r.code == 0, r.err
    # Never deleted: Claude Code's machine id and migration state stay; only setup's key goes.
    assert home.global_config.read_text() == (
        '{\n  "numStartups": 3,\n  "userID": "abc123",\n  "migrationVersion": 7\n}\n')
    assert not home.settings.exists()
    assert cli("--undo").code == 1  # nothing left to undo


def test_undo_yes_never_deletes_a_file_written_since(home: Home, cli: Any) -> None:
    assert cli("--key", KEY, "--no-verify").code == 0
    home.global_config.write_text(CLAUDE_REWRITE)
    assert cli("--undo", "--yes").code == 0
    assert load(home.global_config) == {"numStartups": 3, "userID": "abc123", "migrationVersion": 7}


def test_undo_keeps_other_changes_to_settings_byte_for_byte(home: Home, cli: Any) -> None:
    original = '{\n\t"model": "opus",\n\t"env": {"X": "1"}\n}\n'
    home.write_settings(original)
    assert cli("--key", KEY, "--no-verify").code == 0
    written = home.settings.read_text()
    home.write_settings(written.replace('"model": "opus"', '"model": "sonnet"'))  # the user, since
    assert cli("--undo").code == 0
    assert home.settings.read_text() == original.replace('"model": "opus"', '"model": "sonnet"')


def test_undo_refuses_a_key_changed_again_since_unless_yes(home: Home, cli: Any) -> None:
    home.write_settings('{"env": {"ANTHROPIC_AUTH_TOKEN": "old-token-abcdefghijkl"}}')
    assert cli("--key", KEY, "--no-verify").code == 0
    changed = home.settings.read_text().replace(KEY, "hand-edited-token-000000")
    home.write_settings(changed)
    r = cli("--undo")
    assert r.code == 1 and "env.ANTHROPIC_AUTH_TOKEN" in r.err and "hand-edited" not in r.err
    assert home.settings.read_text() == changed
    assert cli("--undo", "--yes").code == 0
    assert load(home.settings)["env"]["ANTHROPIC_AUTH_TOKEN"] == "old-token-abcdefghijkl"


def test_without_a_terminal_setup_says_what_it_changed(
    home: Home, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 0
    assert "No terminal to confirm on: applying" in r.out
    assert "Changed:\n  ~/.claude/settings.json: env.ANTHROPIC_BASE_URL, env.ANTHROPIC_AUTH_TOKEN\n" in r.out
    assert "  ~/.claude.json: hasCompletedOnboarding\n" in r.out
    assert KEY not in r.out


def test_subscription_mode_puts_the_key_in_its_own_header(home: Home, cli: Any) -> None:
    home.write_settings('{"env": {"ANTHROPIC_AUTH_TOKEN": "old-token-abcdefghijkl", '
                        '"ANTHROPIC_CUSTOM_HEADERS": "x-team: blue"}}')
    r = cli("--subscription", "--key", KEY, "--no-verify")
    assert r.code == 0, r.err
    assert load(home.settings)["env"] == {
        "ANTHROPIC_CUSTOM_HEADERS": f"x-team: blue\nx-ccgate-key: {KEY}",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:4545",
    }
    assert not home.global_config.exists()  # onboarding (where a login happens) is left alone
    assert "subscription mode" in r.out and KEY not in r.out + r.err
    assert "Nothing to change" in cli("--subscription", "--no-verify").out  # the key is found again

    r = cli("--undo", "--dry-run")
    assert r.code == 0 and KEY not in r.out
    # Back to token mode: the header goes, the token comes.
    assert cli("--key", KEY, "--no-verify").code == 0
    env = load(home.settings)["env"]
    assert env["ANTHROPIC_CUSTOM_HEADERS"] == "x-team: blue" and env["ANTHROPIC_AUTH_TOKEN"] == KEY


def test_backup_from_before_keys_were_recorded(home: Home, cli: Any) -> None:
    assert cli("--key", KEY, "--no-verify").code == 0
    (manifest_path,) = home.backups.glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["files"]:
        del entry["changes"]
    manifest_path.write_text(json.dumps(manifest))
    home.global_config.write_text(CLAUDE_REWRITE)
    r = cli("--undo")
    assert r.code == 1 and "(whole file)" in r.err and home.global_config.read_text() == CLAUDE_REWRITE
    assert cli("--undo", "--yes").code == 0
    assert home.global_config.read_text() == CLAUDE_REWRITE  # written since: never deleted
    assert not home.settings.exists()  # untouched since setup created it
