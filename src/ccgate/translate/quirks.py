"""What one OpenAI-compatible provider accepts and returns differently from OpenAI itself.

A ``Quirks`` value is plain data: presets (``config/presets.py``) build one per provider,
the translators read it, and nothing else branches on a provider's name. Each field's
comment says which provider needs it and why (sources in docs/translation.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# JSON-Schema keywords that strict providers (Gemini above all) reject in tool parameters.
GEMINI_SCHEMA_REJECTS = frozenset(
    {"$schema", "propertyNames", "exclusiveMinimum", "exclusiveMaximum", "const", "format",
     "additionalProperties", "$id", "$ref", "$defs", "definitions", "patternProperties",
     "unevaluatedProperties", "if", "then", "else", "not", "dependentSchemas",
     "dependentRequired", "contentEncoding", "contentMediaType", "examples", "default"}
)


@dataclass(frozen=True)
class Quirks:
    # OpenAI deprecated max_tokens for max_completion_tokens; most compatibles only know max_tokens.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # Send stream_options.include_usage so the final chunk carries usage (not every server has it).
    stream_usage: bool = True
    # Where reasoning text arrives: DeepSeek/vLLM/llama.cpp "reasoning_content", OpenRouter/Ollama "reasoning".
    reasoning_fields: tuple[str, ...] = ("reasoning_content", "reasoning")
    # DeepSeek thinking mode: reasoning_content of assistant turns with tool calls must be sent back.
    reasoning_echo: bool = False
    # Name of the field reasoning is sent back in when reasoning_echo is on.
    reasoning_echo_field: str = "reasoning_content"
    # OpenAI's function-name limit; longer names are shortened and mapped back.
    tool_name_max: int = 64
    # Tool-call id shape: "any" keeps Anthropic ids, "alnum9" rewrites to [a-zA-Z0-9]{9} (Mistral).
    tool_id_style: Literal["any", "alnum9"] = "any"
    # JSON-Schema keywords removed from tool parameters before sending.
    schema_strip: frozenset[str] = frozenset({"$schema"})
    # Content the provider can take; what it cannot is replaced by a text note, never silently lost.
    images: bool = True
    documents: bool = False
    # metadata.user_id -> OpenAI "user"; some providers reject the field.
    send_user: bool = False
    # Whether parallel_tool_calls is accepted (disable_parallel_tool_use maps onto it).
    parallel_tool_calls: bool = True
    # tool_choice "required" / named function support (llama.cpp treats named as auto).
    tool_choice_required: bool = True
    # Role used for the system prompt: "system", or "developer" for OpenAI reasoning models.
    system_role: Literal["system", "developer"] = "system"
    # Roles must strictly alternate user/assistant (Mistral templates): merge neighbours.
    strict_alternation: bool = False
    # Max stop sequences accepted (OpenAI: 4); extra ones are dropped.
    max_stop: int = 4
    # Ollama and some servers drop tool calls when streaming with tools: ask non-streaming
    # upstream and synthesise the Anthropic stream locally.
    stream_with_tools: bool = True
    # Extra JSON merged into every request body (e.g. {"thinking": {"type": "enabled"}}).
    extra_body: dict[str, object] = field(default_factory=dict)
    # --- added by the translation layer (docs/translation.md, "Quirks") ---
    # Mid-conversation system text (role "system" turns, mid_conv_system blocks): "user" wraps it in
    # <system-reminder> inside a user turn, which every chat template accepts; "system" sends a
    # system message in place, which OpenAI and vLLM accept but many local templates reject.
    mid_system: Literal["user", "system"] = "user"
    # How the Anthropic `thinking` param is sent: "drop"; "reasoning_effort" (OpenAI, llama.cpp);
    # "deepseek" (thinking:{type} + reasoning_effort); "openrouter" (reasoning:{max_tokens|effort}).
    thinking_param: Literal["drop", "reasoning_effort", "deepseek", "openrouter"] = "drop"
    # top_k is an extension (vLLM, llama.cpp, OpenRouter accept it; OpenAI and DeepSeek reject it).
    send_top_k: bool = False
    # Claude Code's first system block "x-anthropic-billing-header: ..." changes per conversation and
    # defeats prefix caching on vLLM/llama.cpp/DeepSeek; it carries nothing a model needs.
    drop_billing_header: bool = True
    # output_config.format / output_format -> response_format json_schema (not every server has it).
    response_format: bool = True
