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
"""

from __future__ import annotations

from typing import Any

from ccgate.translate.stream import Event, StreamTranslator
from ccgate.wire.openai import ChunkDecodeError, decode_chunk
from ccgate.wire.sse import SSEDecoder, SSEEvent, SSEEventTooLarge


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
            if name == "message_delta" and "usage" in data:
                self.usage = data["usage"]
            elif name == "error" and self.error is None:
                self.error = str(data.get("error", {}).get("message"))
        return events


__all__ = ["StreamPipeline"]
