"""Is what a gateway sent back a valid Anthropic answer with the expected text?

Each check returns None for a valid answer, else what is wrong with it (for the error message
that stops the run).
"""

from __future__ import annotations

import json
from typing import Any

from bench.answers import MARKER, N_CHUNKS, TEXT

STOP_REASONS = ("end_turn", "stop_sequence", "max_tokens")


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
    if m.get("stop_reason") not in STOP_REASONS:
        return f"stop_reason {m.get('stop_reason')!r}"
    usage = m.get("usage") or {}
    if not isinstance(usage.get("input_tokens"), int) or \
            not isinstance(usage.get("output_tokens"), int):
        return f"usage {usage!r}"
    if not str(m.get("id", "")):
        return "no id"
    return None


def _envelope_problem(events: list[tuple[str, Any]], body: bytes) -> str | None:
    """message_start first, message_stop last, no error event, each event's type its name."""
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
    start = next(d["message"] for n, d in events if n == "message_start")
    if start.get("role") != "assistant" or start.get("content") != []:
        return f"message_start {start!r}"
    return None


def _blocks_problem(events: list[tuple[str, Any]], text: str | None) -> str | None:
    """Blocks open and close in turn, the stop reason and usage come after them, text matches."""
    open_block: int | None = None
    parts: list[str] = []
    stop = usage = None
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
    if stop not in STOP_REASONS:
        return f"message_delta stop_reason {stop!r}"
    if not isinstance(usage, dict) or not isinstance(usage.get("output_tokens"), int):
        return f"message_delta usage {usage!r}"
    got = "".join(parts)
    if text is not None and got != text:
        return f"text {got[:80]!r}... ({len(got)} chars) != expected ({len(text)} chars)"
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
    return _envelope_problem(events, body) or _blocks_problem(events, text)


def check_anthropic(body: bytes, stream: bool, text: str | None = TEXT) -> str | None:
    return check_anthropic_sse(body, text) if stream else check_anthropic_message(body, text or "")


def markers_in_order(body: bytes, n: int = N_CHUNKS) -> str | None:
    seqs = [int(m.group(1)) for m in MARKER.finditer(body)]
    if seqs != list(range(n)):
        return f"{len(seqs)} chunk markers, expected {n} in order"
    return None


def check_stream_answer(body: bytes, stream: bool, text: str | None, long: bool) -> str | None:
    """A valid Anthropic answer; for the long (500-chunk) streams also every chunk, in order."""
    problem = check_anthropic(body, stream, text)
    if problem is None and long:
        problem = markers_in_order(body)
    return problem
