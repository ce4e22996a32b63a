"""Server-Sent Events, sans-IO: an incremental decoder (bytes in, events out) and an encoder.

The decoder follows the WHATWG event-stream rules that matter for LLM providers:

* lines end in CRLF, LF or CR, and a chunk may end between the CR and the LF of one CRLF;
* bytes are decoded incrementally, so a chunk may split a UTF-8 sequence anywhere;
* lines starting with ``:`` are comments (OpenRouter's ``: OPENROUTER PROCESSING`` keepalive);
* several ``data:`` lines of one event are joined with ``\\n``; a blank line dispatches the event;
* a leading byte-order mark is dropped.

One deliberate leniency: :meth:`SSEDecoder.close` dispatches a final event that lacks its
closing blank line, because several servers end the stream with ``data: [DONE]\\n`` and EOF.

One shortcut: :meth:`SSEDecoder.lone_data` recognises, by its bytes alone, the read that is
exactly one ``data: …`` event arriving while the decoder holds nothing (what a model's paced
stream is made of), so a caller can skip the decoding and the event object for it.
"""

from __future__ import annotations

import codecs
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()
_UTF8 = codecs.getincrementaldecoder("utf-8")  # looked up once, not per stream


class SSEEvent(msgspec.Struct, frozen=True, gc=False):
    """One dispatched event. ``event`` is "message" when the stream gave no ``event:`` line.
    (A struct: one is made for every chunk a provider sends; a frozen dataclass costs more.)"""

    data: str
    event: str = "message"
    id: str | None = None


# One SSE line, or the data of one event, longer than this (in characters) is refused: memory
# must not grow with what an upstream chooses to send. A real chunk is a few KiB.
MAX_EVENT_CHARS = 4 * 1024 * 1024


class SSEEventTooLarge(ValueError):
    """A line or an event's data passed ``MAX_EVENT_CHARS``; the stream cannot go on."""


class SSEDecoder:
    """Feed bytes as they arrive; get back the events completed by them.

    A line still arriving is held as pieces and joined once its end comes (joining per chunk
    was quadratic), up to ``max_chars``; past it, or past it in one event's data, ``feed``
    raises ``SSEEventTooLarge``."""

    def __init__(self, max_chars: int = MAX_EVENT_CHARS) -> None:
        self._utf8 = _UTF8(errors="replace")
        self._max = max_chars
        self._held: list[str] = []  # pieces of a line with no end yet
        self._held_size = 0
        self._data_size = 0
        self._buffer = ""
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        # Nothing held (no partial line, character or event): the last bytes fed ended in a
        # blank line. Only then may ``lone_data`` read a chunk on its own.
        self._idle = False
        self.comments = 0  # comment lines seen (keepalives); callers may log or ignore it

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._utf8.decode(chunk)
        if "\n" not in text and "\r" not in text:
            self._idle = False
            self._held_size += len(text)
            if self._held_size + len(self._buffer) > self._max:
                raise SSEEventTooLarge(f"an SSE line longer than {self._max} characters")
            self._held.append(text)
            return []
        if self._held:
            text = "".join(self._held) + text
            self._held, self._held_size = [], 0
        # Bytes ending in a blank line leave nothing held: the UTF-8 decoder keeps nothing
        # after an ASCII byte, the line before it ended (LF or CRLF) and the blank one
        # dispatched or dropped the event. (The text alone is not enough: b"\n\n\xe4" ends in
        # "\n\n" with a byte held.) If _take raises, the stream ends: nothing reads on.
        self._idle = chunk.endswith(b"\n\n")
        return self._take(text, final=False)

    def lone_data(self, chunk: bytes) -> bytes | None:
        """The payload of ``chunk`` if ``feed(chunk)`` would return exactly one event, a
        ``message`` whose data is ``payload.decode()``, and change nothing else: the decoder
        holds nothing and ``chunk`` is ``data: <payload>\\n\\n`` with no other line break.
        Else None: ``feed`` it. The caller must still check that the payload is valid UTF-8
        (``feed`` would replace bad bytes). The decoder stays as ``feed`` would leave it: idle."""
        if (
            self._idle
            and chunk.startswith(b"data: ")
            and chunk.endswith(b"\n\n")
            and chunk.count(b"\n") == 2
            and b"\r" not in chunk
            and len(chunk) <= self._max  # bytes >= characters: feed would not refuse it
        ):
            return chunk[6:-2]
        return None

    def close(self) -> list[SSEEvent]:
        """End of stream: flush the decoder and dispatch any complete-looking trailing event."""
        text = "".join(self._held) + self._utf8.decode(b"", final=True)
        self._held, self._held_size = [], 0
        self._idle = False
        events = self._take(text, final=True)
        if self._buffer:
            line, self._buffer = self._buffer, ""
            self._line(line)
        if self._data:
            events.append(self._dispatch())
        return events

    def _take(self, text: str, *, final: bool) -> list[SSEEvent]:
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        buf = self._buffer + text
        events: list[SSEEvent] = []
        start = 0
        n = len(buf)
        if "\r" not in buf:
            if not self._data and not self._event and "\n\n" in buf:
                # At an event boundary: whole events split off at once, the usual one-line
                # ``data:`` event without a pass per line (the rest as below).
                blocks = buf.split("\n\n")
                buf = blocks.pop()
                for block in blocks:
                    self._block(block, events)
            # Every provider we know ends lines with LF alone: one search per line, not two.
            while (lf := buf.find("\n", start)) >= 0:
                self._step(buf[start:lf], events)
                start = lf + 1
            self._buffer = buf[start:]
            return events
        while True:
            cr = buf.find("\r", start)
            lf = buf.find("\n", start)
            if cr < 0 and lf < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                # A CR as the very last character may be the first half of a CRLF: wait.
                if cr == n - 1 and not final:
                    break
                end, nxt = cr, cr + 2 if cr + 1 < n and buf[cr + 1] == "\n" else cr + 1
            else:
                end, nxt = lf, lf + 1
            self._step(buf[start:end], events)
            start = nxt
        self._buffer = buf[start:]
        return events

    def _block(self, block: str, events: list[SSEEvent]) -> None:
        """The lines of one event and the blank line that ends it (LF line ends)."""
        if block.startswith("data: ") and "\n" not in block:  # the common event: one data line
            size = self._data_size + len(block) - 5
            if size > self._max:
                raise SSEEventTooLarge(f"an SSE event with more than {self._max} characters of data")
            events.append(SSEEvent(block[6:], self._event or "message", self._last_id))
            self._data_size = 0
            self._event = ""
            return
        for line in block.split("\n"):
            self._step(line, events)
        self._step("", events)  # the blank line that ended the block

    def _step(self, line: str, events: list[SSEEvent]) -> None:
        """One line: a field, or (blank) the end of an event, dispatched if it has data (an
        event with no data is dropped, per the spec)."""
        if line:
            self._line(line)
        elif self._data:
            events.append(self._dispatch())
        else:
            self._event = ""

    def _line(self, line: str) -> None:
        if line.startswith(":"):
            self.comments += 1
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                raise SSEEventTooLarge(f"an SSE event with more than {self._max} characters of data")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\x00" not in value:
            self._last_id = value
        # "retry" and unknown fields are ignored: nothing here reconnects.

    def _dispatch(self) -> SSEEvent:
        event = SSEEvent(data="\n".join(self._data), event=self._event or "message", id=self._last_id)
        self._data = []
        self._data_size = 0
        self._event = ""
        return event


def encode_event(event: str, data: dict[str, Any]) -> bytes:
    """``event: X\\ndata: {json}\\n\\n``. Compact JSON never contains a raw newline."""
    return b"event: " + event.encode() + b"\ndata: " + _encoder.encode(data) + b"\n\n"


# ``event: X\ndata: `` of the events the gateway sends, made once.
_HEADS = {name: f"event: {name}\ndata: ".encode() for name in (
    "message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
    "message_stop", "ping", "error")}


def encode_events(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    """The events one after the other, each as ``encode_event`` writes it, into one buffer."""
    out = bytearray()
    encode_into = _encoder.encode_into
    for name, data in events:
        head = _HEADS.get(name)
        out += head if head is not None else b"event: " + name.encode() + b"\ndata: "
        encode_into(data, out, -1)
        out += b"\n\n"
    return bytes(out)
