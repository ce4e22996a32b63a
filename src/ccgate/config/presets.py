"""Named providers: the URL, kind, credential header and quirks a user would otherwise look up.

A preset only supplies defaults; anything written in the provider's config wins. Every
quirk is recorded here, next to the provider it belongs to, with the reason in ``notes``;
docs/providers.md is the reader's view of this table (a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ccgate.config.model import AuthHeader, ProviderKind
from ccgate.translate.quirks import GEMINI_SCHEMA_REJECTS


@dataclass(frozen=True)
class Preset:
    name: str
    kind: ProviderKind
    base_url: str
    auth_header: AuthHeader
    # Field overrides for translate.Quirks (openai-compatible) or translate.compat.AnthropicQuirks.
    quirks: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    # Self-hosted servers: the URL is a local default the user usually replaces.
    self_hosted: bool = False


_PRESETS: tuple[Preset, ...] = (
    Preset(
        "anthropic", "anthropic", "https://api.anthropic.com", "x-api-key",
        notes="Passthrough, body and anthropic-* headers byte for byte. A console key must go in "
              "x-api-key: sent as Bearer it is taken for OAuth and refused.",
    ),
    Preset(
        "deepseek", "anthropic-compatible", "https://api.deepseek.com/anthropic", "x-api-key",
        quirks={"user_id": "sanitize"},
        notes="DeepSeek's Anthropic endpoint. It ignores anthropic-beta/-version and maps claude-* "
              "names itself; it rejected Claude Code's JSON-string metadata.user_id (pattern "
              "^[a-zA-Z0-9_-]+$), so ccgate sends a stable hash instead.",
    ),
    Preset(
        "deepseek-openai", "openai-compatible", "https://api.deepseek.com/v1", "bearer",
        quirks={"reasoning_echo": True, "reasoning_fields": ("reasoning_content",)},
        notes="DeepSeek's OpenAI endpoint, translated. Thinking mode is on by default and the "
              "reasoning_content of assistant turns that called tools must be sent back, or it "
              "answers 400; ccgate keeps it in a thinking block and returns it. Cache hits come as "
              "prompt_cache_hit_tokens. Older models cap max_tokens at 8192: set max_tokens on the "
              "route.",
    ),
    Preset(
        "openrouter", "openai-compatible", "https://openrouter.ai/api/v1", "bearer",
        quirks={"reasoning_fields": ("reasoning", "reasoning_content"), "send_user": True},
        notes="Model ids are OpenRouter slugs (vendor/model). Keep-alive comments "
              "(': OPENROUTER PROCESSING') are skipped; errors after the stream starts arrive "
              "in-band with finish_reason 'error' and become an Anthropic error event.",
    ),
    Preset(
        "moonshot", "anthropic-compatible", "https://api.moonshot.ai/anthropic", "bearer",
        quirks={"max_tools": 128},
        notes="Kimi's Anthropic endpoint (https://api.moonshot.cn/anthropic in China). At most 128 "
              "tools per request; ccgate answers a clear 400 instead of Kimi's generic one.",
    ),
    Preset(
        "zhipu", "anthropic-compatible", "https://api.z.ai/api/anthropic", "bearer",
        quirks={"drop_fields": frozenset({"context_management", "output_config"})},
        notes="GLM (https://open.bigmodel.cn/api/anthropic in China). Unsupported parameters give "
              "error 1210 'Invalid API parameter', so Claude Code's context_management and "
              "output_config are dropped.",
    ),
    Preset(
        "minimax", "anthropic-compatible", "https://api.minimax.io/anthropic", "bearer",
        notes="https://api.minimaxi.com/anthropic in China. Text and tools only, no images or "
              "documents; the whole assistant content, thinking included, must be sent back, "
              "which passthrough does.",
    ),
    Preset(
        "groq", "openai-compatible", "https://api.groq.com/openai/v1", "bearer",
        quirks={"documents": False},
        notes="Fast open models. No document input.",
    ),
    Preset(
        "together", "openai-compatible", "https://api.together.xyz/v1", "bearer",
        notes="Open models by slug (vendor/model).",
    ),
    Preset(
        "mistral", "openai-compatible", "https://api.mistral.ai/v1", "bearer",
        quirks={"tool_id_style": "alnum9", "stream_usage": False, "strict_alternation": True},
        notes="Tool-call ids must be exactly 9 alphanumerics, so ccgate rewrites them and maps "
              "them back; roles must alternate; usage arrives in the last chunk without "
              "stream_options (which it rejects).",
    ),
    Preset(
        "gemini", "openai-compatible", "https://generativelanguage.googleapis.com/v1beta/openai",
        "bearer",
        quirks={"schema_strip": GEMINI_SCHEMA_REJECTS, "parallel_tool_calls": False},
        notes="Gemini's OpenAI endpoint rejects tool schemas using $schema, const, format, "
              "additionalProperties, exclusiveMinimum and similar, which Claude Code's tools use: "
              "they are stripped. Tool-call deltas may lack an index (merged by id).",
    ),
    Preset(
        "openai", "openai-compatible", "https://api.openai.com/v1", "bearer",
        quirks={"max_tokens_field": "max_completion_tokens"},
        notes="max_tokens is deprecated and refused by reasoning models: max_completion_tokens "
              "is sent.",
    ),
    Preset(
        "vllm", "openai-compatible", "http://127.0.0.1:8000/v1", "none", self_hosted=True,
        quirks={"reasoning_fields": ("reasoning_content", "reasoning")},
        notes="Tool calling needs --enable-auto-tool-choice and --tool-call-parser on the server, "
              "else tool_choice auto is a 400 (ccgate passes that message on). The non-standard "
              "stop_reason field becomes stop_sequence.",
    ),
    Preset(
        "llamacpp", "openai-compatible", "http://127.0.0.1:8080/v1", "none", self_hosted=True,
        quirks={"tool_choice_required": False},
        notes="llama-server needs --jinja for tools; a named tool_choice is treated as auto. It "
              "truncates silently past its context (-c): set context_window on the route so "
              "ccgate answers 'prompt is too long' and Claude Code compacts.",
    ),
    Preset(
        "ollama", "openai-compatible", "http://127.0.0.1:11434/v1", "none", self_hosted=True,
        quirks={"stream_with_tools": False, "reasoning_fields": ("reasoning", "reasoning_content")},
        notes="Streaming with tools has dropped tool calls, so requests with tools are sent "
              "non-streaming and the Anthropic stream is built locally. Every parallel call "
              "arrives with index 0 (merged by id). Context is silently cut at num_ctx: set "
              "context_window on the route.",
    ),
    Preset(
        "lmstudio", "openai-compatible", "http://127.0.0.1:1234/v1", "none", self_hosted=True,
        notes="LM Studio's local server.",
    ),
)

ALIASES = {"kimi": "moonshot", "glm": "zhipu", "llama.cpp": "llamacpp", "lm-studio": "lmstudio"}
PRESETS: dict[str, Preset] = {p.name: p for p in _PRESETS}


def find_preset(name: str) -> Preset | None:
    return PRESETS.get(ALIASES.get(name, name))


__all__ = ["ALIASES", "PRESETS", "Preset", "find_preset"]
