"""OpenAI Chat Completions stream -> Anthropic SSE events, as a sans-IO state machine.

Feed decoded chunks in, get ``(event_name, data)`` pairs out (wire-formats.md §7.3). Guarantees,
whatever the provider sends:

* ``message_start`` first (its ``input_tokens`` is the local estimate, never 0), then blocks with
  indexes 0, 1, 2... in the order they start, each closed before the next starts;
* thinking, text and tool_use blocks switch cleanly; a thinking block ends with one
  ``signature_delta`` (the gateway signature) before its ``content_block_stop``;
* no text block that is empty or whitespace only (leading whitespace waits for real text);
* tool arguments only as ``input_json_delta``; a ``tool_use`` start always has ``input: {}``;
* tool-call fragments are merged by id, then index, then "the current call", which copes with
  Ollama (index 0 for every call, or none), LocalAI (the same call repeated at several indexes),
  vLLM (two entries of one index in one chunk) and DeepSeek (an index reused for a second call);
* the finish_reason chunk does not end the stream: the usage chunk after it is still read, and
  ``finish`` (on ``[DONE]`` or EOF) emits ``message_delta`` with cumulative usage and
  ``message_stop``.

A chunk carrying an ``error`` (OpenAI, OpenRouter, vLLM shapes) does not raise: ``feed`` returns
the ``error`` event and the translator is finished. Provider failures signalled by
finish_reason ``error`` / ``insufficient_system_resource`` end the same way, from ``finish``.

``plain_text`` is ``feed`` for a chunk known to be a piece of text and nothing else
(``translate.plain``, the pipeline's fast path): it acts only while a text block is open,
where ``feed`` would do no more than note the text and emit one ``text_delta``, so every
guarantee above holds whichever of the two a chunk went through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ccgate.translate.errors import error_in_chunk
from ccgate.translate.reasoning import reasoning_text, sign
from ccgate.translate.response import DEFAULT_REASONING_FIELDS, new_message_id, translate_response
from ccgate.translate.tokens import count_text
from ccgate.translate.toolnames import ToolNames
from ccgate.translate.usage import ERROR_FINISH, anthropic_usage, stop_reason

Event = tuple[str, dict[str, Any]]
# A delta with only these keys carries no reasoning, refusal or tool call (``_delta``).
_PLAIN_DELTA = frozenset({"role", "content"})


@dataclass
class _Call:
    id: str
    upstream_id: str | None
    name: str | None = None
    text: str = ""  # arguments so far (emitted or waiting for the name)
    block: int | None = None
    pending: list[str] = field(default_factory=list)

    def complete(self) -> bool:
        try:
            return isinstance(json.loads(self.text), dict)
        except ValueError:
            return False


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


class StreamTranslator:
    def __init__(
        self,
        *,
        model: str,
        tools: ToolNames,
        input_tokens_estimate: int,
        message_id: str | None = None,
        provider: str = "upstream",
        reasoning_fields: tuple[str, ...] = DEFAULT_REASONING_FIELDS,
        emit_thinking: bool = True,
    ) -> None:
        """``emit_thinking``: the provider's reasoning becomes thinking blocks (only when the
        client enabled thinking; otherwise it is left out, as Anthropic's API leaves it out)."""
        self._model = model
        self._tools = tools
        self._input_estimate = max(1, input_tokens_estimate)
        self._id = message_id or new_message_id()
        self._provider = provider
        self._fields = reasoning_fields if emit_thinking else ()
        self._emit_thinking = emit_thinking
        self._started = False
        self._finished = False
        self._next_index = 0
        self._open: str | None = None  # "text" | "thinking" | "tool"
        self._open_index = -1
        self._open_call: _Call | None = None
        self._thinking: list[str] = []
        self._whitespace = ""  # text that is whitespace so far; it opens no block on its own
        self._calls: list[_Call] = []
        self._by_id: dict[str, _Call] = {}
        self._by_index: dict[int, _Call] = {}
        self._current: _Call | None = None
        self._finish_reason: Any = None
        self._matched_stop: Any = None
        self._usage: dict[str, Any] | None = None
        self._refused = False
        # Text sent so far, counted only if the provider reports no completion_tokens: a
        # per-delta count cost a quarter of the per-chunk time for a number rarely used.
        self._output_pieces: list[str] = []
        self.warnings: list[str] = []  # provider misbehaviour worth a debug log line

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def message_id(self) -> str:
        return self._id

    @property
    def reasoning_keys(self) -> tuple[str, ...]:
        """The delta keys read as reasoning (none when thinking is left out)."""
        return (*self._fields, "reasoning_details") if self._emit_thinking else ()

    @property
    def text_open(self) -> bool:
        """A text block is open and the stream goes on: ``plain_text`` would take a chunk."""
        return self._open == "text" and not self._finished

    def plain_text(self, text: str) -> int:
        """The fast path's ``feed``: ``text`` (non-empty) is the whole of a chunk that carries
        nothing else (``translate.plain``). While a text block is open, ``feed`` would only
        note it and return one ``text_delta`` in that block: the same is done here and the
        block's index returned, for the caller to emit the delta. Otherwise -1, nothing
        changed: ``feed`` the chunk."""
        if self._open != "text" or self._finished:
            return -1
        self._output_pieces.append(text)
        return self._open_index

    # -- public API --------------------------------------------------------------------------
    def start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        usage = {
            "input_tokens": self._input_estimate,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        }
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def ping(self) -> list[Event]:
        return [("ping", {"type": "ping"})]

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self._finished:
            return []
        events = self.start() if not self._started else []
        if "error" in chunk or chunk.get("object") == "error":  # error_in_chunk's test, inlined
            err = error_in_chunk(chunk, provider=self._provider)
            if err is not None:
                return events + self.fail(err.error_type, err.message)
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self._usage = usage  # cumulative wherever it appears; the last one wins
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                # n > 1 is never requested; a stray second choice must not mix into the first.
                if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
                    continue
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    delta = choice.get("message")  # a few servers send whole messages in chunks
                events += self._delta(delta if isinstance(delta, dict) else {})
                if choice.get("finish_reason"):
                    self._finish_reason = choice["finish_reason"]
                if choice.get("stop_reason") is not None:
                    self._matched_stop = choice["stop_reason"]
        return events

    def finish(self, *, truncated: bool = False) -> list[Event]:
        """End of stream. ``truncated=True`` says EOF came without ``[DONE]``; if no finish_reason
        was seen either, the answer is cut short and an error event is sent instead."""
        if self._finished:
            return []
        events = self.start()
        reason = self._finish_reason
        if reason in ERROR_FINISH:
            return events + self.fail(
                ERROR_FINISH[reason], f"{self._provider} ended the stream with finish_reason '{reason}'"
            )
        if truncated and reason is None:
            return events + self.fail("api_error", f"{self._provider} closed the stream before it finished")
        for call in self._calls:
            if call.block is None:
                self.warnings.append(f"tool call {call.upstream_id or call.id} never named; dropped")
        events += self._close()
        has_tools = any(c.block is not None for c in self._calls)
        stop, sequence = stop_reason(reason, tool_calls=has_tools, matched_stop=self._matched_stop)
        if self._refused and stop == "end_turn":
            stop = "refusal"
        usage = anthropic_usage(
            self._usage, input_estimate=self._input_estimate, output_estimate=self._output_estimate()
        )
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": sequence},
                    "usage": usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        self._finished = True
        return events

    def _output_estimate(self) -> int:
        u = self._usage
        if isinstance(u, dict) and isinstance(u.get("completion_tokens"), int) and u["completion_tokens"] > 0:
            return 0  # the provider's count is used
        return sum(count_text(piece) for piece in self._output_pieces)

    def fail(self, error_type: str, message: str) -> list[Event]:
        """Upstream broke after ``start``: an ``error`` event, and no ``message_stop`` (Claude Code
        treats the turn as failed and may retry without streaming)."""
        if self._finished:
            return []
        self._finished = True
        return [("error", {"type": "error", "error": {"type": error_type, "message": message}})]

    # -- deltas ------------------------------------------------------------------------------
    def _delta(self, delta: dict[str, Any]) -> list[Event]:
        if delta.keys() <= _PLAIN_DELTA:  # most chunks: text (or nothing) only
            content = delta.get("content")
            return self._text_delta(content) if isinstance(content, str) and content else []
        # One chunk may carry reasoning, text and tool calls at once: split them in that order.
        events: list[Event] = []
        thought = reasoning_text(delta, self._fields) if self._emit_thinking else ""
        if thought:
            events += self._thinking_delta(thought)
        content = delta.get("content")
        if isinstance(content, str) and content:
            events += self._text_delta(content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused = True
            events += self._text_delta(refusal)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    events += self._tool_delta(call)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict) and not calls:
            events += self._tool_delta({"index": 0, "function": legacy})
        return events

    def _thinking_delta(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._open != "thinking":
            events += self._close()
            events += self._start_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        self._thinking.append(text)
        self._output_pieces.append(text)
        events.append(self._block_delta({"type": "thinking_delta", "thinking": text}))
        return events

    def _text_delta(self, text: str) -> list[Event]:
        self._output_pieces.append(text)
        if self._open == "text":
            return [self._block_delta({"type": "text_delta", "text": text})]
        pending = self._whitespace + text
        if not pending.strip():
            self._whitespace = pending
            return []
        events = self._close()
        events += self._start_block("text", {"type": "text", "text": ""})
        events.append(self._block_delta({"type": "text_delta", "text": pending}))
        return events

    def _tool_delta(self, fragment: dict[str, Any]) -> list[Event]:
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name") if isinstance(function.get("name"), str) and function.get("name") else None
        args = function.get("arguments")
        if isinstance(args, dict):
            args = json.dumps(args)
        args = args if isinstance(args, str) else ""
        upstream_id = fragment.get("id") if isinstance(fragment.get("id"), str) and fragment.get("id") else None
        index = fragment.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else None

        call = self._route(upstream_id, index, name, args)
        if call is None:
            return []
        if name and call.name is None:
            call.name = self._tools.anthropic_name(name)
        self._output_pieces.append(args)
        events: list[Event] = []
        if call.block is None:
            call.text += args
            if call.name is None:
                call.pending.append(args)  # arguments before the name: hold until it arrives
                return []
            events += self._close()
            events += self._start_block(
                "tool", {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            )
            call.block = self._open_index
            self._open_call = call
            buffered = "".join(call.pending) + args
            call.pending.clear()
            if buffered:
                events.append(self._block_delta({"type": "input_json_delta", "partial_json": buffered}))
        elif call is self._open_call:
            call.text += args
            if args:
                events.append(self._block_delta({"type": "input_json_delta", "partial_json": args}))
        elif args:
            # Its block is closed and Anthropic blocks cannot reopen (interleaved calls).
            self.warnings.append(f"late arguments for tool call {call.id} dropped: {args[:80]!r}")
        return events

    def _route(self, upstream_id: str | None, index: int | None, name: str | None, args: str) -> _Call | None:
        """The call a fragment belongs to: a new id is a new call, a known id is that call, then
        the index, then (no id, no index) the current call. A fragment that re-announces a name
        on a call whose arguments are already a complete object starts a new call (Ollama without
        ids) - unless it repeats a known id, which is LocalAI's duplicate and is ignored."""
        if upstream_id is not None:
            known = self._by_id.get(upstream_id)
            if known is None:
                return self._new_call(upstream_id, index)
            if name and args and known.complete() and (args == known.text or _is_json_object(args)):
                return None
            if index is not None:
                self._by_index.setdefault(index, known)
            self._current = known
            return known
        candidate = self._by_index.get(index) if index is not None else self._current
        if candidate is None:
            return self._new_call(None, index)
        if name and candidate.name and candidate.complete():
            return self._new_call(None, index)
        self._current = candidate
        return candidate

    def _new_call(self, upstream_id: str | None, index: int | None) -> _Call:
        k = len(self._calls)
        tool_id = self._tools.anthropic_id(upstream_id, seed=f"{self._id}:{k}")
        if any(c.id == tool_id for c in self._calls):
            tool_id = f"{tool_id}_{k}"
        call = _Call(id=tool_id, upstream_id=upstream_id)
        self._calls.append(call)
        if upstream_id is not None:
            self._by_id[upstream_id] = call
        if index is not None:
            self._by_index[index] = call
        self._current = call
        return call

    # -- blocks ------------------------------------------------------------------------------
    def _start_block(self, kind: str, block: dict[str, Any]) -> list[Event]:
        index = self._next_index
        self._next_index += 1
        self._open, self._open_index = kind, index
        if kind != "text":
            self._whitespace = ""  # whitespace between blocks belongs to no block
        return [
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
        ]

    def _block_delta(self, delta: dict[str, Any]) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self._open_index, "delta": delta},
        )

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        events: list[Event] = []
        if self._open == "thinking":
            events.append(
                self._block_delta({"type": "signature_delta", "signature": sign("".join(self._thinking))})
            )
            self._thinking = []
        elif self._open == "tool" and self._open_call is not None and not self._open_call.text:
            # No arguments at all: send "{}" so every client parses an object, not "".
            events.append(self._block_delta({"type": "input_json_delta", "partial_json": "{}"}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._open_index}))
        self._open = None
        self._open_call = None
        self._whitespace = ""
        return events


def stream_from_response(
    resp: dict[str, Any],
    *,
    model: str,
    tools: ToolNames,
    input_tokens_estimate: int,
    message_id: str | None = None,
    provider: str = "upstream",
    reasoning_fields: tuple[str, ...] = DEFAULT_REASONING_FIELDS,
    emit_thinking: bool = True,
) -> list[Event]:
    """A complete, valid Anthropic event sequence for a complete (non-streamed) OpenAI response,
    for providers asked not to stream (Quirks.stream_with_tools=False, e.g. Ollama with tools).
    Raises the GatewayError an error body maps to, before any event exists."""
    message = translate_response(
        resp,
        model=model,
        tools=tools,
        input_tokens_estimate=input_tokens_estimate,
        message_id=message_id,
        provider=provider,
        reasoning_fields=reasoning_fields,
        emit_thinking=emit_thinking,
    )
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[Event] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            head: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block["text"]}]
        elif kind == "thinking":
            head = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": json.dumps(block["input"], ensure_ascii=False)}
            ]
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": head})
        )
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                "usage": usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
