"""The workers' hub over its real transport (shared/hub.py): a HubServer on a Unix socket (loopback
TCP on Windows) in this test's event loop and several HubClients, as several workers would be.

Exact admission from concurrent clients, one winner of a kv_take race, events to every other
worker (never back to the sender), metrics gathered from the others, a wrong token refused,
and a hub that is gone: every call is a SharedUnavailable within the client's timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ccgate.shared import SharedEvent, SharedUnavailable
from ccgate.shared.hub import HubClient, HubServer
from tests.shared.kv_contract import CHECKS, Check

pytestmark = pytest.mark.lab  # a real socket server, in-process


@pytest.fixture
async def hub() -> AsyncIterator[HubServer]:
    server = HubServer()
    await server.start()
    yield server
    await server.close()


async def clients(hub: HubServer, n: int, timeout: float = 2.0) -> list[tuple[HubClient, list[SharedEvent]]]:
    out = []
    for i in range(n):
        seen: list[SharedEvent] = []
        client = HubClient(hub.address, hub.token, f"proc-{i}", i, timeout=timeout)
        await client.start(seen.append)
        assert client.healthy()
        out.append((client, seen))
    return out


async def test_admission_is_exact_across_concurrent_clients(hub: HubServer) -> None:
    four = await clients(hub, 4)
    calls = [c.admit("key_1", 10, None) for c, _ in four for _ in range(10)]
    answers = await asyncio.gather(*calls)
    assert sum(a.allowed for a in answers) == 10
    refused = [a for a in answers if not a.allowed]
    assert len(refused) == 30 and all(a.limited_by == "requests" and a.requests_remaining == 0 for a in refused)
    four[0][0].record_tokens("key_2", 500)
    await asyncio.sleep(0.05)
    tokens = await four[1][0].admit("key_2", None, 400)  # another worker's tokens fill the window
    assert not tokens.allowed and tokens.limited_by == "tokens"
    for c, _ in four:
        await c.close()


async def test_kv_take_race_has_one_winner_and_records_are_shared(hub: HubServer) -> None:
    (a, _), (b, _) = await clients(hub, 2)
    await a.kv_put("device:ABCD", b"grant", 30)
    assert await b.kv_get("device:ABCD") == b"grant"
    takes = await asyncio.gather(*[c.kv_take("device:ABCD") for c in (a, b) for _ in range(5)])
    assert takes.count(b"grant") == 1 and takes.count(None) == 9
    counts = await asyncio.gather(*[c.kv_incr("attempts:ip", 1, 60) for c in (a, b) for _ in range(6)])
    assert sorted(counts) == list(range(1, 13))
    await b.kv_delete("attempts:ip")
    assert await a.kv_get("attempts:ip") is None
    await a.close()
    await b.close()


async def test_events_reach_every_other_worker_not_the_sender(hub: HubServer) -> None:
    three = await clients(hub, 3)
    sender = three[0][0]
    sender.publish(SharedEvent("keys_changed", {}, sender.process_id))
    sender.publish(SharedEvent("breaker", {"target": "p", "state": "open", "seconds": 30}, sender.process_id))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not all(len(seen) == 2 for _, seen in three[1:]):
        await asyncio.sleep(0.01)
    for _, seen in three[1:]:
        assert [(e.kind, e.data, e.origin) for e in seen] == [
            ("keys_changed", {}, "proc-0"), ("breaker", {"target": "p", "state": "open", "seconds": 30}, "proc-0")]
    assert three[0][1] == []
    for c, _ in three:
        await c.close()


async def test_a_scrape_gathers_every_other_workers_snapshot(hub: HubServer) -> None:
    three = await clients(hub, 3)
    for i, (c, _) in enumerate(three):
        c.snapshot = (lambda i=i: f"worker-{i}".encode())
    assert sorted(await three[1][0].gather()) == [b"worker-0", b"worker-2"]
    three[2][0].snapshot = None  # answers with nothing: still an answer, so no wait for the timeout
    assert sorted(await three[0][0].gather()) == [b"", b"worker-1"]
    for c, _ in three:
        await c.close()


async def test_a_wrong_token_is_refused(hub: HubServer) -> None:
    intruder = HubClient(hub.address, "not-the-token", "x", 9, timeout=0.5)
    await intruder.start(lambda e: None)
    assert not intruder.healthy()
    with pytest.raises(SharedUnavailable):
        await intruder.admit("key_1", 1, None)
    assert hub.connections == set()
    await intruder.close()


async def test_calls_fail_fast_when_the_hub_is_gone(hub: HubServer) -> None:
    ((client, _),) = await clients(hub, 1, timeout=0.5)
    await hub.close()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(SharedUnavailable):
        await client.admit("key_1", 10, None)
    with pytest.raises(SharedUnavailable):
        await client.kv_get("k")
    assert time.monotonic() - started < 1.5
    assert not client.healthy()
    client.publish(SharedEvent("keys_changed", {}, "proc-0"))  # never raises
    assert client.dropped == 1
    await client.close()


async def test_a_hub_that_stops_answering_is_a_timeout() -> None:
    """A hub that accepted the connection but hangs: the call gives up at the timeout."""
    hub = HubServer()
    await hub.start()
    ((client, _),) = await clients(hub, 1, timeout=0.3)
    hub.handle = lambda conn, msg: None  # type: ignore[method-assign]  # swallow everything
    started = time.monotonic()
    with pytest.raises(SharedUnavailable, match="did not answer"):
        await client.admit("key_1", 10, None)
    assert 0.25 < time.monotonic() - started < 1.0
    await client.close()
    await hub.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_the_kv_contract(check: Check, hub: HubServer) -> None:
    """What every short-lived-records backend must do (tests/shared/kv_contract.py), through a
    worker's client to the hub: waits are real."""
    ((client, _),) = await clients(hub, 1)
    try:
        await check(client, asyncio.sleep)
    finally:
        await client.close()
