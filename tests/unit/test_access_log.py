"""AccessLog: buffered on the event loop, flushed by a timer, at size, and on demand."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from ccgate.server import access_log
from ccgate.server.access_log import AccessLog, AccessRecord, utc_now


def record(n: int) -> AccessRecord:
    return AccessRecord(ts=utc_now(), request_id=f"req_{n}", method="POST", path="/v1/messages",
                        status=200, latency_ms=1.0, bytes_in=1, bytes_out=2)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_lines_are_buffered_then_written_by_the_timer(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(access_log, "FLUSH_SECONDS", 0.01)
    path = tmp_path / "access.log"
    log = AccessLog(True, str(path))
    log.write(record(1))
    log.write(record(2))
    assert path.read_text() == ""  # not one write per request
    for _ in range(500):  # a bound for a hung test, not a speed assertion
        await asyncio.sleep(0.01)
        if path.read_text():
            break
    assert [r["request_id"] for r in lines(path)] == ["req_1", "req_2"]


async def test_flush_writes_at_once_and_a_full_buffer_flushes_itself(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "access.log"
    log = AccessLog(True, str(path))
    log.write(record(1))
    log.flush()  # what the lifespan shutdown calls
    assert [r["request_id"] for r in lines(path)] == ["req_1"]
    monkeypatch.setattr(access_log, "FLUSH_BYTES", 1)
    log.write(record(2))
    assert [r["request_id"] for r in lines(path)] == ["req_1", "req_2"]


def test_off_the_event_loop_each_line_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(True, str(path))
    log.write(record(1))
    assert len(lines(path)) == 1
    AccessLog(False, str(path)).write(record(2))
    assert len(lines(path)) == 1


def test_utc_now_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now())
