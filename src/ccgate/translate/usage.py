"""OpenAI usage -> Anthropic usage, and the stop-reason mapping shared by both directions."""

from __future__ import annotations

from typing import Any

# finish_reason values that mean the provider failed rather than finished.
ERROR_FINISH = {"error": "api_error", "insufficient_system_resource": "overloaded_error"}

_STOP = {
    "stop": "end_turn",
    "eos": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def anthropic_usage(usage: Any, *, input_estimate: int, output_estimate: int) -> dict[str, int]:
    """``input_tokens`` excludes cache reads and writes, as Anthropic counts it.

    Cache reads come from ``prompt_tokens_details.cached_tokens`` (OpenAI, vLLM, OpenRouter) or
    DeepSeek's ``prompt_cache_hit_tokens``; cache writes from ``cache_write_tokens`` (OpenRouter).
    Without a usable prompt count the local estimate stands in, so Claude Code never sees 0.
    """
    u = usage if isinstance(usage, dict) else {}
    details = u.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    prompt = _int(u.get("prompt_tokens"))
    cached = _int(details.get("cached_tokens")) or _int(u.get("prompt_cache_hit_tokens"))
    written = _int(details.get("cache_write_tokens")) or _int(details.get("cache_creation_tokens"))
    output = _int(u.get("completion_tokens"))
    if prompt:
        fresh = max(0, prompt - cached - written)
    else:
        fresh, cached, written = max(1, input_estimate), 0, 0
    return {
        "input_tokens": fresh,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": output or max(1, output_estimate),
    }


def stop_reason(finish_reason: Any, *, tool_calls: bool, matched_stop: Any = None) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). Any tool call wins: Claude Code runs tools only on tool_use,
    and Ollama, vLLM and even gpt-4o have reported ``stop`` with tool calls."""
    if tool_calls:
        return "tool_use", None
    if isinstance(matched_stop, str) and matched_stop and finish_reason in (None, "stop"):
        # vLLM's non-standard stop_reason holds the stop string that matched (an int is a token id).
        return "stop_sequence", matched_stop
    if finish_reason in ("tool_calls", "function_call"):
        return "end_turn", None  # claimed tool calls but sent none: nothing to run
    return _STOP.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn", None
