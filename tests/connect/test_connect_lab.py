"""The connect backend and CLI against the lab's scripted upstreams (real sockets, loopback only):
OpenAI- and Anthropic-compatible servers, one without a model list, one answering 401, one
answering HTML, one that is down; then the flags path end to end through a real ``ccgate serve``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccgate.connect import Connector, ProviderInput
from tests.gateway.harness import Gateway, clean_env, free_port
from tests.lab.claude_cli import run_claude
from tests.lab.scripted import (
    AnthropicText,
    AnthropicToolUse,
    OpenAIText,
    OpenAIToolCall,
    ScriptedUpstream,
    Status,
)

pytestmark = pytest.mark.lab

KEY = "sk-lab-connect-0123456789abcdef"
MODELS = {"object": "list", "data": [{"id": "lab-large", "object": "model", "owned_by": "lab"},
                                     {"id": "lab-small", "object": "model", "owned_by": "lab"}]}
Make = Callable[..., ScriptedUpstream]


def _spec(upstream: ScriptedUpstream, **kw: Any) -> ProviderInput:
    args: dict[str, Any] = {"base_url": upstream.openai_base_url, "kind": "openai-compatible",
                            "name": "lab", "key": KEY}
    return ProviderInput(**{**args, **kw})


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_openai_compatible_discover_check_and_save(scripted_upstream: Make, tmp_path: Path) -> None:
    upstream = scripted_upstream(Status(200, MODELS), OpenAIText("ok"),
                                 OpenAIToolCall("get_weather", {"location": "Paris"}))
    connector = Connector(tmp_path / "ccgate.yaml", {})
    models = asyncio.run(connector.discover_models(_spec(upstream)))
    assert [m.id for m in models] == ["lab-large", "lab-small"]
    result = asyncio.run(connector.connect(_spec(upstream, models=("lab-large",))))
    assert result.saved and result.check is not None and result.check.ok
    assert result.check.status == 200 and result.check.latency_ms is not None
    assert result.check.tools == "tool_call"
    listed, minimal, tool = upstream.requests
    assert listed.path == "/v1/models" and listed.header("authorization") == f"Bearer {KEY}"
    assert minimal.path == "/v1/chat/completions" and minimal.json["max_tokens"] == 1
    assert minimal.json["model"] == "lab-large" and minimal.json["stream"] is False
    assert tool.tools and tool.tools[0]["function"]["name"] == "get_weather"


def test_tools_answered_as_plain_text_is_said(scripted_upstream: Make, tmp_path: Path) -> None:
    upstream = scripted_upstream(OpenAIText("ok"),
                                 OpenAIText('{"name": "get_weather", "arguments": {"location": "Paris"}}'))
    check = asyncio.run(Connector(tmp_path / "c.yaml", {}).check(_spec(upstream), "m", tools=True))
    assert check.ok and check.tools == "text_instead" and "plain text" in (check.tools_message or "")


def test_anthropic_compatible(scripted_upstream: Make, tmp_path: Path) -> None:
    listing = {"data": [{"type": "model", "id": "glm-4.6", "display_name": "GLM 4.6"}], "has_more": False}
    upstream = scripted_upstream(Status(200, listing), AnthropicText("ok"),
                                 AnthropicToolUse("get_weather", {"location": "Paris"}))
    spec = ProviderInput(base_url=upstream.url, kind="anthropic-compatible", name="glm", key=KEY,
                         models=("glm-4.6",))
    connector = Connector(tmp_path / "ccgate.yaml", {})
    models = asyncio.run(connector.discover_models(spec))
    assert [(m.id, m.display_name) for m in models] == [("glm-4.6", "GLM 4.6")]
    result = asyncio.run(connector.connect(spec))
    assert result.saved and result.check is not None and result.check.ok
    assert result.check.tools == "tool_call"
    listed, minimal, _ = upstream.requests
    assert listed.path == "/v1/models" and minimal.path == "/v1/messages"
    assert minimal.header("x-api-key") == KEY and minimal.header("anthropic-version")
    assert minimal.json["max_tokens"] == 1


def test_no_model_list_falls_back_to_typed_ids(scripted_upstream: Make, tmp_path: Path) -> None:
    upstream = scripted_upstream(Status(404, b"404 page not found"))
    models = asyncio.run(Connector(tmp_path / "c.yaml", {}).discover_models(_spec(upstream, models=("typed-1",))))
    assert [(m.id, m.source) for m in models] == [("typed-1", "typed")]


@pytest.mark.parametrize(("answer", "finding", "words"), [
    (Status.openai_error(401, "Incorrect API key provided: sk-lab-c...cdef", err_code="invalid_api_key"),
     "api.invalid_key", "Incorrect API key provided"),
    (Status(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", {"content-type": "text/html"}),
     "http.intermediary_response", "502 Bad Gateway"),
    (Status(200, b"<!doctype html><html>Sign in</html>", {"content-type": "text/html"}),
     "http.intermediary_response", "HTML"),
])
def test_failed_check_saves_nothing(scripted_upstream: Make, tmp_path: Path, answer: Status,
                                    finding: str, words: str) -> None:
    upstream = scripted_upstream(answer)
    path = tmp_path / "ccgate.yaml"
    path.write_text("# mine\nserver: {port: 4999}\n")
    before = _files(tmp_path)
    result = asyncio.run(Connector(path, {}).connect(_spec(upstream, models=("m",))))
    assert result.action == "not_saved" and result.check is not None
    assert result.check.finding == finding and words in result.check.message
    assert KEY not in result.check.message
    assert _files(tmp_path) == before


def test_server_that_is_down(tmp_path: Path) -> None:
    spec = ProviderInput(base_url=f"http://127.0.0.1:{free_port()}/v1", kind="openai-compatible",
                         name="down", key=KEY, models=("m",))
    result = asyncio.run(Connector(tmp_path / "ccgate.yaml", {}).connect(spec))
    assert result.action == "not_saved" and result.check is not None
    assert result.check.hop == "tcp" and result.check.finding == "net.tcp_blocked"
    assert "cannot connect" in result.check.message and not (tmp_path / "ccgate.yaml").exists()


def test_probe_local_finds_a_server_on_its_port(scripted_upstream: Make, tmp_path: Path) -> None:
    upstream = scripted_upstream(Status(200, MODELS))
    port = int(upstream.http_url.rsplit(":", 1)[1])
    found = asyncio.run(Connector(tmp_path / "c.yaml", {}).probe_local({"vllm": port, "ollama": free_port()}))
    assert [(s.preset, [m.id for m in s.models]) for s in found] == [("vllm", ["lab-large", "lab-small"])]


def _ccgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccgate", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_flags_end_to_end_through_serve(scripted_upstream: Make, tmp_path: Path, claude_bin: Path) -> None:
    """connect --yes in a fresh HOME; then config check passes, serve routes to the new provider,
    and the real Claude Code CLI answers through it with no other step (settings connect wrote)."""
    upstream = scripted_upstream(OpenAIText("ok"), OpenAIToolCall("get_weather", {"location": "x"}))
    home = tmp_path / "home"
    home.mkdir()
    gateway = Gateway(tmp_path / "cfg", {})  # writes ccgate.yaml with a free port
    config = gateway.config_path
    env = clean_env({"HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "run")})
    done = _ccgate("connect", "--base-url", upstream.openai_base_url, "--kind", "openai-compatible",
                   "--name", "lab", "--key", KEY, "--model", "lab-large", "--config", str(config),
                   "--yes", "--json", env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert report["connect"]["saved"] and report["connect"]["check"]["ok"]
    assert KEY not in done.stdout + done.stderr and KEY not in config.read_text()
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert settings["env"]["ANTHROPIC_BASE_URL"] == gateway.url
    # A translated provider's models are offered in /model through the gateway's aliases.
    assert settings["env"]["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] == "1"
    assert "no ccgate answers" in report["gateway"]["message"]
    check = _ccgate("config", "check", "--config", str(config), env=env)
    assert check.returncode == 0, check.stderr
    gateway.start()
    try:
        answer = httpx.post(gateway.url + "/v1/messages", timeout=20, json={
            "model": "claude-sonnet-4-5", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200, answer.text
        last = upstream.last
        assert last.path == "/v1/chat/completions" and last.json["model"] == "lab-large"
        assert last.header("authorization") == f"Bearer {KEY}"
        result = run_claude("Say hello", base_url="", home=home, max_retries=0, timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Hello from the scripted upstream." in result.stdout
        assert upstream.last.json["model"] == "lab-large"
    finally:
        gateway.stop()


def test_flags_bad_input_exit_2_and_nothing_written(tmp_path: Path) -> None:
    config = tmp_path / "ccgate.yaml"
    config.write_text("# mine\n")
    env = clean_env({"HOME": str(tmp_path)})
    for args in (["--preset", "nope"], ["--base-url", "http://x/v1"], ["--kind", "openai-compatible"],
                 ["--preset", "ollama", "--map", "opus"]):
        done = _ccgate("connect", *args, "--config", str(config), "--yes", env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert "error:" in done.stderr
    assert sorted(tmp_path.iterdir()) == [config] and config.read_text() == "# mine\n"


def test_providers_and_models_commands(scripted_upstream: Make, tmp_path: Path) -> None:
    upstream = scripted_upstream(default=None)
    upstream.script(Status(200, MODELS), OpenAIText("ok"))
    config = tmp_path / "ccgate.yaml"
    env = clean_env({"HOME": str(tmp_path)})
    asyncio.run(Connector(config, env).connect(_spec(upstream, models=("lab-large",)), test=False))
    listed = json.loads(_ccgate("providers", "list", "--config", str(config), "--json", env=env).stdout)
    assert [p["name"] for p in listed["providers"]] == ["lab"]
    models = json.loads(_ccgate("models", "lab", "--config", str(config), "--json", env=env).stdout)
    assert [m["id"] for m in models["providers"][0]["models"]] == ["lab-large", "lab-small"]
    assert models["providers"][0]["routes"] == [{"match": "*", "to": "lab/lab-large"}]
    tested = _ccgate("providers", "test", "lab", "--config", str(config), "--json", env=env)
    assert tested.returncode == 0 and json.loads(tested.stdout)["ok"]
    assert upstream.last.json["model"] == "lab-large"
    removed = _ccgate("providers", "remove", "lab", "--config", str(config), env=env)
    assert removed.returncode == 0, removed.stderr
    assert "lab" not in [p.name for p in Connector(config, env).providers()]
    assert "key file" in removed.stdout and (tmp_path / "secrets" / "lab.key").exists()  # kept for undo


def test_connect_makes_a_running_gateway_reload(scripted_upstream: Make, tmp_path: Path) -> None:
    pytest.importorskip("ccgate.server.control")
    first = scripted_upstream(name="first")
    second = scripted_upstream(name="second")
    (tmp_path / "run").mkdir(mode=0o700)
    extra = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    gateway = Gateway(tmp_path / "cfg", {
        "providers": [{"name": "first", "kind": "openai-compatible", "base_url": first.openai_base_url,
                       "auth_header": "none"}],
        "models": [{"match": "*", "to": "first/m1"}]}, env=extra).start()
    try:
        done = _ccgate("connect", "--base-url", second.openai_base_url, "--kind", "openai-compatible",
                       "--name", "second", "--model", "m2", "--config", str(gateway.config_path),
                       "--no-claude-code", "--yes", "--json", env=clean_env(extra))
        assert done.returncode == 0, done.stderr + done.stdout
        assert "SIGHUP" in json.loads(done.stdout)["gateway"]["message"]
        tested = len(second.requests)
        body = {"model": "claude-sonnet-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(100):  # the reload is asynchronous: wait until requests reach the new provider
            assert httpx.post(gateway.url + "/v1/messages", json=body, timeout=10).status_code == 200
            if len(second.requests) > tested:
                break
            time.sleep(0.05)
        assert second.last.json["model"] == "m2"
    finally:
        gateway.stop()
