"""OpenAI Chat Completions response -> Anthropic Message (non-streaming)."""

from __future__ import annotations

import json
import random
import re
from typing import Any

from ccgate.errors import GatewayError, UpstreamOverloaded, UpstreamServerError
from ccgate.translate.errors import error_in_chunk
from ccgate.translate.reasoning import reasoning_text, sign
from ccgate.translate.tokens import count_text
from ccgate.translate.toolnames import ToolNames
from ccgate.translate.usage import ERROR_FINISH, anthropic_usage, stop_reason

DEFAULT_REASONING_FIELDS = ("reasoning_content", "reasoning")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def new_message_id() -> str:
    """A message id of the gateway's own, as the streamed ones: never the upstream's id, which
    some servers repeat (llama.cpp, proxies that answer from a cache)."""
    # An identifier, not a secret: the process's PRNG (seeded from the OS, reseeded in a forked
    # child by the random module) instead of a urandom syscall per message (~1 % of a
    # translated request's CPU).
    return f"msg_ccgate_{random.getrandbits(96):024x}"


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """A tool call's ``arguments`` string as the Anthropic ``input`` object.

    Empty means ``{}``; a code fence around the JSON is removed; a dict (some servers send one)
    is taken as is; keys lose stray whitespace ("description " has been seen). Anything still
    unparsable is kept under ``raw_input`` so the tool fails visibly instead of running with {}.
    """
    if isinstance(arguments, dict):
        value: Any = arguments
    elif arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    elif isinstance(arguments, str):
        text = arguments
        fence = _FENCE.match(text)
        if fence:
            text = fence.group(1)
        try:
            value = json.loads(text)
            if isinstance(value, str):  # double-encoded by the provider
                value = json.loads(value)
        except ValueError:
            return {"raw_input": arguments}
    else:
        return {"raw_input": json.dumps(arguments)}
    if not isinstance(value, dict):
        return {"raw_input": arguments if isinstance(arguments, str) else json.dumps(arguments)}
    return {(k.strip() if isinstance(k, str) else k): v for k, v in value.items()}


def _finish_error(finish: Any, provider: str) -> GatewayError | None:
    if finish not in ERROR_FINISH:
        return None
    text = f"{provider} stopped with finish_reason '{finish}' before completing the response"
    if ERROR_FINISH[finish] == "overloaded_error":
        return UpstreamOverloaded(text, hop="provider")
    return UpstreamServerError(text, hop="provider")


def translate_response(
    resp: dict[str, Any],
    *,
    model: str,
    tools: ToolNames,
    input_tokens_estimate: int,
    message_id: str | None = None,
    provider: str = "upstream",
    reasoning_fields: tuple[str, ...] = DEFAULT_REASONING_FIELDS,
    emit_thinking: bool = True,
) -> dict[str, Any]:
    """The Anthropic Message for a complete OpenAI response.

    ``emit_thinking``: the provider's reasoning becomes a thinking block; the server sets it
    only when the client enabled thinking (docs/translation.md).

    Raises a GatewayError when the body is an error (OpenRouter answers errors with HTTP 200),
    has no choices, or ended with finish_reason ``error`` / ``insufficient_system_resource``:
    the answer is incomplete, and a retryable error lets Claude Code try again.
    """
    err = error_in_chunk(resp, provider=provider)
    if err is not None:
        raise err
    choices = resp.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamServerError(f"{provider} returned a response without choices", hop="provider")
    choice = choices[0]
    finish = choice.get("finish_reason")
    failed = _finish_error(finish, provider)
    if failed is not None:
        raise failed
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    msg_id = message_id or new_message_id()

    content: list[dict[str, Any]] = []
    thought = reasoning_text(message, reasoning_fields) if emit_thinking else ""
    if thought.strip():
        content.append({"type": "thinking", "thinking": thought, "signature": sign(thought)})
    text = _content_text(message.get("content"))
    if text.strip():
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal.strip())
    if refused:
        content.append({"type": "text", "text": str(refusal)})

    calls = message.get("tool_calls")
    raw_calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    legacy = message.get("function_call")
    if not raw_calls and isinstance(legacy, dict):
        raw_calls = [{"function": legacy}]
    seen: set[str] = set()
    for k, call in enumerate(raw_calls):
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        if not isinstance(name, str) or not name:
            continue  # a nameless call cannot be run by the client
        upstream_id = call.get("id") if isinstance(call.get("id"), str) else None
        tool_id = tools.anthropic_id(upstream_id, seed=f"{msg_id}:{k}")
        if tool_id in seen:
            tool_id = f"{tool_id}_{k}"
        seen.add(tool_id)
        content.append(
            {
                "type": "tool_use",
                "id": tool_id,
                "name": tools.anthropic_name(name),
                "input": parse_arguments(function.get("arguments")),
            }
        )

    has_tools = any(b["type"] == "tool_use" for b in content)
    reason, sequence = stop_reason(finish, tool_calls=has_tools, matched_stop=choice.get("stop_reason"))
    if refused and reason == "end_turn":
        reason = "refusal"
    output_estimate = sum(count_text(json.dumps(b)) for b in content)
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(
            resp.get("usage"), input_estimate=input_tokens_estimate, output_estimate=output_estimate
        ),
    }


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""
