"""One structured JSON line per request. Only fields listed here are ever logged, so
headers, bodies and credentials cannot leak into the log by accident.

Lines are buffered and written at most every ``FLUSH_SECONDS`` (or at ``FLUSH_BYTES``), the
way nginx's ``access_log ... buffer= flush=`` does: a write and flush per request was a
syscall per request, a measurable share of the gateway's CPU under load. A clean shutdown
writes everything; a killed process loses at most the last ``FLUSH_SECONDS`` of lines.

Several writers (``serve --workers N``: every worker writes the same stderr or file):
``shared_writers`` makes each ``write(2)`` whole lines of at most ``ATOMIC_WRITE`` bytes, so
lines never interleave: a pipe writes up to ``PIPE_BUF`` bytes atomically (POSIX), and the
file is opened in append mode, where each write lands whole at the end. A single line longer
than that is written alone (on a pipe it could then interleave; access lines are ~0.5 KiB).
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import IO

import msgspec

logger = logging.getLogger("ccgate.access")


class AccessRecord(msgspec.Struct, omit_defaults=True):
    ts: str
    request_id: str
    method: str
    path: str
    status: int
    latency_ms: float
    bytes_in: int
    bytes_out: int
    client: str | None = None
    model: str | None = None
    upstream: str | None = None
    stream: bool | None = None
    # Every upstream attempt when there was more than one ("anthropic#0 529, deepseek#0 200").
    attempts: str | None = None
    error: str | None = None
    # Tokens of the answer (Anthropic's usage), when it was read.
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    # Claude Code's session id (x-claude-code-session-id) and the provider's own request id.
    session_id: str | None = None
    upstream_request_id: str | None = None
    # Which worker of `serve --workers N` answered (absent with one process).
    worker: int | None = None


_encoder = msgspec.json.Encoder()


FLUSH_SECONDS = 0.2
FLUSH_BYTES = 64 * 1024
ATOMIC_WRITE = getattr(select, "PIPE_BUF", 4096)  # Linux 4096, macOS 512


class AccessLog:
    def __init__(self, enabled: bool, destination: str) -> None:
        self.enabled = enabled
        self._stream: IO[bytes] = (
            sys.stderr.buffer if destination == "stderr" else open(destination, "ab")  # noqa: SIM115
        )
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self.shared_writers = False  # set for a worker of `serve --workers N`

    def write(self, record: AccessRecord) -> None:
        if not self.enabled:
            return
        buffer = self._buffer
        _encoder.encode_into(record, buffer, -1)  # straight into the buffer: no bytes object per line
        buffer += b"\n"
        if len(buffer) >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on an event loop: nothing would flush later
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            data, self._buffer = self._buffer, bytearray()  # written as it is: no copy
            if self.shared_writers:
                self._write_lines(data)
            else:
                self._stream.write(data)
                self._stream.flush()

    def _write_lines(self, data: bytearray) -> None:
        self._stream.flush()  # nothing of ours may sit in the buffered layer
        fd = self._stream.fileno()
        for chunk in line_chunks(data, ATOMIC_WRITE):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]


def line_chunks(data: bytes | bytearray, limit: int) -> Iterator[bytes | bytearray]:
    """``data`` (whole lines) cut at line ends into pieces of at most ``limit`` bytes; a line
    longer than ``limit`` is a piece of its own."""
    start, size = 0, len(data)
    while start < size:
        end = start + limit
        if end >= size:
            yield data[start:]
            return
        cut = data.rfind(b"\n", start, end)
        if cut < start:  # one long line
            cut = data.find(b"\n", end)
            if cut < 0:
                yield data[start:]
                return
        yield data[start:cut + 1]
        start = cut + 1


_second = (-1, "")
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))  # the end of every timestamp, made once


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds; the formatted second is reused within that second."""
    global _second
    t = time.time()
    whole = int(t)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return _second[1] + _MILLIS[int((t - whole) * 1000)]
