"""The process's log lines: plain text, or one JSON object per line (``log.format: json``).

JSON lines carry the same field names as the access log where they mean the same thing:
``ts`` (ISO 8601 UTC, milliseconds), ``level`` (``debug`` ... ``critical``), ``logger``,
``message``, and ``exception`` (the formatted traceback) when there is one. uvicorn's own
loggers propagate here, so its lines come out the same way.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Literal

import msgspec

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_encode = msgspec.json.Encoder().encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line).decode()


def configure(level: str, fmt: LogFormat, stream: IO[str] | None = None) -> None:
    """The root logger's one handler (replacing any), at ``level``, in ``fmt``."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python warnings become log lines (logger py.warnings) too


__all__ = ["JsonFormatter", "LogFormat", "configure"]
