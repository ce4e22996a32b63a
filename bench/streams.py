"""Fixed upstream answers in both protocols, and the checks of what a gateway sends back.

Shared by the nginx config (bench/upstream.py), the scripted streaming upstream
(bench/stream_upstream.py), the streaming client (bench/stream_client.py) and the lanes.

Long streams carry N text deltas whose text is a marker ``k<seq>@<ns>|``: ``seq`` is the
chunk's number and ``ns`` the upstream's CLOCK_MONOTONIC at the moment it wrote the chunk (0 in
the static streams). Markers survive any translation byte for byte (they are plain text inside
a JSON string), so the client finds them in an OpenAI or an Anthropic stream alike and knows
when each chunk left the upstream and when it arrived.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bench.upstream import MESSAGE

TEXT: str = MESSAGE["content"][0]["text"]  # type: ignore[index]
N_CHUNKS = 500
MARKER = re.compile(rb"k(\d+)@(\d+)\|")
OAI_MODEL = "bench-model"
_J = {"separators": (",", ":"), "ensure_ascii": False}


def marker(seq: int, ns: int = 0) -> str:
    return f"k{seq:03d}@{ns}|"


def _dump(obj: Any) -> str:
    return json.dumps(obj, **_J)  # type: ignore[arg-type]


# OpenAI Chat Completions --------------------------------------------------------------

CHAT_COMPLETION = {
    "id": "chatcmpl-bench0000000000000000000000",
    "object": "chat.completion",
    "created": 1763700000,
    "model": OAI_MODEL,
    "system_fingerprint": "fp_bench",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": TEXT, "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 12, "completion_tokens": 12, "total_tokens": 24},
}
CHAT_COMPLETION_BYTES = _dump(CHAT_COMPLETION).encode()
OAI_USAGE = {"prompt_tokens": 12, "completion_tokens": 500, "total_tokens": 512}


def oai_chunk(delta: dict[str, Any], finish: str | None = None,
              usage: dict[str, int] | None = None) -> bytes:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-bench0000000000000000000000", "object": "chat.completion.chunk",
        "created": 1763700000, "model": OAI_MODEL, "system_fingerprint": "fp_bench",
        "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None,
                                      "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = usage
    return b"data: " + _dump(chunk).encode() + b"\n\n"


OAI_HEAD = oai_chunk({"role": "assistant", "content": ""})
OAI_DONE = b"data: [DONE]\n\n"


def oai_tail(usage: dict[str, int] = OAI_USAGE) -> bytes:
    return oai_chunk({}, "stop") + oai_chunk({}, usage=usage) + OAI_DONE


def oai_text(text: str) -> bytes:
    return oai_chunk({"content": text})


def oai_stream(texts: list[str], usage: dict[str, int] = OAI_USAGE) -> bytes:
    """A whole Chat Completions stream: role chunk, text deltas, finish, usage, [DONE]."""
    return OAI_HEAD + b"".join(oai_text(t) for t in texts) + oai_tail(usage)


OAI_SHORT_SSE = oai_stream(["Hello!", " How can I help you today?"],
                           {"prompt_tokens": 12, "completion_tokens": 12, "total_tokens": 24})
OAI_LONG_SSE = oai_stream([marker(i) for i in range(N_CHUNKS)])


# Anthropic Messages ---------------------------------------------------------------------

def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {_dump(data)}\n\n".encode()


def anth_head() -> bytes:
    start = {k: v for k, v in MESSAGE.items() if k not in ("content", "stop_reason")}
    start.update(content=[], stop_reason=None,
                 usage={"input_tokens": 12, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0, "output_tokens": 1})
    return (_event("message_start", {"type": "message_start", "message": start})
            + _event("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})
            + _event("ping", {"type": "ping"}))


def anth_text(text: str) -> bytes:
    return _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": text}})


def anth_tail(output_tokens: int = N_CHUNKS) -> bytes:
    return (_event("content_block_stop", {"type": "content_block_stop", "index": 0})
            + _event("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "end_turn",
                                                 "stop_sequence": None},
                                       "usage": {"output_tokens": output_tokens}})
            + _event("message_stop", {"type": "message_stop"}))


def anth_stream(texts: list[str]) -> bytes:
    return anth_head() + b"".join(anth_text(t) for t in texts) + anth_tail(len(texts))


ANTH_LONG_SSE = anth_stream([marker(i) for i in range(N_CHUNKS)])
LONG_TEXT = "".join(marker(i) for i in range(N_CHUNKS))


# Checks of what came back ----------------------------------------------------------------

def parse_sse(body: bytes) -> list[tuple[str, Any]]:
    """(event name, decoded data) for each SSE event; name is "" when absent."""
    out: list[tuple[str, Any]] = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
        if data:
            raw = b"\n".join(data)
            out.append((name, raw.decode() if raw == b"[DONE]" else json.loads(raw)))
    return out


def check_anthropic_message(body: bytes, text: str = TEXT) -> str | None:
    """None if `body` is a valid non-streaming Anthropic message with exactly `text`."""
    try:
        m = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if not isinstance(m, dict) or m.get("type") != "message" or m.get("role") != "assistant":
        return f"not an Anthropic message: {body[:200]!r}"
    texts = [b.get("text") for b in m.get("content") or [] if b.get("type") == "text"]
    if "".join(t or "" for t in texts) != text:
        return f"text {texts!r} != {text!r}"
    if m.get("stop_reason") not in ("end_turn", "stop_sequence", "max_tokens"):
        return f"stop_reason {m.get('stop_reason')!r}"
    usage = m.get("usage") or {}
    if not isinstance(usage.get("input_tokens"), int) or \
            not isinstance(usage.get("output_tokens"), int):
        return f"usage {usage!r}"
    if not str(m.get("id", "")):
        return "no id"
    return None


def check_anthropic_sse(body: bytes, text: str | None = TEXT) -> str | None:
    """None if `body` is a well-ordered Anthropic Messages stream whose text is `text`.

    Order: message_start, then per block content_block_start / deltas / content_block_stop,
    then message_delta (stop_reason, usage) and message_stop last; ping anywhere.
    """
    try:
        events = parse_sse(body)
    except ValueError as e:
        return f"undecodable event data: {e}"
    # An OpenAI-style `data: [DONE]` (no event name) is not Anthropic, but the Anthropic SDKs
    # skip it (the TypeScript one, which Claude Code uses, ends the stream on it): tolerated.
    events = [(n, d) for n, d in events if not (n == "" and d == "[DONE]")]
    names = [n for n, _ in events if n != "ping"]
    if not names or names[0] != "message_start":
        return f"first event {names[:1]} is not message_start"
    if names[-1] != "message_stop":
        return f"last event {names[-1:]} is not message_stop ({body[-200:]!r})"
    if "error" in names:
        return f"error event: {[d for n, d in events if n == 'error'][:1]}"
    for n, d in events:
        if not isinstance(d, dict) or d.get("type") != n:
            return f"event {n!r} carries type {d.get('type') if isinstance(d, dict) else d!r}"
    start = events[0][1]["message"] if events[0][0] == "message_start" else \
        next(d["message"] for n, d in events if n == "message_start")
    if start.get("role") != "assistant" or start.get("content") != []:
        return f"message_start {start!r}"
    open_block: int | None = None
    parts: list[str] = []
    stop = None
    usage = None
    for n, d in events:
        if n == "content_block_start":
            if open_block is not None:
                return f"block {d.get('index')} started inside block {open_block}"
            open_block = d.get("index")
        elif n == "content_block_delta":
            if d.get("index") != open_block:
                return f"delta for block {d.get('index')} while {open_block} is open"
            delta = d.get("delta") or {}
            if delta.get("type") == "text_delta":
                parts.append(delta.get("text", ""))
        elif n == "content_block_stop":
            if d.get("index") != open_block:
                return f"stop of block {d.get('index')} while {open_block} is open"
            open_block = None
        elif n == "message_delta":
            if open_block is not None:
                return "message_delta inside an open block"
            stop = (d.get("delta") or {}).get("stop_reason")
            usage = d.get("usage")
    if stop not in ("end_turn", "stop_sequence", "max_tokens"):
        return f"message_delta stop_reason {stop!r}"
    if not isinstance(usage, dict) or not isinstance(usage.get("output_tokens"), int):
        return f"message_delta usage {usage!r}"
    got = "".join(parts)
    if text is not None and got != text:
        return f"text {got[:80]!r}... ({len(got)} chars) != expected ({len(text)} chars)"
    return None


def check_anthropic(body: bytes, stream: bool, text: str | None = TEXT) -> str | None:
    return check_anthropic_sse(body, text) if stream else check_anthropic_message(body, text or "")


def markers_in_order(body: bytes, n: int = N_CHUNKS) -> str | None:
    seqs = [int(m.group(1)) for m in MARKER.finditer(body)]
    if seqs != list(range(n)):
        return f"{len(seqs)} chunk markers, expected {n} in order"
    return None
