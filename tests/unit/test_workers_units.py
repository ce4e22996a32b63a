"""`serve --workers N` without processes: the option and config value, /metrics totals from
several workers' snapshots (server/metrics_merge.py), and the access log's line-whole writes
for several writers."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from ccgate.cli.serve import resolve_workers, workers_arg
from ccgate.config.load import load_config
from ccgate.errors import ConfigError
from ccgate.server.access_log import ATOMIC_WRITE, AccessLog, AccessRecord, line_chunks
from ccgate.server.metrics import Metrics
from ccgate.server.metrics_merge import merge, snapshot
from ccgate.server.runtime import RESTART_ONLY


def test_workers_option_takes_a_count_or_auto() -> None:
    assert workers_arg("3") == 3 and workers_arg("auto") == "auto" and workers_arg(" AUTO ") == "auto"
    for bad in ("0", "-1", "257", "two", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="1 to 256, or auto"):
            workers_arg(bad)
    assert resolve_workers("auto") == (os.cpu_count() or 1) and resolve_workers(2) == 2


def test_server_workers_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    path.write_text("server:\n  workers: auto\n")
    assert load_config(str(path), {}).config.server.workers == "auto"
    path.write_text("server:\n  workers: 4\n")
    assert load_config(str(path), {}).config.server.workers == 4
    path.write_text("server:\n  workers: 0\n")
    with pytest.raises(ConfigError, match="workers must be from 1 to 256"):
        load_config(str(path), {})
    path.write_text("server:\n  workers: many\n")
    with pytest.raises(ConfigError, match="workers"):
        load_config(str(path), {})
    assert "server.workers" in RESTART_ONLY  # a reload cannot add processes


def _value(text: str, sample: str) -> float:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(sample + " ")]
    return float(line.rsplit(" ", 1)[1])


def test_a_scrape_shows_the_totals_of_every_worker() -> None:
    a, b = Metrics(), Metrics()
    a.request_done("messages", 200, "p", 0.01, 100)
    for _ in range(3):
        b.request_done("messages", 200, "p", 0.2, 50)
    b.request_done("messages", 429, "p", 0.2, 50)
    a.attempt_done("p", "ok", 0.01)  # a lock-free family (loop_metrics.py)
    b.attempt_done("p", "ok", 0.02)
    a.breaker_state.labels("p").set(0)
    b.breaker_state.labels("p").set(2)  # open in one worker: the total says open
    a.in_flight.set_function(lambda: 2)
    b.in_flight.set_function(lambda: 5)
    text = merge([snapshot(a.registry), snapshot(b.registry)]).decode()
    assert _value(text, 'ccgate_requests_total{provider="p",route="messages",status="200"}') == 4
    assert _value(text, 'ccgate_requests_total{provider="p",route="messages",status="429"}') == 1
    assert _value(text, 'ccgate_request_duration_seconds_count{route="messages"}') == 5
    assert _value(text, 'ccgate_request_duration_seconds_bucket{le="0.01",route="messages"}') == 1
    assert _value(text, 'ccgate_request_duration_seconds_bucket{le="+Inf",route="messages"}') == 5
    assert _value(text, 'ccgate_upstream_attempts_total{outcome="ok",provider="p"}') == 2
    assert _value(text, 'ccgate_breaker_state{provider="p"}') == 2
    assert _value(text, "ccgate_requests_in_flight") == 7
    python, version = _build(text)
    assert _value(text, f'ccgate_build_info{{python="{python}",version="{version}"}}') == 1
    assert _value(text, "ccgate_workers_reporting") == 2
    assert text.count("# TYPE ccgate_requests_total counter") == 1
    # A worker that did not answer (an empty snapshot) is not counted as reporting.
    assert _value(merge([snapshot(a.registry), b""]).decode(), "ccgate_workers_reporting") == 1


def _build(text: str) -> tuple[str, str]:
    line = next(ln for ln in text.splitlines() if ln.startswith("ccgate_build_info{"))
    python = line.split('python="', 1)[1].split('"', 1)[0]
    version = line.split('version="', 1)[1].split('"', 1)[0]
    return python, version


def test_line_chunks_keep_lines_whole_and_small() -> None:
    data = b"".join(b"x" * n + b"\n" for n in (10, 3000, 2000, 9000, 5, 4090, 1))
    chunks = list(line_chunks(data, 4096))
    assert b"".join(chunks) == data
    assert all(c.endswith(b"\n") for c in chunks)
    assert all(len(c) <= 4096 or c.count(b"\n") == 1 for c in chunks)  # only a long line alone


def test_several_writers_append_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logs = [AccessLog(True, str(path)) for _ in range(2)]
    for log in logs:
        log.shared_writers = True
    for n in range(400):  # outside an event loop every write flushes: many small writes
        logs[n % 2].write(AccessRecord(ts="t", request_id=f"req_{n}", method="POST", path="/v1/messages",
                                       status=200, latency_ms=1.0, bytes_in=1, bytes_out=2, worker=n % 2))
    for log in logs:
        log.flush()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["request_id"] for r in records) == sorted(f"req_{n}" for n in range(400))
    assert ATOMIC_WRITE >= 512
