"""Slow self-hosted providers (issue 13; docs/providers.md, "Slow self-hosted providers").

Claude Code drops a stream after CLAUDE_STREAM_IDLE_TIMEOUT_MS (floor 300,000 ms) without a
stream event; pings re-arm that watchdog only 30 times in a row. Waiting 300 s in a test is not
possible, so what is tested is each half of the remedy: the gateway's side (``message_start``
as soon as the provider answers, before its first chunk, then pings through the provider's
silence) and setup's side (a provider marked ``slow: true`` gets Claude Code the longest idle
timeouts it allows)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ccgate.config.load import load_client_view
from ccgate.setup import build_plan
from ccgate.setup.model import SetupOptions
from ccgate.setup.plan import SLOW_ENV, SLOW_TIMEOUT_MS
from ccgate.upstream.mock import Pause, Reply
from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory
from tests.gateway.inprocess import InProcessGateway
from tests.gateway.test_inprocess import CLIENT, MSG, SSE, openai
from tests.gateway.test_translation_e2e import translation_config
from tests.lab.claude_cli import run_claude
from tests.lab.scripted import (
    DONE,
    Callback,
    Chunks,
    OpenAIText,
    ScriptedRequest,
    ScriptedUpstream,
    openai_chunk,
    openai_sse,
)


def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    import json

    return b"data: " + json.dumps({"id": "c", "choices": [{"index": 0, "delta": delta,
                                                          "finish_reason": finish}]}).encode() + b"\n\n"


async def test_message_start_goes_out_before_the_first_upstream_chunk_then_pings(tmp_path: Path) -> None:
    config = {"server": {"ping_interval": 0.02}, "providers": [openai(slow=True)],
              "models": [{"match": "claude-*", "to": "local/qwen3"}]}
    # The provider answers its headers, then reads the prompt (silence), then streams.
    reply = Reply(200, SSE, [Pause(0.2), chunk({"content": "Hi"}), chunk({}, "stop"), b"data: [DONE]\n\n"])
    async with InProcessGateway(tmp_path, config, {"local": [reply]}) as gw:
        answer = await gw.post("/v1/messages", {**MSG, "stream": True}, headers=CLIENT)
    names = [e for e, _ in answer.events()]
    first_content = names.index("content_block_start")
    assert names[0] == "message_start"
    assert names[1:first_content] and set(names[1:first_content]) == {"ping"}  # the silence, covered
    assert names[-1] == "message_stop"


def write_config(tmp_path: Path, slow: bool) -> Path:
    path = tmp_path / "ccgate.yaml"
    path.write_text("providers:\n  - name: llama\n    kind: openai-compatible\n"
                    f"    base_url: http://127.0.0.1:8080/v1\n    auth_header: none\n    slow: {str(slow).lower()}\n")
    return path


@pytest.mark.parametrize("slow", [True, False])
def test_setup_gives_claude_code_its_longest_idle_timeouts_for_a_slow_provider(tmp_path: Path, slow: bool) -> None:
    view = load_client_view(str(write_config(tmp_path, slow)), {})
    assert view.slow_providers == (("llama",) if slow else ())
    home = tmp_path / "home"
    home.mkdir()
    plan = build_plan(SetupOptions(gateway=view.url, key="k" * 20, home=home, project_dir=home, env={},
                                   slow_providers=view.slow_providers))
    changed = {c.key: c.new for c in plan.changes}
    for var in SLOW_ENV:
        assert changed.get(f"env.{var}") == (str(SLOW_TIMEOUT_MS) if slow else None)


def test_setup_keeps_a_longer_or_disabled_timeout_the_user_set(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(
        '{"env": {"CLAUDE_STREAM_IDLE_TIMEOUT_MS": "1800000", "API_TIMEOUT_MS": "0"}}')
    plan = build_plan(SetupOptions(gateway="http://127.0.0.1:4545", key="k" * 20, home=home, project_dir=home,
                                   env={}, slow_providers=("llama",)))
    assert not [c for c in plan.changes if c.key.removeprefix("env.") in SLOW_ENV]


# The real CLI: what ccgate's pings do for Claude Code's watchdogs ---------------------------------

SILENCE = 25.0  # seconds the provider says nothing after its first chunk


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.parametrize("ping_interval", [2.0, 60.0], ids=["pings", "no-pings"])
def test_pings_keep_claude_codes_byte_watchdog_from_dropping_a_silent_stream(
    scripted_upstream: Callable[..., ScriptedUpstream], gateway: GatewayFactory, ping_interval: float,
) -> None:
    """The stream watchdog's 300 s floor cannot be waited for; the byte watchdog can be set to 10 s
    (CLAUDE_BYTE_STREAM_IDLE_TIMEOUT_MS, floor 10,000). With ccgate pinging every 2 s, the pinned
    CLI sits through 25 s of provider silence on one stream; without pings it gives that stream up
    after about 10 s and asks again without streaming (its fallback)."""

    def decide(req: ScriptedRequest) -> Any:
        if not (req.json or {}).get("stream"):
            return OpenAIText("Answered without streaming.")
        return Chunks([openai_sse(openai_chunk({"role": "assistant", "content": ""})), SILENCE,
                       openai_sse(openai_chunk({"content": "Survived the silence."})),
                       openai_sse(openai_chunk({}, finish_reason="stop")), DONE])

    up = scripted_upstream(default=Callback(decide), name="openai")
    gw = gateway(translation_config(up, ping_interval=ping_interval))
    result = run_claude("hi", base_url=gw.url, auth_token=CLIENT_TOKEN, max_retries=0, timeout=120,
                        env={"CLAUDE_BYTE_STREAM_IDLE_TIMEOUT_MS": "10000"})
    streamed = [bool((r.json or {}).get("stream")) for r in up.requests_to("/chat/completions")]
    if ping_interval < SILENCE:
        assert result.returncode == 0, result.stderr
        assert "Survived the silence." in result.stdout and streamed == [True]
    else:
        assert streamed[:2] == [True, False], streamed  # the silent stream was dropped
        assert "Survived the silence." not in result.stdout


def test_print_env_sets_the_same_timeouts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from ccgate.cli.main import main

    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["setup", "claude-code", "--config", str(write_config(tmp_path, True)), "--key", "k" * 20,
                 "--print-env", "bash"]) == 0
    out = capsys.readouterr().out
    for var in SLOW_ENV:
        assert f"export {var}='{SLOW_TIMEOUT_MS}'" in out
