"""The interactive ``ccgate connect`` on a real pseudo-terminal (pexpect), as a person uses it:
pick "any OpenAI-compatible endpoint", type the URL, a hidden key, pick a discovered model,
accept the tier defaults, watch the test, wire Claude Code."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from ccgate.config.load import load_config
from ccgate.config.presets import PRESETS
from tests.gateway.harness import clean_env
from tests.lab.scripted import OpenAIText, OpenAIToolCall, ScriptedUpstream, Status

pytestmark = pytest.mark.lab

KEY = "sk-wizard-0123456789abcdef"
MODELS = {"data": [{"id": "lab-large"}, {"id": "lab-small"}]}


def _spawn(tmp_path: Path, config: Path) -> pexpect.spawn:
    env = clean_env({"HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(tmp_path / "run"),
                     "TERM": "dumb"})
    child = pexpect.spawn(sys.executable, ["-m", "ccgate", "connect", "--config", str(config)],
                          env=env, encoding="utf-8", timeout=30, cwd=str(tmp_path))
    child.logfile_read = io.StringIO()  # everything the terminal showed
    return child


def test_wizard_connects_an_openai_compatible_endpoint(
    scripted_upstream: Callable[..., ScriptedUpstream], tmp_path: Path,
) -> None:
    upstream = scripted_upstream(Status(200, MODELS), OpenAIText("ok"),
                                 OpenAIToolCall("get_weather", {"location": "Paris"}))
    (tmp_path / "home").mkdir()
    config = tmp_path / "ccgate.yaml"
    config.write_text("# my config\nserver: {port: 4998}\n")
    child = _spawn(tmp_path, config)
    child.expect("any OpenAI-compatible endpoint")
    child.expect(r"Provider \(number or name\)")
    child.sendline(str(len(PRESETS) + 1))
    child.expect("Base URL")
    child.sendline(upstream.openai_base_url)
    child.expect("Name for it")
    child.sendline("lab")
    child.expect("API key")
    child.sendline(KEY)
    child.expect("lab-small")
    child.expect(r"Model \(number or id\)")
    child.sendline("2")
    child.expect("Use lab-small for every Claude Code tier")
    child.sendline("")
    child.expect("test ok")
    child.expect("tools ok")
    child.expect("Point Claude Code at the gateway")
    child.sendline("y")
    child.expect("Claude Code -> http://127.0.0.1:4998")
    child.expect(pexpect.EOF)
    child.close()
    transcript = child.logfile_read.getvalue()
    assert child.exitstatus == 0, transcript
    assert "API key (hidden" in transcript and KEY not in transcript  # never echoed or printed
    loaded = load_config(str(config), {})
    assert [(r.match, r.to) for r in loaded.config.models] == [("*", "lab/lab-small")]
    assert loaded.secrets.provider_keys["lab"][0].value == KEY
    assert config.read_text().startswith("# my config\n")
    settings = json.loads((tmp_path / "home" / ".claude" / "settings.json").read_text())
    assert settings["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4998"


def test_wizard_failed_test_saves_nothing(
    scripted_upstream: Callable[..., ScriptedUpstream], tmp_path: Path,
) -> None:
    upstream = scripted_upstream(Status(404, b"not found"),
                                 Status.openai_error(401, "Incorrect API key provided", err_code="invalid_api_key"))
    (tmp_path / "home").mkdir()
    config = tmp_path / "ccgate.yaml"
    config.write_text("# my config\n")
    child = _spawn(tmp_path, config)
    child.expect(r"Provider \(number or name\)")
    child.sendline(str(len(PRESETS) + 1))
    child.expect("Base URL")
    child.sendline(upstream.openai_base_url)
    child.expect("Name for it")
    child.sendline("")
    child.expect("API key")
    child.sendline("sk-wrong-key-0000000000")
    child.expect("lists no models")
    child.expect("Model id")
    child.sendline("typed-model")
    child.expect("for every Claude Code tier")
    child.sendline("")
    child.expect("Incorrect API key provided")
    child.expect(r"Save anyway\?")
    child.sendline("n")
    child.expect("Nothing saved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ccgate.yaml", "home"]
    assert config.read_text() == "# my config\n"
