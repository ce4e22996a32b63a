"""One structured JSON line per request. Only fields listed here are ever logged, so
headers, bodies and credentials cannot leak into the log by accident.

Lines are buffered and written at most every ``FLUSH_SECONDS`` (or at ``FLUSH_BYTES``), the
way nginx's ``access_log ... buffer= flush=`` does: a write and flush per request was a
syscall per request, a measurable share of the gateway's CPU under load. A clean shutdown
writes everything; a killed process loses at most the last ``FLUSH_SECONDS`` of lines.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
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


_encoder = msgspec.json.Encoder()


FLUSH_SECONDS = 0.2
FLUSH_BYTES = 64 * 1024


class AccessLog:
    def __init__(self, enabled: bool, destination: str) -> None:
        self.enabled = enabled
        self._stream: IO[bytes] = (
            sys.stderr.buffer if destination == "stderr" else open(destination, "ab")  # noqa: SIM115
        )
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None

    def write(self, record: AccessRecord) -> None:
        if not self.enabled:
            return
        self._buffer += _encoder.encode(record)
        self._buffer += b"\n"
        if len(self._buffer) >= FLUSH_BYTES:
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
            data, self._buffer = bytes(self._buffer), bytearray()
            self._stream.write(data)
            self._stream.flush()


_second = (-1, "")


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds; the formatted second is reused within that second."""
    global _second
    t = time.time()
    whole = int(t)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int((t - whole) * 1000):03d}Z"
