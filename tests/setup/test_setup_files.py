"""``ccgate setup claude-code`` against real files in a throw-away HOME."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from .conftest import Home

KEY = "sk-gw-test-0123456789abcdef"
OTHER = {
    "$schema": "https://json.schemastore.org/claude-code-settings.json",
    "model": "opus",
    "permissions": {"allow": ["Bash(npm run:*)"], "deny": []},
    "hooks": {"PostToolUse": [{"matcher": "Edit", "hooks": [{"type": "command", "command": "x"}]}]},
    "env": {"FOO": "bar", "NUM": "1"},
    "cleanupPeriodDays": 60,
    "unicode": "héllo ✓",
}


def load(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def test_fresh_home_gets_settings_and_onboarding(home: Home, cli: Any) -> None:
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 0, r.err
    assert load(home.settings) == {
        "env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:4545", "ANTHROPIC_AUTH_TOKEN": KEY}
    }
    assert load(home.global_config) == {"hasCompletedOnboarding": True}
    assert stat.S_IMODE(home.settings.stat().st_mode) == 0o600
    assert "why:" in r.out and "hasCompletedOnboarding" in r.out
    assert KEY not in r.out + r.err  # masked
    assert not list(home.root.glob(".claude/settings.json.*"))  # no temp files left


def test_other_content_is_kept_in_order(home: Home, cli: Any) -> None:
    home.write_settings(json.dumps(OTHER, indent=2, ensure_ascii=False) + "\n")
    home.global_config.write_text('{"numStartups": 7, "projects": {"/x": {"a": 1}}}')
    assert cli("--key", KEY, "--no-verify").code == 0
    after = load(home.settings)
    assert list(after) == list(OTHER)
    for k, v in OTHER.items():
        if k != "env":
            assert after[k] == v
    assert after["env"] == {
        "FOO": "bar",
        "NUM": "1",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:4545",
        "ANTHROPIC_AUTH_TOKEN": KEY,
    }
    assert load(home.global_config) == {
        "numStartups": 7,
        "projects": {"/x": {"a": 1}},
        "hasCompletedOnboarding": True,
    }
    assert "héllo ✓" in home.settings.read_text("utf-8")


@pytest.mark.parametrize(
    "raw",
    [
        '{\n\t"model": "opus",\n\t"env": {\n\t\t"FOO": "1"\n\t}\n}',  # tabs, no final newline
        '{"model":"opus","n":1.50E+3,"s":"\\u00e9"}',  # one line, odd numbers, escapes
        '{\r\n    "model" : "opus"\r\n}\r\n',  # CRLF, spaced colon
        '\ufeff{\n  "model": "opus"\n}\n',  # byte-order mark
        "",  # empty file
    ],
)
def test_unusual_formatting_is_kept(home: Home, cli: Any, raw: str) -> None:
    home.write_settings(raw)
    assert cli("--key", KEY, "--no-verify").code == 0
    text = home.settings.read_bytes().decode("utf-8")
    if raw.startswith("\ufeff"):
        assert text.startswith("\ufeff")
    body = raw.lstrip("\ufeff").rstrip("}\r\n \t")
    if body:
        # Everything before the edit point is byte-identical.
        assert text.lstrip("\ufeff").startswith(body.split('"env"')[0])
    if "1.50E+3" in raw:
        assert "1.50E+3" in text and "\\u00e9" in text
    if "\r\n" in raw:
        assert "\n" not in text.replace("\r\n", "")
    if raw.endswith("}"):
        assert text.endswith("}")
    assert json.loads(text.lstrip("\ufeff"))["env"]["ANTHROPIC_AUTH_TOKEN"] == KEY


def test_invalid_json_is_refused_and_nothing_changes(home: Home, cli: Any) -> None:
    home.write_settings('{\n  "model": "opus",\n  "env": {"A": "1",}\n}\n')
    before = home.snapshot()
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 2
    assert f"{home.settings}:3:" in r.err and "invalid JSON" in r.err
    assert "Nothing was changed" in r.err
    assert home.snapshot() == before


def test_invalid_global_config_blocks_both_files(home: Home, cli: Any) -> None:
    home.write_settings('{"model": "opus"}\n')
    home.global_config.write_text("{oops")
    before = home.snapshot()
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 2 and f"{home.global_config}:1:2" in r.err
    assert home.snapshot() == before


def test_read_only_file_is_refused_and_nothing_changes(home: Home, cli: Any) -> None:
    home.write_settings('{"model": "opus"}\n')
    home.settings.chmod(0o444)
    before = home.snapshot()
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 2
    assert "read-only" in r.err and str(home.settings) in r.err
    assert home.snapshot() == before
    assert stat.S_IMODE(home.settings.stat().st_mode) == 0o444


def test_read_only_global_config_leaves_settings_alone(home: Home, cli: Any) -> None:
    home.write_settings('{"model": "opus"}\n')
    home.global_config.write_text("{}")
    home.global_config.chmod(0o400)
    before = home.snapshot()
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 2 and ".claude.json is read-only" in r.err
    assert home.snapshot() == before


def test_file_mode_and_symlink_are_kept(home: Home, cli: Any, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "claude-settings.json"
    real.write_text('{"model": "opus"}\n')
    real.chmod(0o640)
    home.settings.parent.mkdir(parents=True)
    home.settings.symlink_to(real)
    assert cli("--key", KEY, "--no-verify").code == 0
    assert home.settings.is_symlink()
    assert load(real)["env"]["ANTHROPIC_AUTH_TOKEN"] == KEY
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_claude_config_dir(home: Home, cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    custom = tmp_path / "cc-config"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(custom))
    assert cli("--key", KEY, "--no-verify").code == 0
    assert load(custom / "settings.json")["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4545"
    assert load(custom / ".claude.json") == {"hasCompletedOnboarding": True}
    assert not home.settings.exists() and not home.global_config.exists()
    assert cli("--undo").code == 0
    assert not (custom / "settings.json").exists()


def test_dry_run_prints_a_masked_diff_and_writes_nothing(home: Home, cli: Any) -> None:
    home.write_settings('{\n  "env": {\n    "ANTHROPIC_API_KEY": "sk-ant-old-secret-value-1234"\n  }\n}\n')
    before = home.snapshot()
    r = cli("--key", KEY, "--dry-run")
    assert r.code == 0
    assert home.snapshot() == before
    assert f"--- {home.settings}" in r.out and "+++ /dev/null" not in r.out
    assert '-    "ANTHROPIC_API_KEY": "sk-ant-...1234"' in r.out
    assert '+    "ANTHROPIC_AUTH_TOKEN": "sk-gw-...cdef"' in r.out
    assert "--- /dev/null" in r.out  # ~/.claude.json would be created
    assert KEY not in r.out and "sk-ant-old-secret-value-1234" not in r.out


def test_second_run_changes_nothing(home: Home, cli: Any) -> None:
    home.write_settings(json.dumps(OTHER, indent=4))
    assert cli("--key", KEY, "--no-verify").code == 0
    before = home.snapshot()
    mtimes = [p.stat().st_mtime_ns for p in (home.settings, home.global_config)]
    backups = sorted(home.backups.iterdir())
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 0 and "Nothing to change" in r.out and "Changes:" not in r.out
    assert home.snapshot() == before
    assert [p.stat().st_mtime_ns for p in (home.settings, home.global_config)] == mtimes
    assert sorted(home.backups.iterdir()) == backups
    # Without --key the token already written for this gateway is kept.
    assert "Nothing to change" in cli("--no-verify").out


def test_undo_restores_exact_bytes_and_deletes_created_files(home: Home, cli: Any) -> None:
    original = '{\n\t"model": "opus"  ,\n\t"env": {"X": "1"}\n}'
    home.write_settings(original)
    home.settings.chmod(0o640)
    assert cli("--key", KEY, "--no-verify").code == 0
    assert home.global_config.exists()
    r = cli("--undo")
    assert r.code == 0, r.err
    assert home.settings.read_text() == original
    assert stat.S_IMODE(home.settings.stat().st_mode) == 0o640
    assert not home.global_config.exists()  # it did not exist before setup
    r = cli("--undo")
    assert r.code == 1 and "no setup backup" in r.err


def test_existing_backups_stack_and_undo_walks_back(home: Home, cli: Any) -> None:
    home.write_settings('{"model": "opus"}')
    (home.settings.parent / "settings.json.bak").write_text("mine")
    assert cli("--key", "first-key-0000000000", "--no-verify").code == 0
    assert cli("--key", "second-key-111111111", "--no-verify").code == 0
    assert len(list(home.backups.iterdir())) == 2  # same second: a distinct name, no overwrite
    assert cli("--undo").code == 0
    assert load(home.settings)["env"]["ANTHROPIC_AUTH_TOKEN"] == "first-key-0000000000"
    assert cli("--undo").code == 0
    assert home.settings.read_text() == '{"model": "opus"}'
    assert (home.settings.parent / "settings.json.bak").read_text() == "mine"


def test_undo_reverts_only_setups_keys_in_a_file_changed_since(home: Home, cli: Any) -> None:
    home.global_config.write_text('{"numStartups": 1}')
    assert cli("--key", KEY, "--no-verify").code == 0
    home.global_config.write_text('{"numStartups": 2, "hasCompletedOnboarding": true}')  # Claude Code ran
    r = cli("--undo", "--dry-run")
    assert r.code == 0 and '-{"numStartups": 2, "hasCompletedOnboarding": true}' in r.out and KEY not in r.out
    r = cli("--undo")
    assert r.code == 0, r.err
    assert home.global_config.read_text() == '{"numStartups": 2}'  # its change kept, setup's reverted
    assert not home.settings.exists()  # created by setup and untouched since


def test_backups_are_private(home: Home, cli: Any) -> None:
    home.write_settings('{"env": {"ANTHROPIC_AUTH_TOKEN": "old-token-abcdefghijkl"}}')
    assert cli("--key", KEY, "--no-verify").code == 0
    (backup,) = home.backups.iterdir()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    for f in backup.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    manifest = load(backup / "manifest.json")
    assert [e["existed"] for e in manifest["files"]] == [True, False]


def test_no_proxy_written_only_when_a_proxy_is_set(home: Home, cli: Any, monkeypatch: Any) -> None:
    assert cli("--key", KEY, "--no-verify").code == 0
    assert "NO_PROXY" not in load(home.settings)["env"]
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pr0xy-pass@proxy.corp:3128")
    monkeypatch.setenv("no_proxy", "localhost,.corp.internal")
    r = cli("--key", KEY, "--no-verify")
    env = load(home.settings)["env"]
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,.corp.internal,127.0.0.1"
    assert "pr0xy-pass" not in r.out
    assert "Nothing to change" in cli("--key", KEY, "--no-verify").out


@pytest.mark.parametrize(
    ("gateway", "existing", "expected"),
    [
        ("http://localhost:4545", "", "localhost,127.0.0.1"),
        ("http://127.0.0.1:9", "127.0.0.0/8", "127.0.0.0/8,localhost"),
        ("http://gw.corp.example:8080", "corp.example", "corp.example,gw.corp.example"),
        ("http://gw.corp.example:8080", ".corp.example", ".corp.example"),
        ("http://127.0.0.1:4545", "*", "*"),
    ],
)
def test_no_proxy_matches_exact_hosts(
    home: Home, cli: Any, monkeypatch: Any, gateway: str, existing: str, expected: str
) -> None:
    monkeypatch.setenv("http_proxy", "http://proxy.corp:3128")
    if existing:
        monkeypatch.setenv("NO_PROXY", existing)
    assert cli("--gateway", gateway, "--key", KEY, "--no-verify").code == 0
    assert load(home.settings)["env"]["NO_PROXY"] == expected


def test_proxy_in_settings_env_counts_too(home: Home, cli: Any) -> None:
    home.write_settings('{"env": {"HTTPS_PROXY": "http://proxy.corp:3128"}}')
    assert cli("--key", KEY, "--no-verify").code == 0
    assert load(home.settings)["env"]["no_proxy"] == "127.0.0.1,localhost"


def test_credential_conflicts(home: Home, cli: Any, monkeypatch: Any) -> None:
    home.write_settings('{"env": {"ANTHROPIC_API_KEY": "sk-ant-leftover-000000000"}}')
    home.global_config.write_text('{"primaryApiKey": "sk-ant-stored-login-key-99"}')
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-shell-profile-1")
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 0
    env = load(home.settings)["env"]
    assert env["ANTHROPIC_API_KEY"] == ""  # hides the shell's key from Claude Code
    assert "primaryApiKey" in r.out and "/logout" in r.out
    assert "your shell exports ANTHROPIC_API_KEY" in r.out
    for secret in ("sk-ant-leftover-000000000", "sk-ant-stored-login-key-99", "sk-ant-from-shell-profile-1"):
        assert secret not in r.out + r.err
    assert load(home.global_config)["primaryApiKey"] == "sk-ant-stored-login-key-99"


def test_empty_api_key_is_not_a_conflict(home: Home, cli: Any) -> None:
    home.write_settings('{"env": {"ANTHROPIC_API_KEY": ""}}')
    assert cli("--key", KEY, "--no-verify").code == 0
    assert load(home.settings)["env"]["ANTHROPIC_API_KEY"] == ""


def test_overrides_are_named(home: Home, cli: Any, monkeypatch: Any) -> None:
    local = home.project / ".claude" / "settings.local.json"
    local.parent.mkdir()
    local.write_text('{"env": {"ANTHROPIC_BASE_URL": "https://api.deepseek.com/anthropic"}}')
    (home.project / ".claude" / "settings.json").write_text(
        '{"env": {"ANTHROPIC_BASE_URL": "http://other:1"}, "apiKeyHelper": "get-key"}'
    )
    (home.managed / "managed-settings.json").write_text(
        '{"env": {"ANTHROPIC_AUTH_TOKEN": "managed-token-abcdefgh"}}'
    )
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 0
    assert "settings.local.json (project-local settings)" in r.out
    assert "api.deepseek.com" in r.out and "wins over ~/.claude/settings.json" in r.out
    assert "http://other:1" not in r.out  # the local file is the one that wins
    assert "managed-settings.json (managed settings)" in r.out and "administrator" in r.out
    assert "managed-token-abcdefgh" not in r.out
    assert "apiKeyHelper is set" in r.out
    assert "your shell exports ANTHROPIC_BASE_URL" in r.out


def test_model_variables(home: Home, cli: Any) -> None:
    r = cli("--key", KEY, "--haiku-model", "deepseek-chat", "--opus-model", "big", "--no-verify")
    assert r.code == 0
    env = load(home.settings)["env"]
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "deepseek-chat"
    assert env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "big"
    assert "ANTHROPIC_DEFAULT_SONNET_MODEL" not in env


def test_placeholder_token_without_key(home: Home, cli: Any) -> None:
    r = cli("--no-verify")
    assert r.code == 0 and "placeholder" in r.out
    assert load(home.settings)["env"]["ANTHROPIC_AUTH_TOKEN"] == "ccgate-local"


def test_token_and_gateway_from_ccgate_config(home: Home, cli: Any, monkeypatch: Any) -> None:
    cfg = home.root / "gw.yaml"
    cfg.write_text(
        "server:\n  port: 4646\n  auth:\n    tokens: [env:GW_TOKEN]\n"
        "providers:\n  - name: anthropic\n    api_keys: [sk-upstream-000000000000]\n"
    )
    monkeypatch.setenv("GW_TOKEN", "tok-from-config-123456789")
    monkeypatch.setenv("CCGATE_CONFIG", str(cfg))
    r = cli("--no-verify")
    assert r.code == 0, r.err
    env = load(home.settings)["env"]
    assert env["ANTHROPIC_AUTH_TOKEN"] == "tok-from-config-123456789"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4646"
    assert "tok-from-config-123456789" not in r.out


@pytest.mark.parametrize(
    ("gateway", "message"),
    [
        ("http://127.0.0.1:4545/v1", "use --gateway http://127.0.0.1:4545"),
        ("127.0.0.1:4545", "expected an http:// or https:// URL"),
        ("http://u:p@127.0.0.1:4545", "not in the URL"),
    ],
)
def test_bad_gateway_url(home: Home, cli: Any, gateway: str, message: str) -> None:
    r = cli("--gateway", gateway, "--no-verify")
    assert r.code == 2 and message in r.err
    assert home.snapshot()["backups"] is None and not home.settings.exists()


def test_non_object_env_is_refused(home: Home, cli: Any) -> None:
    home.write_settings('{"env": ["A=1"]}')
    r = cli("--no-verify")
    assert r.code == 2 and '"env" is not a JSON object' in r.err


def test_bare_setup_prints_usage(home: Home, capsys: Any) -> None:
    from ccgate.cli.main import main

    assert main(["setup"]) == 2
    assert "claude-code" in capsys.readouterr().err


def test_write_failure_puts_first_file_back(home: Home, cli: Any, monkeypatch: Any) -> None:
    home.write_settings('{"model": "opus"}')
    home.global_config.write_text('{"a": 1}')
    before = home.snapshot()
    from ccgate.setup import files

    real = files.atomic_write
    calls = {"n": 0}

    def flaky(target: Path, data: bytes, mode: int, owner: Any) -> None:
        if target == home.global_config.resolve():
            calls["n"] += 1
            raise OSError(28, "No space left on device")
        real(target, data, mode, owner)

    monkeypatch.setattr(files, "atomic_write", flaky)
    r = cli("--key", KEY, "--no-verify")
    assert r.code == 2 and "No space left" in r.err and "put back" in r.err
    snap = home.snapshot()
    assert snap[str(home.settings)] == before[str(home.settings)]
    assert snap[str(home.global_config)] == before[str(home.global_config)]
    assert calls["n"] == 1
    assert sorted(os.listdir(home.settings.parent)) == ["ccgate-backups", "settings.json"]
