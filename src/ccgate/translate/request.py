"""Anthropic Messages request -> OpenAI Chat Completions request.

Lenient in, strict out: fields the gateway cannot translate are dropped and listed in
``TranslatedRequest.dropped``; input it cannot make sense of is a 400 that names the field, the
way Anthropic words it (``messages.3.content.0: unknown block type 'foo'``). Every decision is
tabled in docs/translation.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from ccgate.errors import InvalidRequest
from ccgate.translate.history import translate_raw_messages
from ccgate.translate.ids import hashed_user_id
from ccgate.translate.messages import Ctx, Dropped, translate_messages
from ccgate.translate.quirks import Quirks
from ccgate.translate.schema import clean_schema, parameters_schema
from ccgate.translate.system import translate_system
from ccgate.translate.tokens import estimate_input_tokens, tool_definition_tokens, tools_prompt_tokens
from ccgate.translate.tooldefs import ToolDefs, remembered
from ccgate.translate.toolnames import ToolNames
from ccgate.wire.anthropic import decode_body, decode_field

# Top-level fields read below; anything else is dropped (and listed).
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "tools",
        "tool_choice",
        "thinking",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
        "output_config",
        "output_format",
    }
)


@dataclass
class TranslatedRequest:
    body: dict[str, Any]
    tools: ToolNames
    stream: bool  # the client asked for SSE
    dropped: list[str] = field(default_factory=list)
    input_tokens_estimate: int = 0
    # The client enabled thinking (``thinking.type`` enabled or adaptive): only then does the
    # answer carry the provider's reasoning as thinking blocks, as Anthropic's API does.
    thinking: bool = False

    @property
    def upstream_stream(self) -> bool:
        """False when the client streams but the provider must not (Quirks.stream_with_tools):
        call upstream without streaming and answer with ``stream_from_response``."""
        return bool(self.body.get("stream"))


def translate_request(
    body: dict[str, Any], *, model: str, quirks: Quirks, max_output_tokens: int | None = None
) -> TranslatedRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    body = _decoded(body)

    # ``tools`` raw (``wire.anthropic.decode_for_translation``): translated once per distinct list.
    raw_tools = body.get("tools")
    defs = _tool_defs(raw_tools, quirks) if isinstance(raw_tools, msgspec.Raw) else None
    names = defs.names.copy_names() if defs is not None else ToolNames(
        max_len=quirks.tool_name_max, id_style=quirks.tool_id_style)
    ctx = Ctx(quirks, names, Dropped())
    tools: list[dict[str, Any]] | msgspec.Raw
    if defs is not None:
        for item in defs.dropped:
            ctx.dropped.add(item)
        ctx.upstream_tools = defs.upstream_names
        tools = defs.encoded if defs.count else []
    else:
        tools = _tools(raw_tools, ctx)
        ctx.upstream_tools = tuple(t["function"]["name"] for t in tools)
    system, system_estimate = translate_system(body.get("system"), ctx)
    # ``messages`` raw (``decode_for_translation``): each turn translated once per distinct bytes.
    raw_messages = body.get("messages")
    if isinstance(raw_messages, msgspec.Raw):
        history, history_tokens = translate_raw_messages(raw_messages, ctx)
    else:
        history, history_tokens = translate_messages(raw_messages, ctx), 0
    out: dict[str, Any] = {"model": model, "messages": system + history}

    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequest("max_tokens: Field required")
    if not _is_int(max_tokens) or max_tokens < 0:
        raise InvalidRequest("max_tokens: must be a non-negative integer")
    if max_output_tokens is not None:
        max_tokens = min(max_tokens, max_output_tokens)
    # Anthropic allows 0 (cache warm-up); OpenAI-compatible servers reject it.
    out[quirks.max_tokens_field] = max(1, max_tokens)

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: must be a boolean")
    upstream_stream = stream and (quirks.stream_with_tools or not tools)
    out["stream"] = upstream_stream
    if upstream_stream and quirks.stream_usage:
        out["stream_options"] = {"include_usage": True}

    if tools:
        out["tools"] = tools
    _tool_choice(body.get("tool_choice"), bool(tools), out, ctx)
    _sampling(body, out, ctx)
    _stop(body.get("stop_sequences"), out, ctx)
    _metadata(body.get("metadata"), out, ctx)
    thinking = _thinking(body, out, ctx)
    _output_format(body, out, ctx)
    for key in body:
        if key not in _HANDLED:
            ctx.dropped.add(key)
    out.update(quirks.extra_body)
    return TranslatedRequest(
        body=out,
        tools=ctx.names,
        stream=stream,
        dropped=ctx.dropped.items,
        input_tokens_estimate=(estimate_input_tokens(body) + system_estimate + history_tokens
                               + _raw_tools_tokens(body, defs)),
        thinking=thinking,
    )


# Read below as values; ``tools``, ``system`` and ``messages`` are translated from their bytes
# when raw, and fields that are only dropped are never decoded.
_READ = _HANDLED - {"tools", "system", "messages"}


def _decoded(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the raw fields it reads as values decoded (``decode_for_translation``); a
    copy when any was raw (the caller may translate the same dict for another provider)."""
    out: dict[str, Any] | None = None
    for key, value in body.items():
        if key in _READ and isinstance(value, msgspec.Raw):
            if out is None:
                out = dict(body)
            try:
                out[key] = _decode_json(value)
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                out[key] = decode_field(key, value)  # raises, worded for the field
    return body if out is None else out


_decode_json = msgspec.json.decode


def _raw_tools_tokens(body: dict[str, Any], defs: ToolDefs | None) -> int:
    """What ``estimate_input_tokens`` counts for tools when it was given them decoded."""
    if defs is None or not defs.listed:
        return 0
    return tools_prompt_tokens(body.get("tool_choice")) + defs.tokens


def _tool_defs(raw: msgspec.Raw, quirks: Quirks) -> ToolDefs:
    def build() -> ToolDefs:
        tools = decode_body(bytes(raw))
        ctx = Ctx(quirks, ToolNames(max_len=quirks.tool_name_max, id_style=quirks.tool_id_style), Dropped())
        out = _tools(tools, ctx)
        return ToolDefs(
            encoded=msgspec.Raw(_encode(out)), count=len(out),
            listed=len(tools) if isinstance(tools, list) else 0, names=ctx.names,
            upstream_names=tuple(t["function"]["name"] for t in out), dropped=tuple(ctx.dropped.items),
            tokens=tool_definition_tokens(tools) if isinstance(tools, list) else 0,
        )

    return remembered(raw, quirks, build)


_encode = msgspec.json.Encoder().encode


# -- helpers -----------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- tools -------------------------------------------------------------------------------------


def _tools(tools: Any, ctx: Ctx) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("tools: must be a list")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"{path}: must be an object")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            # Server tools (web_search_*, code_execution_*, ...) and Anthropic-defined client tools
            # (bash_*, text_editor_*, computer_*) have no schema here and no executor upstream.
            ctx.dropped.add(f"{path} ({kind})")
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"{path}.name: Field required")
        if name in seen:
            raise InvalidRequest(f"{path}.name: tool names must be unique, '{name}' appears twice")
        seen.add(name)
        if tool.get("defer_loading") and name == "DeferredToolPlaceholder":
            # Claude Code's stub that keeps deferred loading on; "never call this tool".
            ctx.dropped.add(f"{path} (DeferredToolPlaceholder)")
            continue
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(f"{path}.input_schema: Field required")
        function: dict[str, Any] = {"name": ctx.names.upstream_name(name)}
        description = tool.get("description")
        if isinstance(description, str) and description:
            function["description"] = description
        function["parameters"] = parameters_schema(schema, ctx.quirks.schema_strip)
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, has_tools: bool, out: dict[str, Any], ctx: Ctx) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise InvalidRequest("tool_choice.type: must be one of 'auto', 'any', 'tool', 'none'")
    if not has_tools:
        ctx.dropped.add("tool_choice (no tools left to choose from)")
        return
    q = ctx.quirks
    kind = choice["type"]
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "any":
        out["tool_choice"] = "required" if q.tool_choice_required else "auto"
    else:
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("tool_choice.name: Field required")
        function = next((n for n in ctx.upstream_tools if ctx.names.anthropic_name(n) == name), None)
        if function is None:
            raise InvalidRequest(f"tool_choice.name: no tool named '{name}' in tools")
        if q.tool_choice_required:
            out["tool_choice"] = {"type": "function", "function": {"name": function}}
        else:
            out["tool_choice"] = "auto"
    if out["tool_choice"] == "auto" and kind in ("any", "tool"):
        ctx.dropped.add(f"tool_choice.{kind} (provider only honours auto)")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        if q.parallel_tool_calls:
            out["parallel_tool_calls"] = False
        else:
            ctx.dropped.add("tool_choice.disable_parallel_tool_use")


# -- sampling, stop, metadata, thinking, output format ----------------------------------------


def _sampling(body: dict[str, Any], out: dict[str, Any], ctx: Ctx) -> None:
    for key in ("temperature", "top_p", "top_k"):
        value = body.get(key)
        if value is None:
            continue
        if not _is_number(value):
            raise InvalidRequest(f"{key}: must be a number")
        if key == "top_k" and not ctx.quirks.send_top_k:
            ctx.dropped.add("top_k")
            continue
        out[key] = value


def _stop(stop: Any, out: dict[str, Any], ctx: Ctx) -> None:
    if stop is None:
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest("stop_sequences: must be a list of strings")
    keep = [s for s in stop if s][: ctx.quirks.max_stop]
    if len(keep) < len([s for s in stop if s]):
        ctx.dropped.add(f"stop_sequences[{ctx.quirks.max_stop}:]")
    if keep:
        out["stop"] = keep


def _metadata(metadata: Any, out: dict[str, Any], ctx: Ctx) -> None:
    if metadata is None:
        return
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if ctx.quirks.send_user and isinstance(user_id, str) and user_id:
        out["user"] = hashed_user_id(user_id)
    else:
        ctx.dropped.add("metadata")


def _effort_from_budget(budget: Any) -> str:
    # Buckets as merge.dev and LiteLLM use them.
    if not _is_int(budget) or budget < 4096:
        return "low"
    return "medium" if budget < 16384 else "high"


def _thinking(body: dict[str, Any], out: dict[str, Any], ctx: Ctx) -> bool:
    """The provider's reasoning settings; True when the client enabled thinking."""
    thinking = body.get("thinking")
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    effort = effort if isinstance(effort, str) else None
    if thinking is None and effort is None:
        return False
    if thinking is not None and (not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str)):
        raise InvalidRequest("thinking.type: Field required")
    kind = thinking["type"] if thinking is not None else None
    budget = thinking.get("budget_tokens") if thinking is not None else None
    mode = ctx.quirks.thinking_param
    enabled = kind in ("enabled", "adaptive")
    level = _effort_from_budget(budget) if kind == "enabled" else effort
    used_effort = False
    if mode == "reasoning_effort":
        if enabled and level:
            out["reasoning_effort"] = level
            used_effort = kind == "adaptive"
    elif mode == "deepseek":
        if kind is not None:
            out["thinking"] = {"type": "enabled" if enabled else "disabled"}
        if enabled and level:
            out["reasoning_effort"] = level  # DeepSeek folds low..max onto its own three levels
            used_effort = kind == "adaptive"
    elif mode == "openrouter":
        if kind == "enabled" and _is_int(budget):
            out["reasoning"] = {"max_tokens": budget}
        elif kind == "adaptive":
            out["reasoning"] = {"effort": {"max": "xhigh"}.get(effort or "", effort or "medium")}
            used_effort = effort is not None
        elif kind == "disabled":
            out["reasoning"] = {"enabled": False}
    if mode == "drop" and thinking is not None:
        ctx.dropped.add("thinking")
    if effort is not None and not used_effort:
        ctx.dropped.add("output_config.effort")
    return enabled


def _output_format(body: dict[str, Any], out: dict[str, Any], ctx: Ctx) -> None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        fmt = body.get("output_format")
    if isinstance(config, dict):
        for key in config:
            if key not in ("effort", "format"):
                ctx.dropped.add(f"output_config.{key}")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest("output_config.format: expected {type: 'json_schema', schema: {...}}")
    if not ctx.quirks.response_format:
        ctx.dropped.add("output_config.format")
        return
    out["response_format"] = {
        "type": "json_schema",
        "json_schema": {
            "name": "output",
            "schema": clean_schema(fmt["schema"], ctx.quirks.schema_strip),
            "strict": True,
        },
    }
