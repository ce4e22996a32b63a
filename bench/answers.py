"""The fixed answers the bench upstreams send, in both protocols, JSON and streamed.

Served by nginx (bench/nginx.py) and the scripted upstream (bench/stream_upstream.py);
the checks of what a gateway sends back (bench/checks.py) and the stream client expect them.

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

TEXT = "Hello! How can I help you today?"
N_CHUNKS = 500
MARKER = re.compile(rb"k(\d+)@(\d+)\|")
OAI_MODEL = "bench-model"


def marker(seq: int, ns: int = 0) -> str:
    return f"k{seq:03d}@{ns}|"


def _dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# Anthropic Messages -------------------------------------------------------------------------

# A complete, valid non-streaming Messages API response.
MESSAGE: dict[str, Any] = {
    "id": "msg_01BenchFixedAnswer0000000",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": TEXT}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 12,
    },
}
MESSAGE_BYTES = _dump(MESSAGE).encode()


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


# The fixed message as a stream: one text delta, the message's own usage.
ANTH_SHORT_SSE = anth_head() + anth_text(TEXT) + anth_tail(MESSAGE["usage"]["output_tokens"])
ANTH_LONG_SSE = anth_stream([marker(i) for i in range(N_CHUNKS)])
LONG_TEXT = "".join(marker(i) for i in range(N_CHUNKS))


# OpenAI Chat Completions ----------------------------------------------------------------------

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
