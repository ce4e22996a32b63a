"""``ccgate code`` without processes: argument pass-through, the child's environment, and the
refusal when Claude Code is not installed (the lab test runs the real thing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccgate.cli.code import EXIT_NO_CLAUDE, plan_launch
from ccgate.cli.main import build_parser, main
from ccgate.config.load import GatewayClientView
from ccgate.config.secrets import Secret


def test_every_argument_goes_to_claude_unchanged() -> None:
    argv = ["-p", "hi there", "--help", "--version", "--", "-x", "--config", "f"]
    assert build_parser().parse_args(["code", *argv]).claude_args == argv
    assert build_parser().parse_args(["code"]).claude_args == []


def test_refuses_when_claude_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["code", "-p", "hi"]) == EXIT_NO_CLAUDE
    err = capsys.readouterr().err
    assert "Claude Code is not installed" in err and "npm install -g @anthropic-ai/claude-code" in err


def _view(*tokens: str, host: str = "0.0.0.0") -> GatewayClientView:
    return GatewayClientView(None, host, 4646, {f"t{i}": Secret(t) for i, t in enumerate(tokens)})


def test_child_environment(tmp_path: Path) -> None:
    shell = {"PATH": "/bin", "HOME": str(tmp_path), "HTTPS_PROXY": "http://proxy:3128",
             "http_proxy": "http://proxy:3128", "ALL_PROXY": "socks5://p:1080",
             "ANTHROPIC_API_KEY": "sk-ant-shell-0000", "NO_PROXY": "corp.example", "KEEP": "1"}
    launch = plan_launch("/usr/bin/claude", ["-p", "hi"], shell, _view("tok-1", "tok-2"), tmp_path, tmp_path)
    assert launch.argv == ["/usr/bin/claude", "-p", "hi"]
    assert launch.env == {"PATH": "/bin", "HOME": str(tmp_path), "NO_PROXY": "corp.example", "KEEP": "1",
                          "ANTHROPIC_BASE_URL": "http://127.0.0.1:4646", "ANTHROPIC_AUTH_TOKEN": "tok-1"}
    assert shell["HTTPS_PROXY"] == "http://proxy:3128"  # the caller's mapping is not changed
    assert launch.notes == []


def test_token_placeholder_and_override(tmp_path: Path) -> None:
    plain = plan_launch("claude", [], {}, _view(host="::1"), tmp_path, tmp_path)
    assert plain.env["ANTHROPIC_AUTH_TOKEN"] == "ccgate-local"
    assert plain.env["ANTHROPIC_BASE_URL"] == "http://[::1]:4646"
    issued = plan_launch("claude", [], {"CCGATE_KEY": "sk-issued-1"}, _view("tok-1"), tmp_path, tmp_path)
    assert issued.env["ANTHROPIC_AUTH_TOKEN"] == "sk-issued-1"


def test_settings_that_win_over_the_environment_are_named(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text('{"env": {"ANTHROPIC_BASE_URL": "https://elsewhere", "OTHER": "x"}}')
    shell = {"CCGATE_CLAUDE_MANAGED_DIR": str(tmp_path / "managed")}
    launch = plan_launch("claude", [], shell, _view(), tmp_path, tmp_path / "project")
    assert len(launch.notes) == 1 and "ANTHROPIC_BASE_URL" in launch.notes[0] and "OTHER" not in launch.notes[0]
