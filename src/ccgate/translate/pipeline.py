"""An OpenAI Chat Completions stream as bytes in, Anthropic events out: one sans-IO pipeline.

In the style of h11's ``receive_data()`` / ``next_event()``: the relay reads bytes from the
socket and hands them to ``feed``; at the end of the body it calls ``close``. Everything
between the bytes and the events lives here, so the server and the tests run the same code:

* SSE framing in any chunking (``wire.sse.SSEDecoder``), comments and empty payloads skipped;
* ``data: [DONE]`` ends the stream normally; what follows it is ignored;
* a payload that is not a JSON object is a malformed chunk: an ``error`` event ends the stream;
* EOF before ``[DONE]`` ends the stream through ``StreamTranslator.finish(truncated=True)``,
  which is an error unless the provider had already given a finish reason.

The pipeline also remembers what the access log and usage accounting want of the events it
returned: the last ``usage`` and the first error message.

``feed_sse`` is ``feed`` for the relay: the events as the SSE bytes the client is sent. A
read that is one plain text chunk while a text block is open (nearly every read of an answer)
takes a shorter road to the same bytes: ``SSEDecoder.lone_data`` finds its payload,
``translate.plain`` decodes it with a typed Struct that accepts only such chunks, the
translator notes the text (``StreamTranslator.plain_text``) and the ``text_delta`` event is
written from pre-encoded pieces. Anything else, or any doubt, goes through ``feed`` (and a
stream whose text chunks the typed decode refuses 16 times in a row stops trying);
tests/translate/test_plain_fast_path.py holds both roads to byte-identical output.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ccgate.translate.plain import PlainText
from ccgate.translate.stream import Event, StreamTranslator
from ccgate.wire.openai import ChunkDecodeError, decode_chunk
from ccgate.wire.sse import SSEDecoder, SSEEvent, SSEEventTooLarge, encode_events

_encode = msgspec.json.Encoder().encode
# A text_delta event around its JSON-encoded text, as wire.sse.encode_event writes it.
_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT_HEAD = b',"delta":{"type":"text_delta","text":'
_DELTA_TAIL = b"}}\n\n"
_GIVE_UP = 16  # refusals in a row after which a stream's chunks all go the generic way


class StreamPipeline:
    def __init__(self, translator: StreamTranslator, *, provider: str) -> None:
        self._translator = translator
        self._decoder = SSEDecoder()
        self._provider = provider
        # The upstream body ended the way a stream should (``[DONE]`` or EOF), so its
        # connection may be reused; False when the relay stopped reading early.
        self.complete = False
        self.usage: dict[str, Any] | None = None
        self.error: str | None = None
        # An event other than message_start has been returned: the provider's answer (or an
        # error about it) began; the relay's time to first token waits for it.
        self.beyond_start = False
        self._plain = PlainText.for_keys(translator.reasoning_keys)
        # Text chunks the typed decode refused in a row. A provider whose every chunk carries
        # something more (usage in each, say) stops paying for the attempt after a few.
        self._misses = 0
        self._text_index = -1  # the block _text_head was made for
        self._text_head = b""

    @property
    def finished(self) -> bool:
        """No more events will come: stop reading."""
        return self._translator.finished

    def start(self) -> list[Event]:
        return self._noted(self._translator.start())

    def ping(self) -> list[Event]:
        return self._translator.ping()

    def feed(self, data: bytes) -> list[Event]:
        """Bytes of the upstream body, split anywhere."""
        if self.finished:
            return []
        try:
            sse_events = self._decoder.feed(data)
        except SSEEventTooLarge as exc:  # memory stays bounded: the stream ends here
            return self.fail("api_error", f"provider {self._provider!r} sent {exc}")
        return self._noted(self._events(sse_events))

    def feed_sse(self, data: bytes) -> bytes:
        """``feed``, its events encoded for the client; a plain text chunk the short way."""
        plain = self._plain
        translator = self._translator
        if plain is not None and translator.text_open:
            payload = self._decoder.lone_data(data)
            if payload is not None:
                text = plain.text(payload)
                if text is None:
                    self._misses += 1
                    if self._misses == _GIVE_UP:
                        self._plain = None
                elif not text:
                    self._misses = 0
                    return b""  # an empty piece: feed notes nothing and returns no event
                else:
                    self._misses = 0
                    index = translator.plain_text(text)
                    if index >= 0:
                        if index != self._text_index:
                            self._text_index = index
                            self._text_head = _DELTA_HEAD + str(index).encode() + _TEXT_HEAD
                        return self._text_head + _encode(text) + _DELTA_TAIL
        return encode_events(self.feed(data))

    def close(self) -> list[Event]:
        """The upstream body ended (EOF)."""
        if self.finished:
            return []
        events = self._events(self._decoder.close())
        self.complete = True
        # Cut off before [DONE]: an error unless a finish reason was seen (``finish``).
        events.extend(self._translator.finish(truncated=True))
        return self._noted(events)

    def fail(self, error_type: str, message: str) -> list[Event]:
        """The upstream connection broke mid-stream."""
        return self._noted(self._translator.fail(error_type, message))

    def _events(self, sse_events: list[SSEEvent]) -> list[Event]:
        events: list[Event] = []
        translator = self._translator
        for sse in sse_events:
            if not sse.data or sse.data.isspace():
                continue
            try:
                chunk = decode_chunk(sse.data)
            except ChunkDecodeError:
                events.extend(translator.fail(
                    "api_error", f"provider {self._provider!r} sent a malformed stream chunk"))
                break
            if chunk is None:  # [DONE]
                events.extend(translator.finish())
                self.complete = True
                break
            events.extend(translator.feed(chunk))
            if translator.finished:
                break
        return events

    def _noted(self, events: list[Event]) -> list[Event]:
        for name, data in events:
            if name == "message_start":
                continue
            self.beyond_start = True
            if name == "message_delta" and "usage" in data:
                self.usage = data["usage"]
            elif name == "error" and self.error is None:
                self.error = str(data.get("error", {}).get("message"))
        return events


__all__ = ["StreamPipeline"]
