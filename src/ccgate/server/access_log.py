"""One structured JSON line per request. Only fields listed here are ever logged, so
headers, bodies and credentials cannot leak into the log by accident."""

from __future__ import annotations

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


_encoder = msgspec.json.Encoder()


class AccessLog:
    def __init__(self, enabled: bool, destination: str) -> None:
        self.enabled = enabled
        self._stream: IO[bytes] = (
            sys.stderr.buffer if destination == "stderr" else open(destination, "ab")  # noqa: SIM115
        )

    def write(self, record: AccessRecord) -> None:
        if self.enabled:
            self._stream.write(_encoder.encode(record) + b"\n")
            self._stream.flush()


def utc_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
