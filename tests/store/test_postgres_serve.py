"""A real ``ccgate serve`` on a real PostgreSQL (store.url): keys, usage with cost, the CLI,
PostgreSQL stopped and started mid-traffic, and SIGKILL of the gateway mid-traffic."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.harness import Gateway, clean_env
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic
from tests.lab.postgres import PASSWORD, PostgresServer
from tests.lab.procs import wait_for

pytestmark = pytest.mark.lab

ADMIN_KEY = "pg-lab-admin-key-0123456789abcdefghijkl"
MODEL = "claude-opus-5"  # priced in store/prices.json: usage rows get a cost
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def upstream() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:  # plain HTTP on loopback
        yield fake


def config(upstream: FakeAnthropic, pg: PostgresServer, database: str, **store: Any) -> dict[str, Any]:
    return {
        "server": {"admin": {"key": ADMIN_KEY}},
        "providers": [{"name": "anthropic", "kind": "anthropic", "base_url": upstream.http_url,
                       "api_keys": [LAB_API_KEY]}],
        # The password comes from a secret reference, not the URL.
        "store": {"url": pg.url(database, password=False), "password": "env:CCGATE_TEST_PG_PASSWORD",
                  "pool": {"connect_timeout": 2, "statement_timeout": 2}, **store},
    }


_STARTED: list[Gateway] = []


@pytest.fixture(autouse=True)
def _stop_gateways() -> Iterator[None]:
    """Every gateway a test started is stopped at its end, passed or failed."""
    yield
    while _STARTED:
        _STARTED.pop().stop()


def start(tmp: Path, cfg: dict[str, Any]) -> Gateway:
    # CCGATE_DB empty: the harness would point it at a file; here store.url decides.
    gw = Gateway(tmp, cfg, {"CCGATE_DB": "", "CCGATE_TEST_PG_PASSWORD": PASSWORD})
    _STARTED.append(gw)
    return gw.start()


def ask(gw: Gateway, secret: str, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(gw.url + "/v1/messages", timeout=timeout, headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
                      json={"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})


def create_key(gw: Gateway, name: str) -> tuple[str, str]:
    reply = httpx.post(gw.url + "/admin/keys", headers=ADMIN, json={"name": name}, timeout=10)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    return body["key"]["id"], body["secret"]


def usage_rows(url: str) -> list[tuple[str, str, float | None]]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        return [(str(r[0]), str(r[1]), r[2]) for r in conn.execute(
            "SELECT request_id, key_id, cost_usd FROM usage ORDER BY id").fetchall()]


def metric(gw: Gateway, name: str) -> float:
    text = httpx.get(gw.url + "/metrics", headers=ADMIN, timeout=5).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not exported"
    return float(found.group(1))


def ccgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccgate", *args], capture_output=True, text=True, timeout=60,
                          env=clean_env(env))


def test_serve_on_postgres_keys_usage_cost_and_cli(
    tmp_path: Path, postgres_server: PostgresServer, upstream: FakeAnthropic,
) -> None:
    database = postgres_server.create_database("serve")
    url = postgres_server.url(database)
    with start(tmp_path / "gw", config(upstream, postgres_server, database)) as gw:
        key_id, secret = create_key(gw, "alice")
        for _ in range(5):
            assert ask(gw, secret).status_code == 200
        assert ask(gw, "ccg_" + "x" * 43).status_code == 401
        wait_for("5 usage rows in PostgreSQL", lambda: len(usage_rows(url)) >= 5, 10)
        rows = usage_rows(url)
        assert len(rows) == 5 and {r[1] for r in rows} == {key_id}
        assert all(cost is not None and cost > 0 for _, _, cost in rows)  # priced in the writer thread
        ready = httpx.get(gw.url + "/readyz", headers=ADMIN, timeout=5).json()
        assert ready["store"]["backend"] == "postgresql" and ready["store"]["reachable"] is True
        assert "store" not in httpx.get(gw.url + "/readyz", timeout=5).json()  # detail for the admin only

        # The CLI against the same database: the password in the URL, or from the config.
        made = ccgate("keys", "create", "--name", "bob", "--json", "--db", url)
        assert made.returncode == 0, made.stderr
        bob_secret = json.loads(made.stdout)["secret"]
        env = {"CCGATE_TEST_PG_PASSWORD": PASSWORD}
        with ThreadPoolExecutor(4) as pool:  # independent read-only commands, run side by side
            listing_f = pool.submit(ccgate, "keys", "list", "--json", "--db", url)
            usage_f = pool.submit(ccgate, "usage", "--json", "--db", url)
            check_f = pool.submit(ccgate, "config", "check", "--config", str(gw.config_path), env=env)
            by_config_f = pool.submit(ccgate, "keys", "list", "--config", str(gw.config_path), env=env)
        listing, usage, check, by_config = (f.result() for f in (listing_f, usage_f, check_f, by_config_f))
        assert listing.returncode == 0, listing.stderr
        assert [k["name"] for k in json.loads(listing.stdout)] == ["alice", "bob"]
        wait_for("the CLI's key to reach the gateway", lambda: ask(gw, bob_secret).status_code == 200, 5)
        assert usage.returncode == 0, usage.stderr
        report = json.dumps(json.loads(usage.stdout))
        assert key_id in report and "cost" in report
        assert check.returncode == 0 and "store: postgresql postgresql://" in check.stdout, check.stderr
        assert by_config.returncode == 0 and "alice" in by_config.stdout and "bob" in by_config.stdout
        log = gw.log
    for text in (log, listing.stdout, listing.stderr, made.stderr, usage.stdout, usage.stderr, check.stdout,
                 by_config.stdout, by_config.stderr,
                 json.dumps(ready)):
        assert PASSWORD not in text


def test_postgres_down_serves_known_keys_buffers_usage_and_catches_up(
    tmp_path: Path, postgres_factory: Callable[[], PostgresServer], upstream: FakeAnthropic,
) -> None:
    pg = postgres_factory()
    database = pg.create_database("down")
    url = pg.url(database)
    with start(tmp_path / "gw", config(upstream, pg, database)) as gw:
        key_id, secret = create_key(gw, "alice")
        for _ in range(3):
            assert ask(gw, secret).status_code == 200
        wait_for("the first rows", lambda: len(usage_rows(url)) == 3, 10)

        pg.stop()
        answered = [ask(gw, secret).status_code for _ in range(10)]
        assert answered == [200] * 10  # known key, served from the cache; never a 500
        wait_for("rows held while down", lambda: metric(gw, "ccgate_usage_rows_buffered") >= 10, 10)
        assert metric(gw, 'ccgate_store_up{backend="postgresql"}') == 0
        refused = httpx.post(gw.url + "/admin/keys", headers=ADMIN, json={"name": "bob"}, timeout=15)
        assert refused.status_code == 503, refused.text
        assert refused.json()["type"] == "error" and "unreachable" in refused.json()["error"]["message"]
        ready = httpx.get(gw.url + "/readyz", headers=ADMIN, timeout=5)
        assert ready.status_code == 200 and ready.json()["store"]["reachable"] is False
        cli = ccgate("keys", "list", "--db", url)
        assert cli.returncode == 3 and "cannot reach the PostgreSQL store" in cli.stderr
        assert "Traceback" not in cli.stderr and PASSWORD not in cli.stderr

        pg.start()  # same data directory, same port
        wait_for("the held rows to be written", lambda: metric(gw, "ccgate_usage_rows_buffered") == 0, 20)
        rows = usage_rows(url)
        request_ids = [r[0] for r in rows]
        assert len(rows) == 13 and len(set(request_ids)) == 13  # every row once, none twice
        assert metric(gw, 'ccgate_usage_rows_dropped_total{reason="buffer_full"}') == 0
        assert create_key(gw, "bob")[0] != key_id  # admin writes work again
        log = gw.log
    assert log.count("the usage store is unreachable") == 1  # one line per episode, not per row
    assert "reachable again" in log and PASSWORD not in log and "Traceback" not in log


def test_sigkill_mid_traffic_keeps_committed_rows_once(
    tmp_path: Path, postgres_server: PostgresServer, upstream: FakeAnthropic,
) -> None:
    database = postgres_server.create_database("kill")
    url = postgres_server.url(database)
    cfg = config(upstream, postgres_server, database)
    gw = start(tmp_path / "gw", cfg)
    keys = [create_key(gw, f"dev{i}") for i in range(3)]
    stop = threading.Event()
    errors: list[int] = []

    def traffic(secret: str) -> None:
        while not stop.is_set():
            try:
                status = ask(gw, secret, timeout=5).status_code
            except httpx.HTTPError:
                return  # the gateway died under us
            if status != 200:
                errors.append(status)

    threads = [threading.Thread(target=traffic, args=(secret,)) for _, secret in keys for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for("committed usage under traffic", lambda: len(usage_rows(url)) >= 40, 20)
        committed = {r[0] for r in usage_rows(url)}  # committed before the kill
        assert gw.proc is not None
        gw.proc.kill()
        gw.proc.wait(5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors
    after = [r[0] for r in usage_rows(url)]
    assert committed <= set(after) and len(after) == len(set(after))

    # A new gateway on the same database: every key made before the kill authenticates.
    with start(tmp_path / "gw2", cfg) as again:
        for _, secret in keys:
            assert ask(again, secret).status_code == 200
