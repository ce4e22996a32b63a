"""What the lanes send: the small request and the Claude Code-sized one (captured or synthetic)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import answers, capture
from bench.common import BenchError
from bench.gateway import UPSTREAM_KEY
from bench.options import Options

ANTHROPIC_HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
# What the translated ccgate sends upstream, so what "direct" sends too.
OAI_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {UPSTREAM_KEY}"}
# Replayed requests keep the CLI's own headers except credentials and connection-level ones:
# the bench sets the credential per target.
_NOT_REPLAYED = {"x-api-key", "authorization", "host", "content-length", "connection"}


@dataclass
class Request:
    name: str
    body: bytes
    headers: dict[str, str]
    source: str
    tools: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        try:
            return bool(json.loads(self.body).get("stream"))
        except ValueError:
            return False


def anthropic_body(model: str, stream: bool = False) -> bytes:
    """The small request: one short user turn."""
    b: dict[str, Any] = {"model": model, "max_tokens": 1024,
                         "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        b["stream"] = True
    return json.dumps(b, separators=(",", ":")).encode()


def with_model(body: bytes, model: str) -> bytes:
    """`body` with its model replaced (the model picks the route in every gateway)."""
    b = json.loads(body)
    b["model"] = model
    return json.dumps(b, separators=(",", ":"), ensure_ascii=False).encode()


SMALL_BODY = anthropic_body("claude-sonnet-4-5")


def small_request() -> Request:
    return Request("small", SMALL_BODY, dict(ANTHROPIC_HEADERS), "literal", 0)


def synthetic_large() -> Request:
    """A deterministic stand-in shaped like Claude Code's body (~85 KB, 25 tools).

    Only for environments without the CLI (e.g. the smoke test); the real bench captures it.
    """
    tools = []
    for i in range(25):
        props = {f"param_{j}": {"type": "string", "description": f"Parameter {j} of tool {i}. "
                                * 6} for j in range(8)}
        tools.append({
            "name": f"Tool{i:02d}",
            "description": ("Synthetic tool description standing in for Claude Code's long "
                            "tool prompts. " * 16),
            "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                             "type": "object", "properties": props,
                             "required": ["param_0"], "additionalProperties": False},
        })
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=bench;"},
                   {"type": "text", "text": "You are a synthetic benchmark prompt. " * 200,
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": tools,
        "metadata": {"user_id": json.dumps({"device_id": "bench", "session_id": "bench"})},
        "thinking": {"type": "adaptive"},
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {**ANTHROPIC_HEADERS, "anthropic-beta": "claude-code-20250219",
               "user-agent": "claude-cli/synthetic (external, cli)"}
    return Request("large", raw, headers, "synthetic (not captured)", len(tools))


def large_request(opts: Options, workdir: Path) -> Request:
    """The Claude Code request: synthetic, cached from an earlier capture, or captured now."""
    if opts.large_body == "synthetic":
        return synthetic_large()
    cached = None if opts.large_body == "capture" else capture.load_cached()
    if cached is None:
        opts.log(f"capturing a Claude Code request with the real CLI ({opts.capture_mode}) ...")
        capture.capture(workdir / "capture", mode=opts.capture_mode)
        cached = capture.load_cached()
        if cached is None:
            raise BenchError("capture wrote nothing")
    body, captured_headers, meta = cached
    headers = {k: v for k, v in captured_headers.items() if k.lower() not in _NOT_REPLAYED}
    source = (f"captured from Claude Code {meta.get('cli_version', '?').split()[0]} "
              f"(`{meta.get('command', '?')}`, {meta.get('captured_at', '?')})")
    return Request("large", body, headers, source, int(meta.get("tools", 0)), meta)


def describe(r: Request) -> dict[str, Any]:
    """A request as the results record it."""
    return {"bytes": len(r.body), "tools": r.tools, "stream": r.stream, "source": r.source}


# The translation lanes (bench/translated.py) ------------------------------------------------


@dataclass
class TranslatedRequest:
    """A request of the translation lanes: what ccgate gets, and what it sends upstream."""

    name: str
    body: bytes  # the Anthropic request sent to ccgate
    headers: dict[str, str]
    path: str  # where ccgate sends it upstream (same path on nginx and the scripted upstream)
    on_stream_upstream: bool  # served by bench/stream_upstream.py, not nginx
    stream: bool
    text: str | None  # the answer's text (None: paced markers carry timestamps)
    direct: bytes = b""  # the OpenAI body ccgate sent upstream (recorded)
    expected: bytes | None = None  # the upstream's fixed answer

    @property
    def long(self) -> bool:
        """One of the 500-chunk streams."""
        return self.name in ("burst", "paced")


def translated_requests(large: Request) -> list[TranslatedRequest]:
    """small: JSON answer; large: the Claude Code request (the short stream when it asks
    stream:true, as the CLI does); burst: 500 chunks in one body; paced: 500 writes."""
    ls = large.stream
    anth, tr = ANTHROPIC_HEADERS, TranslatedRequest
    return [
        tr("small", anthropic_body("bench-json"), dict(anth), "/v1/chat/completions", False,
           False, answers.TEXT, expected=answers.CHAT_COMPLETION_BYTES),
        tr("large", large.body, dict(large.headers),
           "/sse/v1/chat/completions" if ls else "/v1/chat/completions", False, ls, answers.TEXT,
           expected=answers.OAI_SHORT_SSE if ls else answers.CHAT_COMPLETION_BYTES),
        tr("burst", anthropic_body("bench-sse500", True), dict(anth),
           "/sse500/v1/chat/completions", False, True, answers.LONG_TEXT,
           expected=answers.OAI_LONG_SSE),
        tr("paced", anthropic_body("bench-paced", True), dict(anth),
           "/paced/v1/chat/completions", True, True, None),
    ]
