"""Anthropic ``messages`` -> OpenAI chat messages: turns, blocks, tool calls and their results.

The rules are tabled in docs/translation.md. ``translate_messages`` translates a decoded list in
one pass; ``translate.history`` translates one turn at a time (``message_blocks``,
``assistant_turn``, ``user_turn``) and remembers each turn by its bytes, so both paths share
every rule here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ccgate.errors import InvalidRequest
from ccgate.translate.quirks import Quirks
from ccgate.translate.reasoning import is_gateway_signature
from ccgate.translate.toolnames import ToolNames

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
PLACEHOLDER_RESULT = "(no result: the tool call was interrupted before it returned)"
_EMPTY_RESULT = "(no output)"


class Dropped:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, item: str) -> None:
        if item not in self.items:
            self.items.append(item)


@dataclass
class Ctx:
    quirks: Quirks
    names: ToolNames
    dropped: Dropped
    upstream_tools: tuple[str, ...] = ()  # the translated tools' names, in order


def text_of(block: dict[str, Any], path: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        problem = "Field required" if text is None else "must be a string"
        raise InvalidRequest(f"{path}.text: {problem}")
    return text


def text_blocks(content: Any, path: str) -> list[str]:
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
        texts.append(text_of(block, f"{path}.{j}"))
    return texts


def join(texts: list[str]) -> str:
    return "\n\n".join(t for t in texts if t.strip())



Block = tuple[str, dict[str, Any]]  # (path for error messages, block)


def translate_messages(messages: Any, ctx: Ctx) -> list[dict[str, Any]]:
    """A decoded ``messages`` list, translated in one pass. ``translate.history`` does the
    same turn by turn from raw slices; the tests hold both to byte-identical output."""
    if messages is None:
        raise InvalidRequest("messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: must be a non-empty list")
    turns = _turns(messages, ctx)
    out: list[dict[str, Any]] = []
    pending: dict[str, str] = {}  # anthropic tool_use id -> upstream id, still unanswered
    for role, blocks in turns:
        if role == "assistant":
            answer_pending(pending, out, ctx)
            message, calls = _assistant(blocks, ctx)
            if message is not None:
                out.append(message)
                pending.update(calls)
        else:
            tool_messages, segments = _user(blocks, ctx, pending)
            out.extend(tool_messages)
            answer_pending(pending, out, ctx)
            place_segments(segments, out, ctx)
    answer_pending(pending, out, ctx)
    return [_finish_user(m) for m in _merge(out)]


def answer_pending(pending: dict[str, str], out: list[Any], ctx: Ctx) -> None:
    """A placeholder tool message for each call still unanswered. OpenAI rejects an assistant
    tool_calls message not followed by one tool message per call; Anthropic would have rejected
    the request too, but interrupted sessions and client-side compaction produce such
    histories, so repair rather than fail."""
    for anthropic_id, upstream_id in pending.items():
        out.append({"role": "tool", "tool_call_id": upstream_id, "content": PLACEHOLDER_RESULT})
        ctx.dropped.add(f"tool_use {anthropic_id} had no tool_result (placeholder sent)")
    pending.clear()


def place_segments(segments: list[dict[str, Any] | str], out: list[dict[str, Any]], ctx: Ctx) -> None:
    """A user turn's parts after its tool messages: into the user message before them when
    there is one, else a new one; a string is mid-conversation system text, sent in place."""
    for segment in segments:
        if isinstance(segment, str):
            out.append({"role": ctx.quirks.system_role, "content": segment})
        elif out and out[-1]["role"] == "user":
            out[-1]["content"].append(segment)
        else:
            out.append({"role": "user", "content": [segment]})


def _turns(messages: list[Any], ctx: Ctx) -> list[tuple[str, list[Block]]]:
    """Messages as turns: consecutive same-role messages merge, as Anthropic merges them."""
    turns: list[tuple[str, list[Block]]] = []
    for i, message in enumerate(messages):
        role, blocks, cached = message_blocks(message, i)
        if cached:
            ctx.dropped.add("cache_control")
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return turns


def message_blocks(message: Any, i: int) -> tuple[str, list[Block], bool]:
    """One message checked and split: (its turn's role, its blocks with their paths, whether a
    block carried ``cache_control``). A ``system`` message belongs to a user turn."""
    path = f"messages.{i}"
    if not isinstance(message, dict):
        raise InvalidRequest(f"{path}: must be an object")
    role = message.get("role")
    if role not in ("user", "assistant", "system"):
        raise InvalidRequest(f"{path}.role: must be 'user', 'assistant' or 'system', got {role!r}")
    content = message.get("content")
    cached = False
    blocks: list[Block]
    if role == "system":
        # A mid-conversation system turn: handled exactly like a mid_conv_system block.
        return "user", [(f"{path}.content", {"type": "mid_conv_system", "content": content})], False
    if isinstance(content, str):
        blocks = [(f"{path}.content", {"type": "text", "text": content})]
    elif isinstance(content, list):
        blocks = []
        for j, block in enumerate(content):
            bpath = f"{path}.content.{j}"
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise InvalidRequest(f"{bpath}.type: Field required")
            cached = cached or "cache_control" in block
            blocks.append((bpath, block))
    else:
        raise InvalidRequest(f"{path}.content: must be a string or a list of content blocks")
    return role, blocks, cached


def assistant_turn(blocks: list[Block], ctx: Ctx) -> tuple[list[dict[str, Any]], dict[str, str], list[str]]:
    """One assistant turn alone: (its messages, zero or one; its calls, anthropic id -> upstream
    id; the Anthropic names of its tool calls, in order)."""
    message, calls = _assistant(blocks, ctx)
    names = [block["name"] for _, block in blocks if block["type"] == "tool_use"]
    return ([] if message is None else [message]), calls, names


def user_turn(
    blocks: list[Block], ctx: Ctx, pending: dict[str, str]
) -> tuple[list[dict[str, Any]], int]:
    """One user turn alone: (its messages, finished; how many of them lead as tool messages).
    ``pending`` (the calls it may answer) loses the ids answered; the caller sends placeholders
    for the rest between the tool messages and the others, as ``translate_messages`` does."""
    tool_messages, segments = _user(blocks, ctx, pending)
    out = list(tool_messages)
    place_segments(segments, out, ctx)
    return [_finish_user(m) for m in _merge(out)], len(tool_messages)


def _assistant(blocks: list[Block], ctx: Ctx) -> tuple[dict[str, Any] | None, dict[str, str]]:
    q = ctx.quirks
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    ids: dict[str, str] = {}
    for path, block in blocks:
        kind = block["type"]
        if kind == "text":
            texts.append(text_of(block, path))
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
    text = join(texts)
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
    blocks: list[Block], ctx: Ctx, pending: dict[str, str]
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
            text = text_of(block, path)
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
            texts = text_blocks(block.get("content"), cpath)
            text = join(texts)
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


def _image(block: dict[str, Any], path: str, ctx: Ctx) -> dict[str, Any]:
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


def _document(block: dict[str, Any], path: str, ctx: Ctx) -> list[dict[str, Any]]:
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
                parts.append({"type": "text", "text": text_of(inner, ipath)})
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
    texts = text_blocks(block.get("content", []), f"{path}.content")
    head = " — ".join(x for x in (title, source) if x)
    return f"[search result: {head}]\n" + "\n".join(texts) if head else "\n".join(texts)


def _tool_result(block: dict[str, Any], path: str, ctx: Ctx) -> tuple[str, list[dict[str, Any]]]:
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
                texts.append(text_of(inner, ipath))
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
            merged = join([prev.get("content") or "", message.get("content") or ""])
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
