"""The admission channel (shared/redis_admit.py) against a real redis-server: pipelined
admissions exact, the script flushed mid-run, the connection killed by Redis, Redis stopped
(SIGSTOP) under both failure policies, AUTH (requirepass, an ACL user, ``redis.password``),
SELECT, a Unix socket and TLS."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ccgate.errors import SharedStateDown
from ccgate.routing.ratelimit import Admission
from ccgate.server.shared_link import SharedLink
from ccgate.shared import SharedUnavailable
from ccgate.shared.redis import RedisOptions, RedisShared
from ccgate.shared.redis_scripts import ADMIT
from ccgate.store import IssuedKey
from tests.lab.certs import LabPKI
from tests.lab.redis_server import RedisServer

pytestmark = pytest.mark.lab

PASSWORD = "s3cret-redis-pw"


async def admit_many(shared: RedisShared, key: str, n: int, rpm: int) -> list[Admission]:
    """``n`` admissions asked for in one turn of the loop (so they share one write)."""
    return list(await asyncio.gather(*(shared.admit(key, rpm, None) for _ in range(n))))


@pytest.fixture
async def shared(redis_server: RedisServer) -> AsyncIterator[RedisShared]:
    backend = RedisShared(RedisOptions(redis_server.url, timeout=0.5, prefix="t:"), "a")
    yield backend
    await backend.close()


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_forty_admissions_in_one_turn_admit_exactly_rpm_and_leave_in_one_write(shared: RedisShared) -> None:
    assert (await shared.admit("warm", 5, None)).allowed  # connected
    channel = shared._admit_channel
    assert channel is not None and channel._proto is not None and channel._proto.transport is not None
    transport = channel._proto.transport
    writes: list[bytes] = []
    real_write = transport.write

    def counting(data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        real_write(data)

    transport.write = counting  # type: ignore[method-assign]
    results = await admit_many(shared, "k1", 40, 10)
    assert sum(r.allowed for r in results) == 10
    # In order: the first 10 are admitted, each seeing one request fewer remaining.
    assert [r.requests_remaining for r in results[:10]] == list(range(9, -1, -1))
    assert all(r.limited_by == "requests" for r in results[10:])
    assert len(writes) == 1 and writes[0].count(b"EVALSHA") == 40


async def test_script_flushed_mid_run_is_loaded_again_and_nothing_is_counted_twice(
        shared: RedisShared, admin: aioredis.Redis) -> None:
    first = await admit_many(shared, "k2", 5, 100)
    assert [r.requests_remaining for r in first] == [99, 98, 97, 96, 95]
    await admin.script_flush()
    assert (await admin.script_exists(shared._admit_channel.sha)) == [False]  # type: ignore[union-attr]
    again = await admit_many(shared, "k2", 20, 100)  # every one answered NOSCRIPT, then resent once
    assert [r.requests_remaining for r in again] == list(range(94, 74, -1))
    assert (await shared.admit("k2", 100, None)).requests_remaining == 74


async def test_connection_killed_by_redis_recovers_on_the_next_admission(
        shared: RedisShared, admin: aioredis.Redis) -> None:
    assert (await shared.admit("k3", 100, None)).requests_remaining == 99
    killed = await admin.execute_command("CLIENT", "KILL", "SKIPME", "yes")
    assert killed >= 1
    channel = shared._admit_channel
    assert channel is not None
    async with asyncio.timeout(2):  # the loop sees the connection closed
        while channel._proto is not None:
            await asyncio.sleep(0.005)
    assert shared.healthy()  # closed while idle (as Redis' own idle timeout does): not a failure
    admission = await shared.admit("k3", 100, None)  # connects again at once, no backoff
    assert admission.allowed and admission.requests_remaining == 98  # counted once each


async def test_redis_restarted_recovers_and_counts_from_empty(redis_server: RedisServer) -> None:
    backend = RedisShared(RedisOptions(redis_server.url, timeout=0.3, prefix="t:"), "a")
    try:
        assert (await backend.admit("k4", 10, None)).requests_remaining == 9
        redis_server.stop()
        with pytest.raises(SharedUnavailable):
            await backend.admit("k4", 10, None)
        redis_server.start()  # empty: no counts, no scripts
        async with asyncio.timeout(10):
            while True:
                try:
                    admission = await backend.admit("k4", 10, None)
                    break
                except SharedUnavailable:
                    await asyncio.sleep(0.05)
        assert admission.requests_remaining == 9
        assert backend.healthy()
    finally:
        await backend.close()


def _key(rpm: int) -> IssuedKey:
    return IssuedKey(id="k5", name="team", prefix="ccg_k5", models=(), rpm=rpm, tpm=None, created_at=0.0,
                     expires_at=None, revoked_at=None, digest=b"")


@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
async def test_redis_stopped_fails_admissions_within_the_timeout_under_the_policy(
        redis_server: RedisServer, fail_open: bool) -> None:
    timeout = 0.3
    backend = RedisShared(RedisOptions(redis_server.url, timeout=timeout, prefix="t:"), "a")
    down: list[str] = []
    link = SharedLink(backend, fail_open=fail_open, on_unavailable=down.append)
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    try:
        await link.admit(_key(1000), "team")
        os.kill(pid, signal.SIGSTOP)
        try:
            for round_ in range(3):  # in flight, then during the backoff, then a new connection
                started = time.monotonic()
                calls = [link.admit(_key(1000), "team") for _ in range(10)]
                results = await asyncio.gather(*calls, return_exceptions=True)
                assert time.monotonic() - started < timeout + 0.5, round_
                if fail_open:
                    assert results == [None] * 10
                else:
                    assert all(isinstance(r, SharedStateDown) for r in results)
                    assert all(r.status == 503 for r in results)  # type: ignore[union-attr]
                await asyncio.sleep(timeout)
            assert len(down) == 30 and set(down) == {"rate_limits"}
            assert not backend.healthy()
        finally:
            os.kill(pid, signal.SIGCONT)
        async with asyncio.timeout(10):
            while True:
                try:
                    await backend.admit("k5", 1000, None)
                    break
                except SharedUnavailable:
                    await asyncio.sleep(0.05)
        assert backend.healthy()
    finally:
        await backend.close()


# AUTH, SELECT, Unix socket, TLS ------------------------------------------------------------


@pytest.fixture
def secured_redis() -> Iterator[RedisServer]:
    """requirepass for the default user, plus an ACL user ``alice``."""
    server = RedisServer(["--requirepass", PASSWORD, "--user", "alice", "on", f">{PASSWORD}-alice",
                          "~*", "&*", "+@all"]).start()
    yield server
    server.close()


async def _count_in_db(url: str, db: int, key: str) -> int:
    """The requests counted for ``key`` in database ``db`` (the sum of its buckets)."""
    client = aioredis.Redis.from_url(url, db=db)
    try:
        return sum(int(v) for v in await client.hvals(f"t:rl:{key}:r"))
    finally:
        await client.aclose()


@pytest.mark.parametrize("how", ["url", "password-setting", "setting-over-url", "acl-user"])
async def test_auth_with_a_password_and_select_of_the_urls_db(secured_redis: RedisServer, how: str) -> None:
    port = secured_redis.port
    url, password = {
        "url": (f"redis://:{PASSWORD}@127.0.0.1:{port}/3", None),
        "password-setting": (f"redis://127.0.0.1:{port}/3", PASSWORD),
        "setting-over-url": (f"redis://:stale@127.0.0.1:{port}/3", PASSWORD),  # redis.password wins
        "acl-user": (f"redis://alice:{PASSWORD}-alice@127.0.0.1:{port}/3", None),
    }[how]
    backend = RedisShared(RedisOptions(url, password=password, timeout=0.5, prefix="t:"), "a")
    try:
        assert (await backend.admit("k6", 10, None)).requests_remaining == 9
        assert (await backend.admit("k6", 10, None)).requests_remaining == 8
        await backend.kv_put("r", b"v", 5)  # redis-py's connections authenticate alike
        assert await backend.kv_get("r") == b"v"
    finally:
        await backend.close()
    admin_url = f"redis://:{PASSWORD}@127.0.0.1:{port}"
    assert await _count_in_db(admin_url, 3, "k6") == 2  # counted in db 3, not db 0
    assert await _count_in_db(admin_url, 0, "k6") == 0


async def test_a_wrong_password_is_unavailable_without_showing_it(secured_redis: RedisServer) -> None:
    url = f"redis://:wrong-{PASSWORD}@127.0.0.1:{secured_redis.port}/0"
    backend = RedisShared(RedisOptions(url, timeout=0.5, prefix="t:"), "a")
    try:
        with pytest.raises(SharedUnavailable) as raised:
            await backend.admit("k7", 10, None)
        assert "WRONGPASS" in str(raised.value) and PASSWORD not in str(raised.value)
        assert "127.0.0.1" not in str(raised.value)
    finally:
        await backend.close()


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")
async def test_a_unix_socket() -> None:
    server = RedisServer()
    server.extra = ["--unixsocket", str(server.dir / "redis.sock"), "--unixsocketperm", "700"]
    try:
        server.start()
        url = f"unix://{server.dir / 'redis.sock'}?db=2"
        backend = RedisShared(RedisOptions(url, timeout=0.5, prefix="t:"), "a")
        try:
            results = await admit_many(backend, "k8", 12, 10)
            assert sum(r.allowed for r in results) == 10
        finally:
            await backend.close()
    finally:
        server.close()


async def test_tls_verified_with_the_configured_ca(lab_pki: LabPKI, lab_certs_dir: Path) -> None:
    server = RedisServer(tls=lab_pki.client_context())
    server.extra = ["--port", "0", "--tls-port", str(server.port),  # TLS only, on the picked port
                    "--tls-cert-file", str(lab_certs_dir / "server.crt"),
                    "--tls-key-file", str(lab_certs_dir / "server.key"),
                    "--tls-ca-cert-file", str(lab_certs_dir / "lab-ca.pem"), "--tls-auth-clients", "no"]
    try:
        server.start()
        url = f"rediss://127.0.0.1:{server.port}/0"
        trusted = RedisShared(RedisOptions(url, timeout=1.0, prefix="t:", ssl={
            "ssl_cert_reqs": "required", "ssl_check_hostname": True,
            "ssl_ca_certs": str(lab_certs_dir / "lab-ca.pem")}), "a")
        untrusted = RedisShared(RedisOptions(url, timeout=1.0, prefix="t:", ssl={
            "ssl_cert_reqs": "required", "ssl_check_hostname": True,
            "ssl_ca_certs": str(lab_certs_dir / "interceptor-ca.pem")}), "b")
        try:
            assert (await trusted.admit("k9", 10, None)).requests_remaining == 9
            with pytest.raises(SharedUnavailable, match="SSL"):  # verification failed: not sent
                await untrusted.admit("k9", 10, None)
            assert (await trusted.admit("k9", 10, None)).requests_remaining == 8
        finally:
            await trusted.close()
            await untrusted.close()
    finally:
        server.close()


async def test_the_channel_loads_the_same_script_as_the_redis_py_path(shared: RedisShared,
                                                                      admin: aioredis.Redis) -> None:
    """The sha the channel computes is the one Redis gives the script (SCRIPT LOAD)."""
    await shared.admit("k10", 1, None)
    assert shared._admit_channel is not None
    assert await admin.script_load(ADMIT) == shared._admit_channel.sha
