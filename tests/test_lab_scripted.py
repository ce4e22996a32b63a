"""The scripted upstream (tests/lab/scripted.py) itself, driven with plain httpx and the official
``anthropic`` SDK; no ccgate involved."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.lab.certs import LabPKI
from tests.lab.scripted import (
    CONTEXT_OVERFLOW_MESSAGE,
    DONE,
    AnthropicText,
    AnthropicToolUse,
    Callback,
    Chunks,
    Hang,
    OpenAIText,
    OpenAIToolCall,
    ResetAfterFirstByte,
    ResetBeforeHeaders,
    ScriptedRequest,
    ScriptedUpstream,
    SlowHeaders,
    Status,
    openai_chunk,
    openai_sse,
    split_text,
    sse_data,
)
from tests.lab.sdk import sdk_client

pytestmark = pytest.mark.lab

pytest_plugins = ["tests.lab.fixtures"]

Make = Callable[..., ScriptedUpstream]
CHAT = "/v1/chat/completions"
OPENAI_BODY: dict[str, Any] = {"model": "qwen3-coder", "messages": [{"role": "user", "content": "hi"}]}
STREAM_BODY: dict[str, Any] = {**OPENAI_BODY, "stream": True, "stream_options": {"include_usage": True}}
ANTHROPIC_BODY: dict[str, Any] = {"model": "claude-x", "max_tokens": 50,
                                  "messages": [{"role": "user", "content": "hi"}]}


def client(**kwargs: Any) -> httpx.Client:
    kwargs.setdefault("timeout", 10.0)
    return httpx.Client(trust_env=False, **kwargs)


def openai_chunks(raw: bytes) -> list[dict[str, Any]]:
    """Parsed chunks of an OpenAI stream; asserts it ends with exactly one ``[DONE]``."""
    datas = list(sse_data(raw))
    assert datas[-1] == "[DONE]" and datas.count("[DONE]") == 1
    assert raw.endswith(DONE)
    return [json.loads(d) for d in datas[:-1]]


def anthropic_events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        if frame.strip():
            fields = dict(line.split(": ", 1) for line in frame.split("\n"))
            data = json.loads(fields["data"])
            assert data["type"] == fields["event"]
            out.append(data)
    return out


# --- OpenAI text -------------------------------------------------------------------------------
def test_openai_text_non_streaming_and_recording(scripted_upstream: Make) -> None:
    up = scripted_upstream(OpenAIText("Hello there, friend.", usage={"prompt_tokens": 5,
                                                                     "completion_tokens": 4,
                                                                     "total_tokens": 9}))
    with client() as c:
        r = c.post(up.openai_base_url + "/chat/completions?x=1", json=OPENAI_BODY,
                   headers={"Authorization": "Bearer k-1", "X-Custom": "v"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "qwen3-coder"
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == "Hello there, friend."
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}

    (rec,) = up.requests
    assert rec.method == "POST" and rec.path == CHAT + "?x=1"
    assert rec.header("authorization") == "Bearer k-1" and rec.header("x-custom") == "v"
    assert "x-custom" in rec.header_names
    assert rec.json == OPENAI_BODY and json.loads(rec.body) == OPENAI_BODY
    assert rec.model == "qwen3-coder" and rec.messages == OPENAI_BODY["messages"] and rec.tools == []
    assert not rec.stream and not rec.disconnected and rec.status == 200
    assert isinstance(rec.action, OpenAIText) and rec.index == 0
    assert "Bearer" not in repr(rec)


def test_openai_text_streams_chunks_usage_done(scripted_upstream: Make) -> None:
    up = scripted_upstream(OpenAIText("The quick brown fox jumps.", chunks=4, reasoning="Think first."))
    with client() as c:
        r = c.post(up.url + CHAT, json=STREAM_BODY)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    chunks = openai_chunks(r.content)
    assert all(ch["object"] == "chat.completion.chunk" and ch["model"] == "qwen3-coder" for ch in chunks)
    assert len({ch["id"] for ch in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [ch["choices"][0]["delta"] for ch in chunks if ch["choices"]]
    text = [d["content"] for d in deltas[1:] if "content" in d]
    assert "".join(text) == "The quick brown fox jumps." and len(text) == 4
    reasoning = [d["reasoning_content"] for d in deltas if "reasoning_content" in d]
    assert "".join(reasoning) == "Think first."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 30
    assert up.last.stream


def test_openai_text_without_usage(scripted_upstream: Make) -> None:
    up = scripted_upstream(OpenAIText("x", usage=None), OpenAIText("y", usage=None))
    with client() as c:
        chunks = openai_chunks(c.post(up.url + CHAT, json=STREAM_BODY).content)
        plain = c.post(up.url + CHAT, json=OPENAI_BODY).json()
    assert all(ch["usage"] is None for ch in chunks) and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in plain


# --- OpenAI tool call ------------------------------------------------------------------------
def test_openai_tool_call_streams_fragments(scripted_upstream: Make) -> None:
    args = {"file_path": "/tmp/x/hello.txt", "content": "hello\nworld\n"}
    up = scripted_upstream(OpenAIToolCall("Write", args, id="call_abc123", text_before="Writing it."))
    with client() as c:
        chunks = openai_chunks(c.post(up.url + CHAT, json=STREAM_BODY).content)
    deltas = [ch["choices"][0]["delta"] for ch in chunks if ch["choices"]]
    assert "".join(d.get("content", "") for d in deltas) == "Writing it."
    calls = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    first, *rest = [tc for (tc,) in calls]
    assert first == {"index": 0, "id": "call_abc123", "type": "function",
                     "function": {"name": "Write", "arguments": ""}}
    assert len(rest) == 4 and all(set(f) == {"index", "function"} and f["index"] == 0 for f in rest)
    assert json.loads("".join(f["function"]["arguments"] for f in rest)) == args
    finish = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"]]
    assert [f["choices"][0]["finish_reason"] for f in finish] == ["tool_calls"]
    assert chunks.index(finish[0]) == len(chunks) - 2  # finish, then usage, then [DONE]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 9


def test_openai_tool_call_non_streaming(scripted_upstream: Make) -> None:
    call = OpenAIToolCall("get_weather", {"location": "Paris"})
    up = scripted_upstream(call)
    with client() as c:
        body = c.post(up.url + CHAT, json=OPENAI_BODY).json()
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (tc,) = choice["message"]["tool_calls"]
    assert tc["id"] == call.id and call.id.startswith("call_") and tc["type"] == "function"
    assert tc["function"]["name"] == "get_weather"
    assert json.loads(tc["function"]["arguments"]) == {"location": "Paris"}


# --- Anthropic shapes --------------------------------------------------------------------------
def test_anthropic_text_and_tool_use_parse_with_official_sdk(scripted_upstream: Make) -> None:
    up = scripted_upstream(AnthropicText("Passthrough works fine.", chunks=3),
                           AnthropicToolUse("get_weather", {"location": "Paris"}, id="toolu_01X",
                                            text_before="Checking."),
                           AnthropicText("Non-streamed."))
    sdk = sdk_client(up.url)
    with sdk.messages.stream(**ANTHROPIC_BODY) as stream:
        msg = stream.get_final_message()
    assert msg.content[0].type == "text" and msg.content[0].text == "Passthrough works fine."
    assert msg.stop_reason == "end_turn" and msg.model == "claude-x" and msg.usage.input_tokens == 21
    with sdk.messages.stream(**ANTHROPIC_BODY) as stream:
        msg = stream.get_final_message()
    assert [b.type for b in msg.content] == ["text", "tool_use"] and msg.stop_reason == "tool_use"
    tool = msg.content[1]
    assert tool.type == "tool_use" and tool.id == "toolu_01X" and tool.input == {"location": "Paris"}
    plain = sdk.messages.create(**ANTHROPIC_BODY)
    assert plain.content[0].type == "text" and plain.content[0].text == "Non-streamed."
    events = anthropic_events(up.requests[0].response_body)
    names = [e["type"] for e in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "ping" in names and names.count("content_block_delta") == 3
    assert [r.path for r in up.requests] == ["/v1/messages"] * 3


# --- statuses ----------------------------------------------------------------------------------
def test_status_bodies_and_presets(scripted_upstream: Make) -> None:
    up = scripted_upstream(
        Status(500, b"upstream exploded", {"x-thing": "1"}),
        Status(401, {"error": {"message": "bad key"}}),
        Status.context_overflow(),
        Status.rate_limited(retry_after=7),
        Status.overloaded(),
        Status.anthropic_error(400, "invalid_request_error", "prompt is too long"),
        Status.rate_limited(retry_after=None, anthropic=True),
    )
    with client() as c:
        rs = [c.post(up.url + CHAT, json=OPENAI_BODY) for _ in range(7)]
    assert [r.status_code for r in rs] == [500, 401, 400, 429, 529, 400, 429]
    assert rs[0].content == b"upstream exploded" and rs[0].headers["x-thing"] == "1"
    assert rs[0].headers["content-type"].startswith("text/plain")
    assert rs[1].json() == {"error": {"message": "bad key"}}
    assert rs[1].headers["content-type"].startswith("application/json")
    assert rs[2].json()["error"]["message"] == CONTEXT_OVERFLOW_MESSAGE
    assert CONTEXT_OVERFLOW_MESSAGE.startswith("This model's maximum context length is")
    assert rs[3].headers["retry-after"] == "7" and rs[3].json()["error"]["code"] == "rate_limit_exceeded"
    assert rs[4].json()["error"]["type"] == "overloaded_error" and rs[4].json()["type"] == "error"
    assert rs[5].json()["error"] == {"type": "invalid_request_error", "message": "prompt is too long"}
    assert "retry-after" not in rs[6].headers and rs[6].json()["error"]["type"] == "rate_limit_error"
    assert [r.status for r in up.requests] == [500, 401, 400, 429, 529, 400, 429]


# --- connection faults -------------------------------------------------------------------------
def test_reset_before_headers(scripted_upstream: Make) -> None:
    up = scripted_upstream(ResetBeforeHeaders(), OpenAIText("after the reset"))
    with client() as c:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            c.post(up.url + CHAT, json=OPENAI_BODY)
        r = c.post(up.url + CHAT, json=OPENAI_BODY)
    assert r.json()["choices"][0]["message"]["content"] == "after the reset"
    first = up.wait_done(up.requests[0])
    assert first.status == 0 and first.response_body == b"" and first.json == OPENAI_BODY


@pytest.mark.parametrize("path,first_type", [(CHAT, "openai"), ("/v1/messages", "anthropic")])
def test_reset_after_first_byte(scripted_upstream: Make, path: str, first_type: str) -> None:
    up = scripted_upstream(ResetAfterFirstByte())
    got = b""
    with client() as c, c.stream("POST", up.url + path, json=STREAM_BODY) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            for part in r.iter_raw():
                got += part
    rec = up.wait_done(up.last)
    assert got == rec.response_body and got.endswith(b"\n\n")
    if first_type == "openai":
        (data,) = sse_data(got)
        assert json.loads(data)["choices"][0]["delta"]["role"] == "assistant"
    else:
        assert got.startswith(b"event: message_start\n")


def test_reset_after_first_byte_custom_event(scripted_upstream: Make) -> None:
    up = scripted_upstream(ResetAfterFirstByte(first=b"data: {\"custom\":1}\n\n"))
    with (client() as c, c.stream("POST", up.url + CHAT, json=STREAM_BODY) as r,
          pytest.raises((httpx.RemoteProtocolError, httpx.ReadError))):
        r.read()
    assert up.wait_done(up.last).response_body == b'data: {"custom":1}\n\n'


def test_slow_headers_then_answer(scripted_upstream: Make) -> None:
    up = scripted_upstream(SlowHeaders(0.2), SlowHeaders(0.1, then=Status(503, {"e": 1})),
                           default=OpenAIText("default answer"))
    with client() as c:
        r1 = c.post(up.url + CHAT, json=OPENAI_BODY)
        r2 = c.post(up.url + CHAT, json=OPENAI_BODY)
    assert r1.json()["choices"][0]["message"]["content"] == "default answer"
    assert r2.status_code == 503 and r2.json() == {"e": 1}


def test_slow_headers_client_gives_up_is_recorded(scripted_upstream: Make) -> None:
    up = scripted_upstream(SlowHeaders(30))
    with client(timeout=httpx.Timeout(10.0, read=0.3)) as c, pytest.raises(httpx.ReadTimeout):
        c.post(up.url + CHAT, json=OPENAI_BODY)
    gone = up.wait_disconnect()
    assert gone is up.requests[0] and gone.status == 0


def test_hang_until_client_leaves(scripted_upstream: Make) -> None:
    up = scripted_upstream(Hang(), OpenAIText("still alive"))
    with client(timeout=httpx.Timeout(10.0, read=0.3)) as c, pytest.raises(httpx.ReadTimeout):
        c.post(up.url + CHAT, json=OPENAI_BODY)
    gone = up.wait_disconnect()
    assert gone.index == 0 and gone.disconnected and isinstance(gone.action, Hang)
    with client() as c:
        assert c.post(up.url + CHAT, json=OPENAI_BODY).json()["choices"][0]["message"]["content"] == "still alive"
    assert not up.requests[1].disconnected


# --- raw chunks ----------------------------------------------------------------------------------
def test_chunks_raw_with_pauses_and_headers(scripted_upstream: Make) -> None:
    pieces = [openai_sse(openai_chunk({"role": "assistant", "content": ""})),
              0.1,
              openai_sse(openai_chunk({"content": "ok"}, finish_reason="stop")),
              b": a comment line\n\n",
              DONE]
    up = scripted_upstream(Chunks(pieces, delay=0.01),
                           Chunks([b'{"partial":'], status=201, headers={"Content-Type": "application/json"}))
    with client() as c:
        r = c.post(up.url + CHAT, json=STREAM_BODY)
        r2 = c.post(up.url + CHAT, json=OPENAI_BODY)
    assert r.content == b"".join(p for p in pieces if isinstance(p, bytes))
    assert r.headers["content-type"] == "text/event-stream"
    assert r2.status_code == 201 and r2.content == b'{"partial":'
    assert r2.headers["content-type"] == "application/json"


def test_client_leaving_mid_stream_is_recorded(scripted_upstream: Make) -> None:
    up = scripted_upstream(Chunks([b"data: {}\n\n", 30.0, DONE]))
    with client() as c, c.stream("POST", up.url + CHAT, json=STREAM_BODY) as r:
        first = next(r.iter_raw())
        assert first == b"data: {}\n\n"
    gone = up.wait_disconnect()
    assert gone.response_body == b"data: {}\n\n"


# --- callbacks, defaults, keys -------------------------------------------------------------------
def test_callbacks_decide_from_request(scripted_upstream: Make) -> None:
    seen: list[ScriptedRequest] = []

    def decide(req: ScriptedRequest) -> Any:
        seen.append(req)
        if req.tools:
            return OpenAIToolCall("Bash", {"command": "true"})
        return OpenAIText(f"echo {req.messages[-1]['content']}")

    up = scripted_upstream(Callback(decide), decide, lambda req: Callback(decide), default=Callback(decide))
    with client() as c:
        texts = [c.post(up.url + CHAT, json={**OPENAI_BODY, "messages": [{"role": "user", "content": f"m{i}"}]})
                 for i in range(3)]
        tool = c.post(up.url + CHAT, json={**OPENAI_BODY, "tools": [{"type": "function"}]})
    assert [r.json()["choices"][0]["message"]["content"] for r in texts] == ["echo m0", "echo m1", "echo m2"]
    assert tool.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "Bash"
    assert seen == up.requests and isinstance(up.requests[3].action, OpenAIToolCall)


def test_script_order_default_and_auto(scripted_upstream: Make) -> None:
    up = scripted_upstream(Status(418))
    up.script(Status(419), Status(420))
    assert [a.code for a in up.pending] == [418, 419, 420]  # type: ignore[union-attr]
    with client() as c:
        codes = [c.get(up.url + "/anything").status_code for _ in range(3)]
        chat = c.post(up.url + CHAT, json=OPENAI_BODY).json()
        msg = c.post(up.url + "/v1/messages?beta=true", json=ANTHROPIC_BODY).json()
        count = c.post(up.url + "/v1/messages/count_tokens", json=ANTHROPIC_BODY).json()
        models = c.get(up.url + "/v1/models").json()
        other = c.get(up.url + "/nowhere")
    assert codes == [418, 419, 420] and up.pending == []
    assert chat["object"] == "chat.completion" and msg["type"] == "message"
    assert count["input_tokens"] > 0 and models["data"] == [] and other.status_code == 404
    assert up.requests[4].path == "/v1/messages?beta=true" and up.requests[0].method == "GET"
    up.reset()
    assert up.requests == [] and up.pending == []


def test_bearer_keys_checked(scripted_upstream: Make) -> None:
    up = scripted_upstream(OpenAIText("a"), OpenAIText("b"), bearer_keys=["good-key"])
    with client() as c:
        bad = c.post(up.url + CHAT, json=OPENAI_BODY, headers={"Authorization": "Bearer wrong"})
        none = c.post(up.url + CHAT, json=OPENAI_BODY)
        good = c.post(up.url + CHAT, json=OPENAI_BODY, headers={"Authorization": "Bearer good-key"})
    assert bad.status_code == none.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_api_key"
    # refused requests do not consume the script: the good key gets the first action
    assert good.json()["choices"][0]["message"]["content"] == "a"
    assert up.pending and [r.status for r in up.requests] == [401, 401, 200]


def test_two_servers_tls_and_plain(scripted_upstream: Make, lab_pki: LabPKI) -> None:
    primary = scripted_upstream(Status(529), tls=True, name="primary")
    fallback = scripted_upstream(OpenAIText("from fallback"), name="fallback")
    assert primary.url.startswith("https://127.0.0.1:") and primary.openai_base_url.endswith("/v1")
    assert fallback.url == fallback.http_url and fallback.url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError):
        _ = fallback.https_url
    with client(verify=lab_pki.client_context()) as c:
        assert c.post(primary.https_url + CHAT, json=OPENAI_BODY).status_code == 529
        assert c.post(primary.http_url + CHAT, json=OPENAI_BODY).status_code == 200  # default
        r = c.post(fallback.url + CHAT, json=OPENAI_BODY)
    assert r.json()["choices"][0]["message"]["content"] == "from fallback"
    assert len(primary.requests) == 2 and len(fallback.requests) == 1


def test_split_text_keeps_every_character() -> None:
    assert split_text("", 3) == []
    assert split_text("ab", 5) == ["a", "b"]
    assert "".join(split_text("hello world", 4)) == "hello world" and len(split_text("hello world", 4)) == 4
