"""A validator for the Anthropic streaming grammar (wire-formats.md §3.4-3.5), used by the tests.

It checks what the SDK and Claude Code rely on: message_start first, block indexes contiguous
from 0 in start order, one open block at a time, deltas that match their block's type, no empty
or whitespace-only text block, tool input only through input_json_delta and parsing to an
object, a signature on every thinking block, message_delta then message_stop last - or an
``error`` event as the very last event and no message_stop.
"""

from __future__ import annotations

import json
from typing import Any

STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
_DELTAS = {
    "text": {"text_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
}


def validate(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Raise AssertionError on any violation; return the accumulated message."""
    assert events, "no events"
    for name, data in events:
        assert data.get("type") == name, f"event {name!r} carries type {data.get('type')!r}"
    real = [(n, d) for n, d in events if n != "ping"]
    assert real[0][0] == "message_start", f"first event is {real[0][0]}"
    message = real[0][1]["message"]
    assert message["content"] == [] and message["stop_reason"] is None
    assert message["usage"]["input_tokens"] >= 1, "message_start input_tokens must not be 0"
    blocks: list[dict[str, Any]] = []
    open_index: int | None = None
    buffers: dict[int, str] = {}
    saw_delta = saw_stop = False
    for i, (name, data) in enumerate(real[1:], start=1):
        assert not saw_stop, f"{name} after message_stop"
        if name == "error":
            assert i == len(real) - 1, "error must be the last event"
            assert set(data["error"]) >= {"type", "message"}
            return {"error": data["error"], "content": blocks}
        if name == "content_block_start":
            assert not saw_delta, "block after message_delta"
            assert open_index is None, f"block {data['index']} started while {open_index} is open"
            assert data["index"] == len(blocks), f"index {data['index']} but {len(blocks)} blocks so far"
            block = dict(data["content_block"])
            kind = block["type"]
            assert kind in _DELTAS, kind
            if kind == "text":
                assert block["text"] == ""
            if kind == "tool_use":
                assert block["input"] == {} and block["id"] and block["name"]
            if kind == "thinking":
                assert block["thinking"] == "" and block["signature"] == ""
            blocks.append(block)
            open_index = data["index"]
            buffers[open_index] = ""
        elif name == "content_block_delta":
            assert data["index"] == open_index, f"delta for {data['index']} while {open_index} is open"
            block = blocks[open_index]
            delta = data["delta"]
            assert delta["type"] in _DELTAS[block["type"]], f"{delta['type']} in a {block['type']} block"
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            else:
                buffers[open_index] += delta["partial_json"]
        elif name == "content_block_stop":
            assert data["index"] == open_index, f"stop for {data['index']} while {open_index} is open"
            block = blocks[open_index]
            if block["type"] == "text":
                assert block["text"].strip(), "empty or whitespace-only text block"
            if block["type"] == "thinking":
                assert block["signature"], "thinking block without signature"
            if block["type"] == "tool_use":
                parsed = json.loads(buffers[open_index])
                assert isinstance(parsed, dict), "tool input is not an object"
                block["input"] = parsed
            open_index = None
        elif name == "message_delta":
            assert open_index is None, "message_delta with a block open"
            assert data["delta"]["stop_reason"] in STOP_REASONS
            assert isinstance(data["usage"]["output_tokens"], int)
            assert data["usage"].get("input_tokens", 1) >= 0
            message["stop_reason"] = data["delta"]["stop_reason"]
            message["stop_sequence"] = data["delta"]["stop_sequence"]
            message["usage"] = {**message["usage"], **data["usage"]}
            saw_delta = True
        elif name == "message_stop":
            assert saw_delta, "message_stop without message_delta"
            saw_stop = True
        else:
            raise AssertionError(f"unknown event {name}")
    assert saw_stop, "stream did not end with message_stop"
    if any(b["type"] == "tool_use" for b in blocks):
        assert message["stop_reason"] == "tool_use"
    message["content"] = blocks
    return message
