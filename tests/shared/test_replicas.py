"""Three ``ccgate serve`` replicas behind a real HAProxy (round robin, health-checked on
/readyz as docs/team.md shows), sharing one Redis and one store, in front of the scripted
upstream. The issue's cases: exact rpm across replicas, a revocation seen by the others within
a second, an upstream key refused with 401 by one replica not used by the others, SIGKILL of
a replica mid-traffic, and Redis stopped mid-traffic (fail open, no 500, then recovery).

The store is one fixture (``replica_store``): a database of its own on the session's real
PostgreSQL (tests/lab/postgres.py), as a team's replicas would share it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccgate.store import RequestFilter, open_store
from tests.gateway.harness import Gateway
from tests.lab.postgres import PostgresServer
from tests.lab.procs import free_port, tail
from tests.lab.redis_server import RedisServer, haproxy_binary, write_haproxy_config
from tests.lab.scripted import AnthropicText, Callback, ScriptedRequest, ScriptedUpstream, Status

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ADMIN = "replicas-admin-key-0123456789abcdef"
GOOD = "sk-ant-good-provider-key-0123456789"
BAD = "sk-ant-refused-provider-key-0123456789"
MSG = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
ADMIN_HEADERS = {"x-api-key": ADMIN}


@dataclass
class StoreUnderTest:
    config: dict[str, Any]  # the replicas' ``store:`` section
    location: str  # what ``ccgate.store.open_store`` opens, for the test's own reads


@pytest.fixture(scope="module")
def replica_store(postgres_server: PostgresServer) -> StoreUnderTest:
    """The one store all replicas of this module share: a fresh PostgreSQL database."""
    url = postgres_server.url(postgres_server.create_database())
    return StoreUnderTest({"url": url}, url)


def answer(request: ScriptedRequest) -> Any:
    """The upstream refuses BAD with 401 on messages, answers everything else."""
    if request.path.startswith("/v1/messages") and request.header("x-api-key") == BAD:
        return Status.anthropic_error(401, "authentication_error", "invalid x-api-key")
    if request.path.startswith("/v1/messages"):
        return AnthropicText("hello from upstream")
    return Status(200, {"data": []})


class Cluster:
    """Redis, the scripted upstream, three replicas and HAProxy, started together."""

    def __init__(self, tmp: Path, store: StoreUnderTest, keys: list[str]) -> None:
        self.redis = RedisServer()
        self.upstream = ScriptedUpstream(default=Callback(answer)).start()  # its port goes in the config
        self.store = store
        config = {
            "providers": [{"name": "anthropic", "kind": "anthropic", "base_url": self.upstream.http_url,
                           "api_keys": [f"env:PK{i}" for i in range(len(keys))]}],
            "store": {**store.config, "request_log": {"enabled": True}},
            "server": {"admin": {"key": "env:ADMIN"}},
            # A generous timeout: exactness is what is tested here, and this machine may be busy
            # enough to stall a replica's loop past the 0.25 s default (which then fails open).
            "redis": {"url": "env:REDIS_URL", "timeout": 2.0},
        }
        env = {"ADMIN": ADMIN, "REDIS_URL": self.redis.url, "CCGATE_DB": "",  # the store section decides
               **{f"PK{i}": key for i, key in enumerate(keys)}}
        self.replicas = [Gateway(tmp / f"r{i}", config, env=env) for i in range(3)]
        self.port = free_port()
        self.haproxy_config = tmp / "haproxy.cfg"
        write_haproxy_config(self.haproxy_config, self.port, [r.port for r in self.replicas])
        self.haproxy_log = tmp / "haproxy.log"
        self.haproxy: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Cluster:
        self.redis.start()
        for replica in self.replicas:  # all three boot at once; the machine may be busy
            self.launch(replica)
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(self.wait_healthy, self.replicas))
        with self.haproxy_log.open("wb") as log:
            self.haproxy = subprocess.Popen([haproxy_binary(), "-db", "-f", str(self.haproxy_config)],
                                            stdout=log, stderr=log)
        self.wait_serving({"r0", "r1", "r2"})
        return self

    @staticmethod
    def launch(replica: Gateway) -> None:
        with replica.stderr_path.open("wb") as err:
            replica.proc = subprocess.Popen(
                [sys.executable, "-m", "ccgate", "serve", "--config", str(replica.config_path)],
                stdout=err, stderr=err, env=replica.env, cwd=replica.config_path.parent)

    @staticmethod
    def wait_healthy(replica: Gateway, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert replica.proc is not None and replica.proc.poll() is None, replica.log
            try:
                if httpx.get(replica.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"replica not healthy:\n{replica.log}"
            time.sleep(0.1)

    def wait_serving(self, servers: set[str], timeout: float = 15.0) -> None:
        """Until HAProxy has sent requests to each of ``servers`` (its health checks passed)."""
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while not servers <= seen:
            assert time.monotonic() < deadline, f"haproxy serves only {seen}: {tail(self.haproxy_log)}"
            try:
                reply = httpx.get(self.url + "/healthz", timeout=2)
                seen.add(reply.headers.get("x-replica", "?"))
            except httpx.HTTPError:
                time.sleep(0.1)

    def stop(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(5)
        for replica in self.replicas:
            replica.stop()
        self.upstream.stop()
        self.redis.close()

    def create_key(self, name: str, *, via: str | None = None, **limits: int) -> tuple[str, str]:
        reply = httpx.post((via or self.url) + "/admin/keys", json={"name": name, **limits}, headers=ADMIN_HEADERS,
                           timeout=10)
        assert reply.status_code == 201, reply.text
        body = reply.json()
        return body["key"]["id"], body["secret"]

    def wait_known(self, secret: str, timeout: float = 10.0) -> None:
        """Until every replica accepts ``secret`` (GET /v1/models: authenticated, not limited)."""
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            while httpx.get(replica.url + "/v1/models", headers={"x-api-key": secret}, timeout=5).status_code != 200:
                assert time.monotonic() < deadline, replica.log
                time.sleep(0.05)

    def rows(self) -> list[Any]:
        store = open_store(self.store.location)
        try:
            return store.recent_requests(RequestFilter(limit=100_000))
        finally:
            store.close()


def start_cluster(tmp: Path, store: StoreUnderTest, keys: list[str]) -> Cluster:
    for tool in ("redis-server", "haproxy"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            message = f"{tool} not installed: run scripts/install-test-deps"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    cluster = Cluster(tmp, store, keys)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory, replica_store: StoreUnderTest) -> Iterator[Cluster]:
    """For the cases that leave the cluster as it was: two provider keys, BAD first."""
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"), replica_store, [BAD, GOOD])
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(tmp_path: Path, replica_store: StoreUnderTest) -> Iterator[Cluster]:
    """A cluster of its own, for the cases that kill or stop a part."""
    cluster = start_cluster(tmp_path, replica_store, [GOOD])
    yield cluster
    cluster.stop()


async def post_many(url: str, secret: str, n: int, *, session: str = "s") -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return list(await asyncio.gather(*(
            client.post(url + "/v1/messages", json=MSG, headers={
                "x-api-key": secret, "x-claude-code-session-id": f"{session}-{i}"})
            for i in range(n))))


def test_an_upstream_key_refused_with_401_on_one_replica_is_not_used_by_the_others(shared_cluster: Cluster) -> None:
    """First in the module: the first replica has not used its provider keys yet."""
    cluster = shared_cluster
    first, *others = cluster.replicas
    # Created on the first replica, so that its first use of the provider keys is this request
    # (round robin: BAD first); the others learn of the key through Redis, before the 401.
    _, secret = cluster.create_key("team", via=first.url)
    reply = httpx.post(first.url + "/v1/messages", json=MSG, headers={"x-api-key": secret}, timeout=10)
    assert reply.status_code == 200  # BAD refused, GOOD answered (the key fails over)
    for replica in others:  # told through Redis: /readyz (admin) shows the key disabled there
        deadline = time.monotonic() + 5
        while True:
            detail = httpx.get(replica.url + "/readyz", headers=ADMIN_HEADERS, timeout=10).json()
            if detail["providers"]["anthropic"]["keys"][0]["state"] == "disabled":
                break
            assert time.monotonic() < deadline, detail
            time.sleep(0.05)
    replies = asyncio.run(post_many(cluster.url, secret, 12))
    assert [r.status_code for r in replies] == [200] * 12
    sent = [r.header("x-api-key") for r in cluster.upstream.requests if r.path.startswith("/v1/messages")]
    assert sent.count(BAD) == 1  # only the one replica that learned it ever sent it
    assert sent.count(GOOD) == 13


def test_rpm_10_with_40_concurrent_requests_over_three_replicas_admits_exactly_10(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    _, secret = cluster.create_key("rpm10", rpm=10)
    cluster.wait_known(secret)
    replies = asyncio.run(post_many(cluster.url, secret, 40))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] * 10 + [429] * 30
    assert {r.headers["x-replica"] for r in replies} == {"r0", "r1", "r2"}  # spread over all three
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_a_key_revoked_through_one_replica_is_refused_by_the_others_within_a_second(shared_cluster: Cluster) -> None:
    cluster = shared_cluster
    key_id, secret = cluster.create_key("carol")
    cluster.wait_known(secret)
    first, *others = cluster.replicas
    revoked = httpx.post(f"{first.url}/admin/keys/{key_id}/revoke", headers=ADMIN_HEADERS, timeout=5)
    assert revoked.status_code == 200, revoked.text
    deadline = time.monotonic() + 1.0
    for replica in others:
        while True:
            reply = httpx.post(replica.url + "/v1/messages", json=MSG, headers={"x-api-key": secret}, timeout=5)
            if reply.status_code == 401:
                assert "revoked" in reply.json()["error"]["message"]
                break
            assert reply.status_code == 200
            assert time.monotonic() < deadline, f"{replica.url} still accepts the revoked key"
            time.sleep(0.02)


def test_sigkill_of_a_replica_mid_traffic_loses_no_key_and_no_committed_row(cluster: Cluster) -> None:
    secrets = [cluster.create_key(f"dev{i}")[1] for i in range(5)]
    for secret in secrets:
        cluster.wait_known(secret)
    victim = cluster.replicas[1]
    for i in range(10):  # rows the victim commits before it is killed
        reply = httpx.post(victim.url + "/v1/messages", json=MSG, timeout=10,
                           headers={"x-api-key": secrets[0], "x-claude-code-session-id": f"pre-{i}"})
        assert reply.status_code == 200
    pre = {f"pre-{i}" for i in range(10)}
    deadline = time.monotonic() + 10
    while not pre <= {row.session_id for row in cluster.rows()}:
        assert time.monotonic() < deadline, "the victim's rows were never committed"
        time.sleep(0.05)

    async def traffic() -> list[httpx.Response | Exception]:
        async with httpx.AsyncClient(timeout=30) as client:
            async def one(i: int) -> httpx.Response | Exception:
                try:
                    return await client.post(cluster.url + "/v1/messages", json=MSG, headers={
                        "x-api-key": secrets[i % 5], "x-claude-code-session-id": f"mid-{i}"})
                except httpx.HTTPError as exc:
                    return exc
            results: list[httpx.Response | Exception] = []
            for batch in range(6):
                if batch == 3:
                    assert victim.proc is not None
                    victim.proc.send_signal(signal.SIGKILL)
                results += await asyncio.gather(*(one(batch * 10 + i) for i in range(10)))
            return results

    results = asyncio.run(traffic())
    victim.proc.wait(5)  # type: ignore[union-attr]
    responses = [r for r in results if isinstance(r, httpx.Response)]
    assert all(r.status_code != 500 for r in responses)
    # Every key created before the kill still authenticates through the others.
    for secret in secrets:
        reply = httpx.post(cluster.url + "/v1/messages", json=MSG, headers={"x-api-key": secret}, timeout=10)
        assert reply.status_code == 200, reply.text
    # Every row committed before the kill is there, once; every answer the survivors gave has its
    # row, once (they commit within 200 ms; poll).
    served = {f"mid-{i}" for i, r in enumerate(results)
              if isinstance(r, httpx.Response) and r.status_code == 200 and r.headers.get("x-replica") != "r1"}
    deadline = time.monotonic() + 10
    while True:
        sessions = [row.session_id for row in cluster.rows()
                    if row.session_id and row.session_id.startswith(("pre-", "mid-"))]
        if served <= set(sessions) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert pre <= set(sessions) and served <= set(sessions)
    assert len(sessions) == len(set(sessions)), "a usage row was counted twice"


def test_redis_stopped_mid_traffic_fails_open_without_a_500_and_recovers(cluster: Cluster) -> None:
    _, secret = cluster.create_key("outage", rpm=1000)
    cluster.wait_known(secret)
    assert [r.status_code for r in asyncio.run(post_many(cluster.url, secret, 6))] == [200] * 6
    cluster.redis.stop()
    replies = asyncio.run(post_many(cluster.url, secret, 15, session="down"))
    assert [r.status_code for r in replies] == [200] * 15  # rate_limits: open (the default)
    detail = httpx.get(cluster.replicas[0].url + "/readyz", headers=ADMIN_HEADERS, timeout=10)
    assert detail.status_code == 200  # still ready: Redis does not take every replica out
    assert detail.json()["shared"]["healthy"] is False
    metrics = "".join(httpx.get(r.url + "/metrics", timeout=5).text for r in cluster.replicas)
    assert 'ccgate_shared_unavailable_total{feature="rate_limits"}' in metrics
    cluster.redis.start()
    for replica in cluster.replicas:  # each reconnects by itself
        deadline = time.monotonic() + 20
        while httpx.get(replica.url + "/readyz", timeout=10).json().get("shared") != "ok":
            assert time.monotonic() < deadline, replica.log
            time.sleep(0.1)
    _, limited = cluster.create_key("after", rpm=3)
    cluster.wait_known(limited)
    statuses = sorted(r.status_code for r in asyncio.run(post_many(cluster.url, limited, 9)))
    assert statuses == [200] * 3 + [429] * 6  # exact across replicas again
