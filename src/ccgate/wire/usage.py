"""Read token usage out of an Anthropic response while relaying it, without slowing it down.

Passthrough relays bytes untouched; usage accounting still needs the numbers. ``UsageTap``
looks at each chunk once with a C-speed substring search and decodes only the few SSE
lines that carry ``"usage"`` (``message_start`` and ``message_delta``), or the whole JSON
body at the end for a non-streamed answer. Sans-IO: bytes in, a usage dict out.

The relayed bytes may be compressed (the client's ``accept-encoding`` is forwarded): gzip
and deflate are inflated for the tap alone, with the stdlib's zlib; other encodings are not
read (``readable`` is False), which is why the gateway narrows ``accept-encoding`` to
``READABLE_ENCODINGS`` when it needs the usage.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgspec

_USAGE = b'"usage"'
_JSON_LIMIT = 4 * 1024 * 1024  # a larger non-streamed answer is relayed, just not counted
# An SSE line longer than this is relayed but not read: usage lines are a few hundred bytes.
# Held unfinished lines are kept as pieces and joined once, so a line without a newline costs
# linear time and at most this much memory (it was re-copied per chunk: quadratic).
LINE_LIMIT = 1024 * 1024
_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
_decode = msgspec.json.Decoder()


class _Answer(msgspec.Struct):
    """The three fields of a non-streamed answer the tap reads; the decoder skips every other
    value (the content blocks) without building it."""

    usage: Any = None
    model: Any = None
    stop_reason: Any = None


_decode_answer = msgspec.json.Decoder(_Answer)
# Where the tap puts usage.cache_creation.ephemeral_1h_input_tokens (a flat key in its dict).
CACHE_1H = "cache_creation_1h_input_tokens"
READABLE_ENCODINGS = ("gzip", "deflate")
_READABLE = frozenset({"identity", "", "x-gzip", *READABLE_ENCODINGS})  # what feed() can read
_INFLATED = frozenset({"gzip", "x-gzip", "deflate"})
# zlib window bits: 47 accepts a gzip or a zlib header; deflate without a header is retried raw.
_AUTO_HEADER = 47


class UsageTap:
    # One per open stream: slots, not a dict (issue 13: memory per stream).
    __slots__ = ("_inflate", "_json", "_json_size", "_raw_deflate", "_skipping", "_tail", "_tail_size",
                 "model", "readable", "sse", "stop_reason", "usage")

    def __init__(self, *, sse: bool, encoding: str | None = None) -> None:
        self.sse = sse
        self._tail: list[bytes] = []  # pieces of the unfinished last line
        self._tail_size = 0
        self._skipping = False  # inside a line over LINE_LIMIT: dropped up to its newline
        self._json: list[bytes] = []
        self._json_size = 0
        self.usage: dict[str, int] = {}
        # What the answer names (message_start's model, message_delta's stop_reason), for traces.
        self.model: str | None = None
        self.stop_reason: str | None = None
        self._inflate: Any = None
        self._raw_deflate = False
        if encoding is None:  # the common case: an answer as it is
            self.readable = True
            return
        coding = encoding.strip().lower()
        self.readable = coding in _READABLE
        if coding in _INFLATED:
            self._inflate = zlib.decompressobj(_AUTO_HEADER)
            self._raw_deflate = coding == "deflate"

    def feed(self, chunk: bytes) -> None:
        if not self.readable:
            return
        if self._inflate is not None:
            chunk = self._inflated(chunk)
            if not chunk:
                return
        if not self.sse:
            self._json_size += len(chunk)
            if self._json_size <= _JSON_LIMIT:
                self._json.append(chunk)
            return
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._hold(chunk)
            return
        start = 0
        if self._tail or self._skipping:  # finish the held line first
            start = chunk.find(b"\n") + 1
            if not self._skipping:
                self._scan(b"".join(self._tail) + chunk[:start])
            self._tail, self._tail_size, self._skipping = [], 0, False
        if _USAGE in chunk:
            self._scan(chunk[start:cut] if start or cut < len(chunk) - 1 else chunk)
        if cut < len(chunk) - 1:
            self._hold(chunk[cut + 1:])

    def _hold(self, piece: bytes) -> None:
        """Keep the start of an unfinished line, unless it is already too long to read."""
        if self._skipping:
            return
        self._tail_size += len(piece)
        if self._tail_size > LINE_LIMIT:
            self._tail, self._tail_size, self._skipping = [], 0, True
            return
        self._tail.append(piece)

    def _scan(self, lines: bytes) -> None:
        if _USAGE in lines:
            for line in lines.split(b"\n"):
                if line.startswith(b"data:") and _USAGE in line:
                    self._merge_event(line[5:])

    def _inflated(self, chunk: bytes) -> bytes:
        try:
            # Bounded: an answer inflating past the JSON limit is not counted anyway.
            return bytes(self._inflate.decompress(chunk, _JSON_LIMIT))
        except zlib.error:
            if self._raw_deflate and self._json_size == 0 and not self._tail_size:
                # "deflate" sent as a raw stream (no zlib header), as some servers do.
                self._raw_deflate = False
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                return self._inflated(chunk)
            self.readable = False
            return b""

    def result(self) -> dict[str, int] | None:
        """The usage seen so far (cumulative, as Anthropic reports it), or None if none was."""
        if not self.sse and self._json and self._json_size <= _JSON_LIMIT:
            try:
                answer: _Answer | None = _decode_answer.decode(b"".join(self._json))
            except msgspec.DecodeError:  # not JSON, or not an object (ValidationError)
                answer = None
            self._json = []
            if answer is not None:
                self._take(answer.usage)
                self._names(answer.model, answer.stop_reason)
        return dict(self.usage) if self.usage else None

    def _merge_event(self, raw: bytes) -> None:
        try:
            event = _decode.decode(raw)
        except msgspec.DecodeError:
            return
        if not isinstance(event, dict):
            return
        if event.get("type") == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self._take(message.get("usage"))
                self._names(message.get("model"), None)
        elif event.get("type") == "message_delta":
            self._take(event.get("usage"))
            delta = event.get("delta")
            if isinstance(delta, dict):
                self._names(None, delta.get("stop_reason"))

    def _names(self, model: Any, stop_reason: Any) -> None:
        if isinstance(model, str):
            self.model = model[:200]
        if isinstance(stop_reason, str):
            self.stop_reason = stop_reason[:64]

    def _take(self, usage: Any) -> None:
        # message_delta counts are cumulative, so later values replace earlier ones.
        if isinstance(usage, dict):
            for name in _FIELDS:
                value = usage.get(name)
                if isinstance(value, int):
                    self.usage[name] = value
            # Cache writes split by TTL ({"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"}):
            # 1-hour writes cost 1.6x the 5-minute ones, so cost needs the split.
            split = usage.get("cache_creation")
            if isinstance(split, dict):
                one_hour = split.get("ephemeral_1h_input_tokens")
                if isinstance(one_hour, int):
                    self.usage[CACHE_1H] = one_hour


__all__ = ["CACHE_1H", "UsageTap"]
