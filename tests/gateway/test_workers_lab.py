"""``ccgate serve --workers 2`` as a real subprocess (supervisor + 2 spawned workers + the hub)
in front of the scripted upstream (tests/lab/scripted.py), on one SQLite store.

Both workers answer (the access log's ``worker`` field); a key with rpm 10 admits exactly 10 of
40 concurrent requests across workers; a key revoked through one worker's admin API is refused
by every worker at once; /metrics shows the totals of both; every usage row lands once;
SIGHUP reaches both workers; SIGTERM lets a stream finish; a SIGKILLed worker is replaced.
Every new connection is a fresh TCP connection, so the kernel spreads them over the workers.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ccgate.server.control import request_reload
from tests.gateway.harness import Gateway
from tests.lab.procs import wait_for
from tests.lab.scripted import AnthropicText, ScriptedUpstream

pytestmark = [pytest.mark.lab, pytest.mark.slow]

UPSTREAM_KEY = "sk-ant-lab-workers-upstream-000000000001"
ADMIN_KEY = "ccgate-admin-key-for-workers-0123456789"
VERSION = {"anthropic-version": "2023-06-01"}
MSG = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def workers_gateway(tmp: Path, up: ScriptedUpstream, *args: str) -> Gateway:
    gw = Gateway(tmp, config(up), env={"WORKERS_ADMIN": ADMIN_KEY}, args=["--workers", "2", *args])
    gw.start_timeout = 60.0  # three interpreters importing at once on a busy 2-core machine
    return gw


def config(up: ScriptedUpstream, **server: Any) -> dict[str, Any]:
    return {"providers": [{"name": "primary", "kind": "anthropic", "base_url": up.http_url,
                           "api_keys": [UPSTREAM_KEY]}],
            "server": {"admin": {"key": "env:WORKERS_ADMIN"}, **server}}


@pytest.fixture
def workers(tmp_path: Path, scripted_upstream: Callable[..., ScriptedUpstream]) -> Iterator[Gateway]:
    up = scripted_upstream()
    with workers_gateway(tmp_path / "gw", up) as gw:
        wait_for("both workers ready", lambda: len(worker_pids(gw)) == 2 and _both_answer(gw), 60)
        yield gw
    assert gw.proc is not None and gw.proc.returncode == 0, gw.log


def worker_pids(gw: Gateway) -> list[int]:
    """The supervisor's worker processes (Linux /proc; not multiprocessing's resource tracker)."""
    assert gw.proc is not None
    path = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children")
    try:
        children = [int(p) for p in path.read_text().split()]
    except OSError:
        return []
    return [pid for pid in children if b"spawn_main" in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _both_answer(gw: Gateway) -> bool:
    seen = {httpx.get(gw.url + "/readyz", timeout=5).json().get("worker") for _ in range(30)}
    return seen == {0, 1}


def post(gw: Gateway, key: str | None = None, body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {**VERSION, **({"x-api-key": key} if key else {})}
    return httpx.post(gw.url + "/v1/messages", json=body or MSG, headers=headers, timeout=30)


def admin(gw: Gateway, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.request(method, gw.url + "/admin" + path, json=body, timeout=10,
                         headers={"authorization": f"Bearer {ADMIN_KEY}"})


def access_lines(gw: Gateway, path: str = "/v1/messages") -> list[dict[str, Any]]:
    return [r for r in gw.access_records() if r.get("path") == path]


def seconds(ts: str) -> float:
    """An access-log timestamp (``2026-01-01T00:00:00.123Z``) as Unix seconds."""
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        named = line.startswith(name + "{") or line.startswith(name + " ")
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_both_workers_answer_metrics_total_and_usage_rows_land_once(workers: Gateway) -> None:
    gw = workers
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(gw).status_code, range(40)))
    assert answers == [200] * 40
    lines = wait_for("40 access lines", lambda: len(access_lines(gw)) >= 40 and access_lines(gw))
    assert {line["worker"] for line in lines} == {0, 1}, "one worker answered everything"
    # A scrape lands on one worker (a fresh connection each: either) and shows both's totals.
    for _ in range(10):
        text = httpx.get(gw.url + "/metrics", timeout=10).text
        assert metric(text, "ccgate_requests_total", route="messages", status="200") == 40
        assert metric(text, "ccgate_workers_reporting") == 2
    gw.stop()
    assert gw.proc is not None and gw.proc.returncode == 0, gw.log
    with sqlite3.connect(gw.db_path) as db:
        ids = [r[0] for r in db.execute("SELECT request_id FROM usage")]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert {line["request_id"] for line in lines} == set(ids)
    assert gw.log.count("ccgate listening on") == 1 and gw.log.count("console:") == 1


def test_rpm_is_exact_across_workers_and_revocation_reaches_every_worker(workers: Gateway) -> None:
    gw = workers
    created = admin(gw, "POST", "/keys", {"name": "limited", "rpm": 10})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(lambda _: post(gw, secret).status_code, range(40)))
    assert codes.count(200) == 10 and codes.count(429) == 30, codes
    # The access log reaches us through the workers' stderr: wait for every line.
    lines = wait_for("40 access lines", lambda: len(access_lines(gw)) >= 40 and access_lines(gw))
    assert {line["worker"] for line in lines if line["status"] == 429} == {0, 1}

    other = admin(gw, "POST", "/keys", {"name": "victim"}).json()["secret"]
    assert post(gw, other).status_code == 200
    before = len(wait_for("41 access lines", lambda: len(access_lines(gw)) >= 41 and access_lines(gw)))
    assert admin(gw, "POST", "/keys/victim/revoke").status_code == 200
    with ThreadPoolExecutor(10) as pool:  # right away, on fresh connections, to both workers
        codes = list(pool.map(lambda _: post(gw, other).status_code, range(20)))
    assert codes == [401] * 20
    after = wait_for("20 more lines", lambda: len(access_lines(gw)) >= before + 20 and access_lines(gw))[before:]
    assert {line["worker"] for line in after} == {0, 1}
    # The worker that did not revoke refused the key well inside the store poll's 1 s: the event.
    (revoke,) = access_lines(gw, "/admin/keys/victim/revoke")
    soon = [line for line in after if line["worker"] != revoke["worker"]
            and seconds(line["ts"]) - seconds(revoke["ts"]) < 0.9]
    assert soon, (revoke, after)


def test_sighup_and_admin_reload_reach_every_worker(workers: Gateway) -> None:
    """`ccgate gateway reload`'s way (server.control: the pidfile's pid gets SIGHUP): the pid is
    the supervisor's, which sends it on to both workers; the admin API's reload on one worker
    makes the other reload too."""
    gw = workers
    assert gw.proc is not None
    said = request_reload("127.0.0.1", gw.port)
    assert said.startswith(f"sent SIGHUP to ccgate (pid {gw.proc.pid})"), said
    wait_for("both workers' reloads", lambda: gw.log.count("config reloaded (SIGHUP)") == 2)
    assert len(worker_pids(gw)) == 2  # reloaded, not restarted
    answer = admin(gw, "POST", "/config/reload")
    assert answer.status_code == 200 and answer.json()["reloaded"], answer.text
    wait_for("the other worker's reload", lambda: "config reloaded (another worker's admin API)" in gw.log)
    assert gw.log.count("config reloaded (another worker's admin API)") == 1


def test_sigterm_drains_a_stream_then_everything_exits(
        tmp_path: Path, scripted_upstream: Callable[..., ScriptedUpstream]) -> None:
    up = scripted_upstream(AnthropicText(text="one two three four five six", chunks=6, delay=0.4))
    with workers_gateway(tmp_path / "gw", up) as gw:
        body: list[bytes] = []
        first = threading.Event()

        def stream() -> None:
            with httpx.stream("POST", gw.url + "/v1/messages", json={**MSG, "stream": True},
                              headers=VERSION, timeout=30) as r:
                for chunk in r.iter_bytes():
                    body.append(chunk)
                    first.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert first.wait(10)
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        reader.join(20)
        assert gw.proc.wait(30) == 0, gw.log
        text = b"".join(body).decode()
        assert "message_stop" in text and text.count("event: content_block_delta") == 6, text
        with pytest.raises(httpx.ConnectError):
            httpx.get(gw.url + "/healthz", timeout=2)
        assert worker_pids(gw) == []


def test_a_killed_worker_is_replaced_and_serving_continues(workers: Gateway) -> None:
    """SIGKILL one worker: the supervisor starts another, serving goes on, and every usage row
    committed before the kill (the writer commits within ~0.2 s) is there exactly once."""
    gw = workers
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda _: post(gw).status_code, range(20))) == [200] * 20
    wait_for("20 rows committed", lambda: usage_ids(gw) and len(usage_ids(gw)) == 20)
    victim = min(worker_pids(gw))  # the first started: worker 0, the one that speaks
    os.kill(victim, signal.SIGKILL)
    wait_for("a replacement", lambda: len(worker_pids(gw)) == 2 and victim not in worker_pids(gw), 30)
    wait_for("the supervisor's line", lambda: "exited unexpectedly (killed by SIGKILL); restarting it" in gw.log)
    wait_for("both workers answer again", lambda: _both_answer(gw), 60)
    assert [post(gw).status_code for _ in range(10)] == [200] * 10
    assert gw.log.count("ccgate listening on") == 1  # a restarted worker 0 says nothing again
    gw.stop()
    ids = usage_ids(gw)
    assert len(ids) == 30 and len(set(ids)) == 30


def usage_ids(gw: Gateway) -> list[str]:
    try:
        with sqlite3.connect(gw.db_path, timeout=5) as db:
            return [r[0] for r in db.execute("SELECT request_id FROM usage")]
    except sqlite3.OperationalError:  # not created yet
        return []


def test_a_second_supervisor_on_the_port_is_refused(workers: Gateway, tmp_path: Path) -> None:
    gw = workers
    second = Gateway(tmp_path / "second", yaml.safe_load(gw.config_path.read_text()),
                     env={"WORKERS_ADMIN": ADMIN_KEY}, args=["--workers", "2", "--port", str(gw.port)])
    with pytest.raises(RuntimeError, match="port is in use"):
        second.start()


def test_a_config_the_workers_refuse_stops_the_server_with_status_2(
        tmp_path: Path, scripted_upstream: Callable[..., ScriptedUpstream]) -> None:
    """Refused by every worker (an admin key too short), not restarted in a loop: status 2,
    the reason said once, no worker left behind."""
    up = scripted_upstream()
    gw = Gateway(tmp_path / "gw", config(up), env={"WORKERS_ADMIN": "short"}, args=["--workers", "2"])
    with pytest.raises(RuntimeError, match="ccgate exited 2"):
        gw.start_timeout = 60.0
        gw.start()
    assert gw.log.count("the admin key is 5 characters") == 1, gw.log
    assert "restarting" not in gw.log
