"""Anthropic Messages request -> OpenAI Chat Completions request.

Lenient in, strict out: fields the gateway cannot translate are dropped and listed in
``TranslatedRequest.dropped``; input it cannot make sense of is a 400 that names the field, the
way Anthropic words it (``messages.3.content.0: unknown block type 'foo'``). Every decision is
tabled in docs/translation.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ccgate.errors import InvalidRequest
from ccgate.translate.ids import hashed_user_id
from ccgate.translate.quirks import Quirks
from ccgate.translate.reasoning import is_gateway_signature
from ccgate.translate.schema import clean_schema, parameters_schema
from ccgate.translate.tokens import estimate_input_tokens, tool_definition_tokens, tools_prompt_tokens
from ccgate.translate.tooldefs import ToolDefs, remembered
from ccgate.translate.toolnames import ToolNames
from ccgate.wire.anthropic import decode_body

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
# Known block types that cannot be represented upstream: dropped, never an error.
_UNTRANSLATABLE = frozenset(
    {
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "tool_search_tool_result",
        "text_editor_code_execution_tool_result",
        "container_upload",
        "mcp_tool_use",
        "mcp_tool_result",
        "advisor_tool_result",
        "compaction",
        "fallback",
    }
)
_BILLING_HEADER = "x-anthropic-billing-header:"
_PLACEHOLDER_RESULT = "(no result: the tool call was interrupted before it returned)"
_EMPTY_RESULT = "(no output)"


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


class _Dropped:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, item: str) -> None:
        if item not in self.items:
            self.items.append(item)


@dataclass
class _Ctx:
    quirks: Quirks
    names: ToolNames
    dropped: _Dropped
    upstream_tools: tuple[str, ...] = ()  # the translated tools' names, in order


def translate_request(
    body: dict[str, Any], *, model: str, quirks: Quirks, max_output_tokens: int | None = None
) -> TranslatedRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    ctx = _Ctx(quirks, ToolNames(max_len=quirks.tool_name_max, id_style=quirks.tool_id_style), _Dropped())

    # ``tools`` raw (``wire.anthropic.decode_for_translation``): translated once per distinct list.
    raw_tools = body.get("tools")
    defs = _tool_defs(raw_tools, quirks) if isinstance(raw_tools, msgspec.Raw) else None
    tools: list[dict[str, Any]] | msgspec.Raw
    if defs is not None:
        ctx.names = defs.names.copy_names()
        for item in defs.dropped:
            ctx.dropped.add(item)
        ctx.upstream_tools = defs.upstream_names
        tools = defs.encoded if defs.count else []
    else:
        tools = _tools(raw_tools, ctx)
        ctx.upstream_tools = tuple(t["function"]["name"] for t in tools)
    messages = _system(body.get("system"), ctx) + _messages(body.get("messages"), ctx)
    out: dict[str, Any] = {"model": model, "messages": messages}

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
        input_tokens_estimate=estimate_input_tokens(body) + _raw_tools_tokens(body, defs),
        thinking=thinking,
    )


def _raw_tools_tokens(body: dict[str, Any], defs: ToolDefs | None) -> int:
    """What ``estimate_input_tokens`` counts for tools when it was given them decoded."""
    if defs is None or not defs.listed:
        return 0
    return tools_prompt_tokens(body.get("tool_choice")) + defs.tokens


def _tool_defs(raw: msgspec.Raw, quirks: Quirks) -> ToolDefs:
    def build() -> ToolDefs:
        tools = decode_body(bytes(raw))
        ctx = _Ctx(quirks, ToolNames(max_len=quirks.tool_name_max, id_style=quirks.tool_id_style), _Dropped())
        out = _tools(tools, ctx)
        return ToolDefs(
            encoded=msgspec.Raw(_encode(out)), count=len(out),
            listed=len(tools) if isinstance(tools, list) else 0, names=ctx.names,
            upstream_names=tuple(t["function"]["name"] for t in out), dropped=tuple(ctx.dropped.items),
            tokens=tool_definition_tokens(tools) if isinstance(tools, list) else 0,
        )

    return remembered(bytes(raw), quirks, build)


_encode = msgspec.json.Encoder().encode


# -- helpers -----------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text_of(block: dict[str, Any], path: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        problem = "Field required" if text is None else "must be a string"
        raise InvalidRequest(f"{path}.text: {problem}")
    return text


def _text_blocks(content: Any, path: str) -> list[str]:
    """The texts of a string-or-text-blocks field (system, mid_conv_system, role:system turns)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise InvalidRequest(f"{path}: must be a string or a list of text blocks")
    texts = []
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            found = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise InvalidRequest(f"{path}.{j}: expected a text block, found '{found}'")
        texts.append(_text_of(block, f"{path}.{j}"))
    return texts


def _join(texts: list[str]) -> str:
    return "\n\n".join(t for t in texts if t.strip())


# -- system ------------------------------------------------------------------------------------


def _system(system: Any, ctx: _Ctx) -> list[dict[str, Any]]:
    if system is None:
        return []
    texts = _text_blocks(system, "system")
    if ctx.quirks.drop_billing_header:
        kept = [t for t in texts if not t.lstrip().startswith(_BILLING_HEADER)]
        if len(kept) != len(texts):
            ctx.dropped.add("system.x-anthropic-billing-header")
        texts = kept
    text = _join(texts)
    return [{"role": ctx.quirks.system_role, "content": text}] if text else []


# -- tools -------------------------------------------------------------------------------------


def _tools(tools: Any, ctx: _Ctx) -> list[dict[str, Any]]:
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


def _tool_choice(choice: Any, has_tools: bool, out: dict[str, Any], ctx: _Ctx) -> None:
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


def _sampling(body: dict[str, Any], out: dict[str, Any], ctx: _Ctx) -> None:
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


def _stop(stop: Any, out: dict[str, Any], ctx: _Ctx) -> None:
    if stop is None:
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest("stop_sequences: must be a list of strings")
    keep = [s for s in stop if s][: ctx.quirks.max_stop]
    if len(keep) < len([s for s in stop if s]):
        ctx.dropped.add(f"stop_sequences[{ctx.quirks.max_stop}:]")
    if keep:
        out["stop"] = keep


def _metadata(metadata: Any, out: dict[str, Any], ctx: _Ctx) -> None:
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


def _thinking(body: dict[str, Any], out: dict[str, Any], ctx: _Ctx) -> bool:
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


def _output_format(body: dict[str, Any], out: dict[str, Any], ctx: _Ctx) -> None:
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


# -- messages ----------------------------------------------------------------------------------

_Block = tuple[str, dict[str, Any]]  # (path for error messages, block)


def _messages(messages: Any, ctx: _Ctx) -> list[dict[str, Any]]:
    if messages is None:
        raise InvalidRequest("messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: must be a non-empty list")
    turns = _turns(messages, ctx)
    out: list[dict[str, Any]] = []
    pending: dict[str, str] = {}  # anthropic tool_use id -> upstream id, still unanswered

    def answer_pending() -> None:
        # OpenAI rejects an assistant tool_calls message not followed by one tool message per
        # call; Anthropic would have rejected the request too, but interrupted sessions and
        # client-side compaction produce such histories, so repair rather than fail.
        for anthropic_id, upstream_id in pending.items():
            out.append({"role": "tool", "tool_call_id": upstream_id, "content": _PLACEHOLDER_RESULT})
            ctx.dropped.add(f"tool_use {anthropic_id} had no tool_result (placeholder sent)")
        pending.clear()

    for role, blocks in turns:
        if role == "assistant":
            answer_pending()
            message, calls = _assistant(blocks, ctx)
            if message is not None:
                out.append(message)
                pending.update(calls)
        else:
            tool_messages, segments = _user(blocks, ctx, pending)
            out.extend(tool_messages)
            answer_pending()
            for segment in segments:
                if isinstance(segment, str):
                    out.append({"role": ctx.quirks.system_role, "content": segment})
                elif out and out[-1]["role"] == "user":
                    out[-1]["content"].append(segment)
                else:
                    out.append({"role": "user", "content": [segment]})
    answer_pending()
    return [_finish_user(m) for m in _merge(out)]


def _turns(messages: list[Any], ctx: _Ctx) -> list[tuple[str, list[_Block]]]:
    """Messages as turns: consecutive same-role messages merge, as Anthropic merges them."""
    turns: list[tuple[str, list[_Block]]] = []
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{path}: must be an object")
        role = message.get("role")
        if role not in ("user", "assistant", "system"):
            raise InvalidRequest(f"{path}.role: must be 'user', 'assistant' or 'system', got {role!r}")
        content = message.get("content")
        blocks: list[_Block]
        if role == "system":
            # A mid-conversation system turn: handled exactly like a mid_conv_system block.
            blocks = [(f"{path}.content", {"type": "mid_conv_system", "content": content})]
            role = "user"
        elif isinstance(content, str):
            blocks = [(f"{path}.content", {"type": "text", "text": content})]
        elif isinstance(content, list):
            blocks = []
            for j, block in enumerate(content):
                bpath = f"{path}.content.{j}"
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise InvalidRequest(f"{bpath}.type: Field required")
                if "cache_control" in block:
                    ctx.dropped.add("cache_control")
                blocks.append((bpath, block))
        else:
            raise InvalidRequest(f"{path}.content: must be a string or a list of content blocks")
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return turns


def _assistant(blocks: list[_Block], ctx: _Ctx) -> tuple[dict[str, Any] | None, dict[str, str]]:
    q = ctx.quirks
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    ids: dict[str, str] = {}
    for path, block in blocks:
        kind = block["type"]
        if kind == "text":
            texts.append(_text_of(block, path))
        elif kind == "tool_use":
            tool_id, name, tool_input = block.get("id"), block.get("name"), block.get("input", {})
            if not isinstance(tool_id, str) or not tool_id:
                raise InvalidRequest(f"{path}.id: Field required")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(f"{path}.name: Field required")
            if tool_input is None:
                tool_input = {}
            if not isinstance(tool_input, dict):
                raise InvalidRequest(f"{path}.input: must be an object")
            if tool_id in ids:
                raise InvalidRequest(f"{path}.id: duplicate tool_use id '{tool_id}'")
            upstream_id = ctx.names.upstream_id(tool_id)
            ids[tool_id] = upstream_id
            calls.append(
                {
                    "id": upstream_id,
                    "type": "function",
                    "function": {
                        "name": ctx.names.upstream_name(name),
                        "arguments": json.dumps(tool_input, ensure_ascii=False),
                    },
                }
            )
        elif kind == "thinking":
            if not is_gateway_signature(block.get("signature")):
                # Real Anthropic reasoning: its signature binds it to Anthropic; no other model
                # may see it, and the text alone is not what the provider produced.
                ctx.dropped.add("thinking blocks (non-ccgate signature)")
            elif q.reasoning_echo:
                thought = block.get("thinking")
                if isinstance(thought, str):
                    reasoning.append(thought)
        elif kind in _UNTRANSLATABLE or kind in ("image", "document", "search_result", "mid_conv_system"):
            ctx.dropped.add(f"{kind} blocks in assistant turns")
        elif kind == "tool_result":
            raise InvalidRequest(f"{path}: tool_result blocks may only appear in user messages")
        else:
            raise InvalidRequest(f"{path}: unknown block type '{kind}'")
    text = _join(texts)
    if not text and not calls and not reasoning:
        return None, {}
    # Never "" next to tool_calls: strict servers turn it into an empty text block.
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    if q.reasoning_echo and (reasoning or calls):
        # DeepSeek checks the field's presence on every assistant turn that called tools.
        message[q.reasoning_echo_field] = "\n\n".join(reasoning)
    return message, ids


def _user(
    blocks: list[_Block], ctx: _Ctx, pending: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any] | str]]:
    """(tool messages, segments) of one user turn. A segment is a user content part, or a string:
    mid-conversation system text to send as a system message at that point (mid_system="system")."""
    q = ctx.quirks
    tool_messages: list[dict[str, Any]] = []
    tool_images: list[dict[str, Any]] = []
    parts: list[dict[str, Any] | str] = []
    for path, block in blocks:
        kind = block["type"]
        if kind == "text":
            text = _text_of(block, path)
            if text.strip():
                parts.append({"type": "text", "text": text})
        elif kind == "image":
            parts.append(_image(block, path, ctx))
        elif kind == "document":
            parts.extend(_document(block, path, ctx))
        elif kind == "search_result":
            parts.append({"type": "text", "text": _search_result(block, path)})
        elif kind == "tool_result":
            tool_id = block.get("tool_use_id")
            if not isinstance(tool_id, str) or not tool_id:
                raise InvalidRequest(f"{path}.tool_use_id: Field required")
            text, images = _tool_result(block, path, ctx)
            if tool_id in pending:
                tool_messages.append({"role": "tool", "tool_call_id": pending.pop(tool_id), "content": text})
                if images:
                    tool_images.append({"type": "text", "text": f"Images returned by tool call {tool_id}:"})
                    tool_images.extend(images)
            else:
                # No matching tool call right before: a tool message would be rejected upstream.
                ctx.dropped.add(f"tool_result {tool_id} without a matching tool_use (sent as text)")
                parts.append({"type": "text", "text": f"[result of tool call {tool_id}]\n{text}"})
                parts.extend(images)
        elif kind == "mid_conv_system":
            # A role:"system" turn arrives here with its own path ("messages.N.content").
            cpath = path if path.endswith(".content") else f"{path}.content"
            texts = _text_blocks(block.get("content"), cpath)
            text = _join(texts)
            if not text:
                continue
            if q.mid_system == "system" and not q.strict_alternation:
                parts.append(text)
            else:
                parts.append({"type": "text", "text": f"<system-reminder>\n{text}\n</system-reminder>"})
        elif kind == "tool_use":
            raise InvalidRequest(f"{path}: tool_use blocks may only appear in assistant messages")
        elif kind in _UNTRANSLATABLE or kind in ("thinking", "tool_reference"):
            ctx.dropped.add(f"{kind} blocks in user turns")
        else:
            raise InvalidRequest(f"{path}: unknown block type '{kind}'")
    # Images from tool results open the user message that follows the tool messages.
    segments: list[dict[str, Any] | str] = [*tool_images, *parts]
    return tool_messages, segments


def _image(block: dict[str, Any], path: str, ctx: _Ctx) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{path}.source: Field required")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise InvalidRequest(f"{path}.source: base64 images need media_type and data")
        url = f"data:{media};base64,{data}"
    elif kind == "url":
        link = source.get("url")
        if not isinstance(link, str):
            raise InvalidRequest(f"{path}.source.url: Field required")
        url = link
    elif kind == "file":
        ctx.dropped.add("image file_id sources")
        return {"type": "text", "text": "[image omitted: Files API references cannot be sent to this provider]"}
    else:
        raise InvalidRequest(f"{path}.source.type: unknown image source type {kind!r}")
    if not ctx.quirks.images:
        ctx.dropped.add("images (provider takes text only)")
        return {"type": "text", "text": "[image omitted: this model does not accept images]"}
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: dict[str, Any], path: str, ctx: _Ctx) -> list[dict[str, Any]]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{path}.source: Field required")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    context = block.get("context") if isinstance(block.get("context"), str) else None
    header = "\n".join(x for x in (f"Document: {title}" if title else None, context) if x)
    kind = source.get("type")
    if kind == "text":
        data = source.get("data")
        if not isinstance(data, str):
            raise InvalidRequest(f"{path}.source.data: Field required")
        return [{"type": "text", "text": f"{header}\n\n{data}" if header else data}]
    if kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            return [{"type": "text", "text": f"{header}\n\n{content}" if header else content}]
        if not isinstance(content, list):
            raise InvalidRequest(f"{path}.source.content: must be a string or a list of blocks")
        parts: list[dict[str, Any]] = [{"type": "text", "text": header}] if header else []
        for j, inner in enumerate(content):
            ipath = f"{path}.source.content.{j}"
            if isinstance(inner, dict) and inner.get("type") == "text":
                parts.append({"type": "text", "text": _text_of(inner, ipath)})
            elif isinstance(inner, dict) and inner.get("type") == "image":
                parts.append(_image(inner, ipath, ctx))
            else:
                raise InvalidRequest(f"{ipath}: expected a text or image block")
        return parts
    name = title or "document.pdf"
    if kind == "base64":
        data = source.get("data")
        if not isinstance(data, str):
            raise InvalidRequest(f"{path}.source.data: Field required")
        media = source.get("media_type")
        media = media if isinstance(media, str) else "application/pdf"
        if ctx.quirks.documents:
            return [{"type": "file", "file": {"filename": name, "file_data": f"data:{media};base64,{data}"}}]
        ctx.dropped.add("PDF documents (provider takes no files)")
        note = f"[PDF document '{name}' omitted: this model does not accept PDF files]"
        return [{"type": "text", "text": note}]
    if kind == "url":
        ctx.dropped.add("document url sources")
        return [{"type": "text", "text": f"[document '{name}' at {source.get('url')} was not attached]"}]
    if kind == "file":
        ctx.dropped.add("document file_id sources")
        return [{"type": "text", "text": f"[document '{name}' (Files API) was not attached]"}]
    raise InvalidRequest(f"{path}.source.type: unknown document source type {kind!r}")


def _search_result(block: dict[str, Any], path: str) -> str:
    title = block.get("title") if isinstance(block.get("title"), str) else ""
    source = block.get("source") if isinstance(block.get("source"), str) else ""
    texts = _text_blocks(block.get("content", []), f"{path}.content")
    head = " — ".join(x for x in (title, source) if x)
    return f"[search result: {head}]\n" + "\n".join(texts) if head else "\n".join(texts)


def _tool_result(block: dict[str, Any], path: str, ctx: _Ctx) -> tuple[str, list[dict[str, Any]]]:
    """Tool messages carry text only: images come back separately, for the next user message."""
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for j, inner in enumerate(content):
            ipath = f"{path}.content.{j}"
            kind = inner.get("type") if isinstance(inner, dict) else None
            if not isinstance(inner, dict) or not isinstance(kind, str):
                raise InvalidRequest(f"{ipath}.type: Field required")
            if kind == "text":
                texts.append(_text_of(inner, ipath))
            elif kind == "image":
                part = _image(inner, ipath, ctx)
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    images.append(part)
            elif kind == "document":
                for part in _document(inner, ipath, ctx):
                    if part["type"] == "text":
                        texts.append(part["text"])
                    else:
                        images.append(part)
            elif kind == "search_result":
                texts.append(_search_result(inner, ipath))
            elif kind == "tool_reference":
                texts.append(f"[tool reference: {inner.get('tool_name', '')}]")
            else:
                raise InvalidRequest(f"{ipath}: unknown block type '{kind}'")
    elif content is not None:
        raise InvalidRequest(f"{path}.content: must be a string or a list of blocks")
    text = "\n".join(t for t in texts if t)
    if images:
        note = f"[{len(images)} attachment(s) from this result follow in the next user message]"
        text = f"{text}\n{note}" if text.strip() else note
    if not text.strip():
        text = _EMPTY_RESULT  # some servers reject empty tool content
    if block.get("is_error") is True:
        # OpenAI tool messages have no error flag; say it in the text so the model knows.
        text = f"Error: {text}"
    return text, images


# -- post-processing ---------------------------------------------------------------------------


def _merge(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge neighbours of the same role that dropped content left behind (user+user,
    assistant+assistant without tool calls in between)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        prev = out[-1] if out else None
        if prev is not None and prev["role"] == message["role"] == "user":
            prev["content"] = prev["content"] + message["content"]
        elif prev is not None and prev["role"] == message["role"] == "assistant" and "tool_calls" not in prev:
            merged = _join([prev.get("content") or "", message.get("content") or ""])
            combined = {**prev, **message, "content": merged or (None if "tool_calls" in message else "")}
            out[-1] = combined
        else:
            out.append(message)
    return out


def _finish_user(message: dict[str, Any]) -> dict[str, Any]:
    """Text-only user content as one string: the widest-supported shape (older llama.cpp and many
    chat templates take strings only)."""
    if message["role"] != "user" or not isinstance(message["content"], list):
        return message
    parts = message["content"]
    if all(p.get("type") == "text" for p in parts):
        return {"role": "user", "content": "\n\n".join(p["text"] for p in parts)}
    return message
