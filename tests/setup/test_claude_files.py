"""Setup and the doctor share one model of Claude Code's files (``ccgate.claude_code``): the file
setup marks onboarding done in is the file the doctor (setup's own check) reads, wherever
Claude Code keeps it."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from ccgate.claude_code.files import ClaudeFiles, onboarding_done
from ccgate.doctor import DoctorOptions, run_checks
from ccgate.doctor.inputs import gather

from .conftest import Home

KEY = "sk-gw-test-0123456789abcdef"


def doctor_options(home: Home) -> DoctorOptions:
    """The doctor as setup's check runs it: the same environment, HOME and project."""
    return DoctorOptions(env=dict(os.environ), home=home.root, cwd=home.project,
                         api_check=False, preflight="never", claude_version="2.1.330")


@pytest.mark.parametrize("config_dir", [None, "cc-config"])
@pytest.mark.parametrize("legacy", [False, True])
def test_setup_marks_onboarding_in_the_file_the_doctor_reads(
    home: Home, cli: Any, monkeypatch: pytest.MonkeyPatch, config_dir: str | None, legacy: bool
) -> None:
    claude_dir = home.root / ".claude"
    default = home.global_config
    if config_dir is not None:
        claude_dir = home.root / config_dir
        default = claude_dir / ".claude.json"
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(claude_dir))
    expected = default
    if legacy:
        # An older Claude Code left its state in <config dir>/.config.json; while it is not
        # empty, Claude Code reads it and not .claude.json (checked with the 2.1.330 binary).
        expected = claude_dir / ".config.json"
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_text('{"numStartups": 12}')
        default.write_text('{"numStartups": 1}')

    assert cli("--key", KEY, "--no-verify").code == 0

    written = json.loads(expected.read_text())
    assert written["hasCompletedOnboarding"] is True
    if legacy:
        assert written["numStartups"] == 12
        assert "hasCompletedOnboarding" not in json.loads(default.read_text())
    inputs = gather(doctor_options(home))
    assert inputs.global_config_path == expected
    assert onboarding_done(inputs.global_config)
    claude_layer = next(s for s in run_checks(doctor_options(home)).layers if s.layer == "claude")
    assert "onboarding done" in claude_layer.note and "not done" not in claude_layer.note


def test_an_empty_legacy_file_does_not_win(home: Home, cli: Any) -> None:
    legacy = home.root / ".claude" / ".config.json"
    legacy.parent.mkdir()
    legacy.write_text("")
    assert cli("--key", KEY, "--no-verify").code == 0
    assert legacy.read_text() == ""
    assert json.loads(home.global_config.read_text()) == {"hasCompletedOnboarding": True}
    assert gather(doctor_options(home)).global_config_path == home.global_config


def test_doctor_applies_settings_in_setups_precedence(home: Home) -> None:
    """Both read the same files in the same order, including managed drop-ins."""
    home.write_settings('{"env": {"ANTHROPIC_BASE_URL": "http://user:1"}}')
    project = home.project / ".claude"
    project.mkdir()
    (project / "settings.json").write_text('{"env": {"ANTHROPIC_BASE_URL": "http://project:1"}}')
    (home.managed / "managed-settings.json").write_text('{"env": {"ANTHROPIC_BASE_URL": "http://managed:1"}}')
    drop_ins = home.managed / "managed-settings.d"
    drop_ins.mkdir()
    (drop_ins / "10-gateway.json").write_text('{"env": {"ANTHROPIC_BASE_URL": "http://drop-in:1"}}')
    (drop_ins / "notes.txt").write_text("not settings")

    files = ClaudeFiles.locate(dict(os.environ), home.root)
    order = [f.path for f in files.settings_files(home.project)]
    assert order == [
        home.settings,
        project / "settings.json",
        project / "settings.local.json",
        home.managed / "managed-settings.json",
        drop_ins / "10-gateway.json",
    ]
    inputs = gather(doctor_options(home))
    assert inputs.base_url == "http://drop-in:1"
    assert inputs.base_url_source == str(drop_ins / "10-gateway.json")


def test_project_in_home_is_not_counted_twice(home: Home) -> None:
    files = ClaudeFiles.locate({}, home.root, home.managed)
    scopes = [f.scope for f in files.settings_files(home.root)]
    assert scopes == ["user settings", "project-local settings", "managed settings"]


def test_plan_is_pure_over_what_gather_read(home: Home) -> None:
    """gather reads; plan_changes only computes: it edits copies and touches no file."""
    from ccgate.setup import SetupOptions
    from ccgate.setup.gather import gather as gather_setup
    from ccgate.setup.plan import plan_changes

    home.write_settings('{"env": {"ANTHROPIC_API_KEY": "sk-ant-leftover-000000000"}}')
    options = SetupOptions(key=KEY, env=dict(os.environ), home=home.root, project_dir=home.project)
    inputs = gather_setup(options)
    home.settings.unlink()  # planning must not need the files any more
    first, second = plan_changes(options, inputs), plan_changes(options, inputs)
    assert [new for _, new in first.writes] == [new for _, new in second.writes]
    assert [c.key for c in first.changes] == [c.key for c in second.changes]
    assert inputs.user_settings.doc.encoded() == inputs.user_settings.state.raw  # not edited
    assert not home.settings.exists() and not home.global_config.exists()
