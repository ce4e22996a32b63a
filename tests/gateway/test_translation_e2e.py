"""Translation end to end: clients speak Anthropic to a real ``ccgate serve``, which speaks
OpenAI Chat Completions to a scripted OpenAI-compatible upstream (tests/lab/scripted.py).

* the real Claude Code CLI (pinned) runs a tool (``Write``) on a tool call the upstream made,
  and prints the upstream's final answer;
* the official ``anthropic`` SDK holds a three-turn conversation (text, tool use, tool result),
  streaming and not;
* error paths: context overflow, the provider refusing ccgate's key, a stream reset after its
  first byte, and a long upstream silence (pings).

Config (``kind: openai-compatible``; ``base_url`` is OpenAI's style, including ``/v1``):

    providers: [{name: local, kind: openai-compatible, base_url: http://127.0.0.1:PORT/v1,
                 api_keys: [upstream-key-1]}]
    models: [{match: "*", to: local/qwen3-coder}]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory
from tests.gateway.harness import Gateway
from tests.lab.claude_cli import run_claude
from tests.lab.scripted import (
    DONE,
    Callback,
    Chunks,
    OpenAIText,
    OpenAIToolCall,
    ResetAfterFirstByte,
    ScriptedRequest,
    ScriptedUpstream,
    Status,
    openai_chunk,
    openai_sse,
)
from tests.lab.sdk import sdk_client

pytestmark = pytest.mark.lab

MakeUpstream = Callable[..., ScriptedUpstream]
UPSTREAM_KEY = "upstream-key-1"
UPSTREAM_MODEL = "qwen3-coder"
PROVIDER = "local"
HEADERS = {"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01",
           "content-type": "application/json"}
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                     "required": ["location"]},
}
SYSTEM = "You are a terse assistant."


def translation_config(upstream: ScriptedUpstream, **server: Any) -> dict[str, Any]:
    return {
        "server": {"auth": {"tokens": [CLIENT_TOKEN]}, **server},
        "providers": [{"name": PROVIDER, "kind": "openai-compatible",
                       "base_url": upstream.openai_base_url, "api_keys": [UPSTREAM_KEY]}],
        "models": [{"match": "*", "to": f"{PROVIDER}/{UPSTREAM_MODEL}"}],
    }


def server_option_exists(name: str) -> bool:
    """Whether ``server.<name>`` is in ccgate's config schema (unknown keys are errors)."""
    from ccgate.config.model import Server

    return name in Server.__struct_fields__


def text_of(content: Any) -> str:
    """OpenAI message content (a string or a list of text parts) as one string."""
    if isinstance(content, str):
        return content
    assert isinstance(content, list), content
    assert all(p.get("type") == "text" for p in content), content
    return "".join(p["text"] for p in content)


def assert_upstream_basics(req: ScriptedRequest, *, stream: bool) -> None:
    """What every translated request must look like on the OpenAI side."""
    assert req.method == "POST" and req.path.split("?")[0] == "/v1/chat/completions", req
    assert req.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert req.header("x-api-key") is None  # the client's credential never goes upstream
    assert all(CLIENT_TOKEN not in v for _, v in req.headers)
    assert not any(k.startswith("anthropic-") for k in req.header_names)
    body = req.json
    assert isinstance(body, dict) and body["model"] == UPSTREAM_MODEL
    assert bool(body.get("stream")) is stream
    if stream:
        assert body["stream_options"]["include_usage"] is True


def assert_no_secret_leak(gw: Gateway, *texts: str | bytes) -> None:
    for text in texts:
        raw = text.encode() if isinstance(text, str) else text
        assert UPSTREAM_KEY.encode() not in raw and CLIENT_TOKEN.encode() not in raw
    assert UPSTREAM_KEY not in gw.log and CLIENT_TOKEN not in gw.log


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Anthropic SSE frames as (event name, data)."""
    out = []
    for frame in raw.decode().replace("\r\n", "\n").split("\n\n"):
        lines = [ln for ln in frame.split("\n") if ln and not ln.startswith(":")]
        if not lines:
            continue
        fields = dict(ln.split(":", 1) for ln in lines)
        out.append((fields["event"].strip(), json.loads(fields["data"])))
    return out


# --- Claude Code, end to end -------------------------------------------------------------------
def test_claude_code_runs_write_tool_through_openai_upstream(
    claude_version_bin: tuple[str, Path], scripted_upstream: MakeUpstream, gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    """Claude Code 2.1.330 sends the ``Write`` tool as ``{"file_path", "content"}`` (both
    required, additionalProperties false); ``--allowedTools Write`` lets ``-p`` run it without
    asking (``--dangerously-skip-permissions`` is refused when running as root). Once per
    version of the matrix (tests/lab/claude_cli.claude_matrix)."""
    _, binary = claude_version_bin
    workspace = tmp_path / "home"
    workspace.mkdir()
    target = workspace / "hello.txt"
    file_text = "written by Claude Code via ccgate\nline two\n"
    final_text = "Done: hello.txt now exists."
    call_id = "call_W7rite0000000000000001"

    def decide(req: ScriptedRequest) -> Any:
        # After the tool ran, the conversation holds its result: answer. (2.1.260 sends a text
        # block with the tool_result, so a user message follows the tool message there.)
        if any(m.get("role") == "tool" for m in req.messages):
            return OpenAIText(final_text, chunks=3)
        names = {t.get("function", {}).get("name") for t in req.tools}
        if "Write" in names:  # the main turn: Claude Code's full tool list
            return OpenAIToolCall("Write", {"file_path": str(target), "content": file_text},
                                  id=call_id, text_before="I'll write the file.")
        return OpenAIText("Side answer.")  # title generation, haiku-class side calls, ...

    up = scripted_upstream(default=Callback(decide), name="openai")
    gw = gateway(translation_config(up))
    result = run_claude("Create hello.txt in the current directory.", base_url=gw.url,
                        auth_token=CLIENT_TOKEN, max_retries=0, timeout=150,
                        args=("--allowedTools", "Write"), home=workspace, binary=binary)
    assert result.returncode == 0, (result.stdout, result.stderr, gw.log[-3000:])
    assert final_text in result.stdout
    assert target.read_text() == file_text

    chats = up.requests_to("/chat/completions")
    main = next(r for r in chats if any(t.get("function", {}).get("name") == "Write" for t in r.tools))
    assert_upstream_basics(main, stream=True)  # Claude Code streams, so ccgate streams upstream
    (write_tool,) = [t for t in main.tools if t["function"]["name"] == "Write"]
    assert write_tool["type"] == "function"
    props = write_tool["function"]["parameters"]["properties"]
    assert {"file_path", "content"} <= set(props)

    final = next(r for r in chats if any(m.get("role") == "tool" for m in r.messages))
    assert_upstream_basics(final, stream=True)
    msgs = final.messages
    assert msgs[0]["role"] == "system"
    tool_idx = next(i for i, m in enumerate(msgs) if m["role"] == "tool")
    assistant = msgs[tool_idx - 1]
    assert assistant["role"] == "assistant"
    (tc,) = assistant["tool_calls"]
    assert tc["id"] == call_id and tc["type"] == "function" and tc["function"]["name"] == "Write"
    assert json.loads(tc["function"]["arguments"]) == {"file_path": str(target), "content": file_text}
    tool_msg = msgs[tool_idx]
    assert tool_msg["tool_call_id"] == call_id
    assert text_of(tool_msg["content"]).strip()  # Claude Code's "File created successfully ..."
    assert all(r.model == UPSTREAM_MODEL for r in chats)
    assert_no_secret_leak(gw, result.stdout, result.stderr)


# --- the official SDK, three turns -------------------------------------------------------------
def _sdk_turn(client: anthropic.Anthropic, stream: bool, **kwargs: Any) -> anthropic.types.Message:
    params: dict[str, Any] = {"model": "claude-opus-4-8", "max_tokens": 512, "system": SYSTEM,
                              "tools": [WEATHER_TOOL], **kwargs}
    if stream:
        with client.messages.stream(**params) as s:
            return s.get_final_message()
    return client.messages.create(**params)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_sdk_multi_turn_text_tool_use_tool_result(
    stream: bool, scripted_upstream: MakeUpstream, gateway: GatewayFactory,
) -> None:
    call_id = "call_Wx9f2Lq0bN3kT5aZ8yUc1D4e"
    up = scripted_upstream(
        OpenAIText("Hello! How can I help?", chunks=3),
        OpenAIToolCall("get_weather", {"location": "Paris"}, id=call_id, text_before="Let me check."),
        OpenAIText("It is sunny in Paris, 22 degrees.", chunks=4),
        name="openai",
    )
    gw = gateway(translation_config(up))
    client = sdk_client(gw.url, api_key=CLIENT_TOKEN)

    history: list[dict[str, Any]] = [{"role": "user", "content": "Hi"}]
    m1 = _sdk_turn(client, stream, messages=history)
    assert m1.stop_reason == "end_turn" and [b.type for b in m1.content] == ["text"]
    assert m1.content[0].type == "text" and m1.content[0].text == "Hello! How can I help?"
    assert m1.usage.input_tokens > 0 and m1.usage.output_tokens > 0

    history += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m1.content]},
                {"role": "user", "content": "What's the weather in Paris?"}]
    m2 = _sdk_turn(client, stream, messages=history)
    assert m2.stop_reason == "tool_use"
    assert [b.type for b in m2.content] == ["text", "tool_use"]
    tool_use = m2.content[1]
    assert tool_use.type == "tool_use" and tool_use.name == "get_weather"
    assert tool_use.input == {"location": "Paris"} and tool_use.id

    history += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m2.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny, 22C"},
            {"type": "text", "text": "Answer in one sentence."},
        ]},
    ]
    m3 = _sdk_turn(client, stream, messages=history)
    assert m3.stop_reason == "end_turn"
    assert m3.content[0].type == "text" and m3.content[0].text == "It is sunny in Paris, 22 degrees."

    r1, r2, r3 = up.requests
    for req in (r1, r2, r3):
        assert_upstream_basics(req, stream=stream)
        (tool,) = req.tools
        assert tool["type"] == "function" and tool["function"]["name"] == "get_weather"
        assert tool["function"]["parameters"]["properties"] == {"location": {"type": "string"}}
        assert req.messages[0]["role"] == "system" and text_of(req.messages[0]["content"]) == SYSTEM
    assert [m["role"] for m in r1.messages] == ["system", "user"]
    assert text_of(r1.messages[1]["content"]) == "Hi"
    assert [m["role"] for m in r2.messages] == ["system", "user", "assistant", "user"]
    assert text_of(r2.messages[2]["content"]) == "Hello! How can I help?"
    assert [m["role"] for m in r3.messages] == ["system", "user", "assistant", "user", "assistant",
                                               "tool", "user"]  # tool results before user text
    asst = r3.messages[4]
    (tc,) = asst["tool_calls"]
    assert tc["id"] == call_id and tc["type"] == "function" and tc["function"]["name"] == "get_weather"
    assert json.loads(tc["function"]["arguments"]) == {"location": "Paris"}
    assert text_of(asst.get("content") or "") in ("Let me check.", "")
    tool_msg = r3.messages[5]
    assert tool_msg["tool_call_id"] == call_id and text_of(tool_msg["content"]) == "Sunny, 22C"
    assert text_of(r3.messages[6]["content"]) == "Answer in one sentence."
    assert_no_secret_leak(gw)


# --- error paths ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_context_overflow_becomes_prompt_is_too_long(
    stream: bool, scripted_upstream: MakeUpstream, gateway: GatewayFactory,
) -> None:
    up = scripted_upstream(default=Status.context_overflow(), name="openai")
    gw = gateway(translation_config(up))
    r = httpx.post(gw.url + "/v1/messages?beta=true", headers=HEADERS, timeout=30, json={
        "model": "claude-opus-4-8", "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": "a very long prompt"}]})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "prompt is too long" in body["error"]["message"].lower()  # starts Claude Code's compaction
    assert up.requests and all(req.path.startswith("/v1/chat/completions") for req in up.requests)
    assert_no_secret_leak(gw, r.content)


def test_provider_rejecting_its_key_names_provider_without_leaking_key(
    scripted_upstream: MakeUpstream, gateway: GatewayFactory,
) -> None:
    # A careless upstream echoes the whole key back; ccgate must not pass that on.
    up = scripted_upstream(default=Status.openai_error(
        401, f"Incorrect API key provided: {UPSTREAM_KEY}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.", err_code="invalid_api_key"), name="openai")
    gw = gateway(translation_config(up))
    client = sdk_client(gw.url, api_key=CLIENT_TOKEN)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-opus-4-8", max_tokens=16,
                               messages=[{"role": "user", "content": "hi"}])
    resp = info.value.response
    assert resp.status_code in (401, 403, 500, 502), resp.text
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] in ("authentication_error", "permission_error", "api_error")
    assert PROVIDER in body["error"]["message"]
    assert resp.headers.get("x-should-retry") == "false"  # a bad provider key is permanent
    assert up.requests and up.requests[0].header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert_no_secret_leak(gw, resp.content, json.dumps(dict(resp.headers)))


def test_stream_reset_after_first_byte_gives_in_band_error(
    scripted_upstream: MakeUpstream, gateway: GatewayFactory,
) -> None:
    # Every attempt breaks (whatever retry policy ccgate has, the stream cannot be saved).
    up = scripted_upstream(default=ResetAfterFirstByte(), name="openai")
    gw = gateway(translation_config(up))
    r = httpx.post(gw.url + "/v1/messages", headers=HEADERS, timeout=60, json={
        "model": "claude-opus-4-8", "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.content)
    names = [n for n, _ in events]
    assert names[0] == "message_start", names
    assert names[-1] == "error" and "message_stop" not in names, names
    _, err = events[-1]
    assert err["type"] == "error" and err["error"]["type"] in ("api_error", "overloaded_error")
    assert isinstance(err["error"]["message"], str) and err["error"]["message"]
    assert_upstream_basics(up.requests[0], stream=True)
    assert_no_secret_leak(gw, r.content)


def test_upstream_silence_gets_pings(scripted_upstream: MakeUpstream, gateway: GatewayFactory) -> None:
    if server_option_exists("ping_interval"):
        server: dict[str, Any] = {"ping_interval": 1.0}
        silence = 3.5
    else:
        # No ping option in the config schema yet: rely on the built-in interval (the reference
        # suggests 10-15 s), so the upstream stays silent a little longer than that.
        server, silence = {}, 16.0
    up = scripted_upstream(Chunks([
        openai_sse(openai_chunk({"role": "assistant", "content": ""}, model=UPSTREAM_MODEL)),
        openai_sse(openai_chunk({"content": "Hello"}, model=UPSTREAM_MODEL)),
        silence,
        openai_sse(openai_chunk({"content": " world"}, model=UPSTREAM_MODEL)),
        openai_sse(openai_chunk({}, finish_reason="stop", model=UPSTREAM_MODEL)),
        openai_sse(openai_chunk(None, model=UPSTREAM_MODEL,
                                usage={"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14})),
        DONE,
    ]), name="openai")
    gw = gateway(translation_config(up, **server))
    r = httpx.post(gw.url + "/v1/messages", headers=HEADERS, timeout=httpx.Timeout(10.0, read=60.0), json={
        "model": "claude-opus-4-8", "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    events = sse_events(r.content)
    names = [n for n, _ in events]
    texts = [(i, d["delta"]["text"]) for i, (n, d) in enumerate(events)
             if n == "content_block_delta" and d["delta"].get("type") == "text_delta"]
    assert "".join(t for _, t in texts) == "Hello world"
    hello_at = next(i for i, t in texts if "Hello" in t)
    world_at = next(i for i, t in texts if "world" in t)
    assert "ping" in names[hello_at + 1:world_at], names  # sent during the upstream's silence
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert events[-2][1]["usage"]["output_tokens"] == 2
