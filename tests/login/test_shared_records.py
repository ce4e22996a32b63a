"""Console sessions and /login state across two gateway processes, in-process: two gateways on
one SQLite file share a backend (``MemoryShared`` of tests/gateway/test_shared_link.py, its
short-lived records one ``MemoryKV``; every record operation yields to the loop like a network
round trip). A person's requests are spread over both, as a load balancer would, and every
step must work wherever it lands; one-time steps must happen once however two processes race;
a backend that does not answer gives 503, never 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccgate.console import attach
from ccgate.server.asgi import Receive, Scope, Send
from tests.console.inprocess import ADMIN_KEY, console_config, csrf
from tests.console.test_console_idp import ADA, back_from_idp, hidden, to_idp
from tests.console.test_console_idp import config as idp_console_config
from tests.gateway.inprocess import Answer, InProcessGateway
from tests.gateway.test_inprocess import anthropic
from tests.gateway.test_shared_link import Bus, MemoryShared
from tests.lab.oidc_idp import TestIdP
from tests.login.harness import (
    FORM,
    PUBLIC_URL,
    Browser,
    form,
    login_config,
    poll,
    sign_in,
    start_device,
    with_idp,
)
from tests.login.harness import hidden as hidden_field

ENV = {"CCGATE_TEST_ADMIN": ADMIN_KEY}


@pytest.fixture
def idp() -> TestIdP:
    return TestIdP("http://127.0.0.1:9", redirect_uris=(f"{PUBLIC_URL}/console/signin/callback",
                                                       f"{PUBLIC_URL}/oauth/callback"))


def pair(tmp: Path, bus: Bus, config: dict[str, Any]) -> tuple[InProcessGateway, InProcessGateway]:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    a = InProcessGateway(tmp / "a", config, env=ENV, shared=MemoryShared(bus, "a"))
    b = InProcessGateway(tmp / "b", config, env=ENV, shared=MemoryShared(bus, "b"))
    return a, b


class Balancer:
    """An ASGI app in front of both gateways: each request goes to the next one in turn."""

    def __init__(self, *gateways: InProcessGateway) -> None:
        self.gateways = gateways
        self.served: list[str] = []  # which one answered each request ("a"/"b")
        self._next = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        index = self._next % len(self.gateways)
        self._next += 1
        if scope["type"] == "http":
            self.served.append("ab"[index])
        await self.gateways[index].app(scope, receive, send)


@asynccontextmanager
async def consoles(tmp: Path, bus: Bus, config: dict[str, Any]
                   ) -> AsyncIterator[tuple[InProcessGateway, InProcessGateway, httpx.AsyncClient, Balancer]]:
    """Two gateways with the console, and one browser (cookie jar) behind the balancer."""
    a, b = pair(tmp, bus, config)
    async with a, b:
        for gw in (a, b):
            gw.app.listen_host = "127.0.0.1"
            assert attach(gw.app) is not None
        balancer = Balancer(a, b)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=balancer), base_url=PUBLIC_URL,
                                     follow_redirects=False) as client:
            yield a, b, client, balancer


# Console ---------------------------------------------------------------------------------------


async def test_a_console_session_is_valid_at_the_other_process_and_sign_out_ends_it_at_both(
        tmp_path: Path) -> None:
    async with consoles(tmp_path, Bus(), console_config(tmp_path, providers=[anthropic()])) as (_, _, client, lb):
        signed_in = await client.post("/console/signin", data={"admin_key": ADMIN_KEY})
        assert signed_in.status_code == 303 and "ccgate_console=" in signed_in.headers["set-cookie"]
        for _ in range(2):  # b, then a: the session is known at both
            page = await client.get("/console/keys")
            assert page.status_code == 200 and "Keys" in page.text
        token = await csrf(client)  # served by b
        out = await client.post("/console/signout", data={"csrf": token})  # a
        assert out.status_code == 303
        for _ in range(2):  # the same cookie, replayed at either: signed out
            assert (await client.get("/console/keys")).status_code == 303
        assert lb.served == ["a", "b", "a", "b", "a", "b", "a"]


async def test_wrong_admin_keys_are_counted_across_processes(tmp_path: Path) -> None:
    async with consoles(tmp_path, Bus(), console_config(tmp_path, providers=[anthropic()])) as (_, _, client, _):
        statuses = [(await client.post("/console/signin", data={"admin_key": "wrong-" + "x" * 20})).status_code
                    for _ in range(11)]
        assert statuses == [401] * 10 + [429]  # ten in all, not ten per process
        assert (await client.post("/console/signin", data={"admin_key": ADMIN_KEY})).status_code == 429


async def test_the_one_time_link_printed_by_one_process_signs_in_once_at_any(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    config["server"] = {k: v for k, v in config["server"].items() if k != "admin"}
    async with consoles(tmp_path, Bus(), config) as (a, _, client, _):
        assert a.app.console is not None
        link = a.app.console.issue_link(PUBLIC_URL)  # type: ignore[attr-defined]
        assert link is not None
        await a.app.console.sessions.publish_link()  # type: ignore[attr-defined]  # (at start-up in serve)
        await client.get("/console/signin")  # a: so the link goes to b
        first = await client.get(link.removeprefix(PUBLIC_URL))
        assert first.status_code == 303 and "ccgate_console=" in first.headers["set-cookie"]
        client.cookies.clear()
        again = await client.get(link.removeprefix(PUBLIC_URL))  # a
        assert again.status_code == 401


async def test_an_identity_provider_sign_in_may_come_back_to_another_process(tmp_path: Path,
                                                                              idp: TestIdP) -> None:
    async with consoles(tmp_path, Bus(), idp_console_config(tmp_path)) as (a, b, client, lb):
        with_idp(a, idp)
        with_idp(b, idp)
        idp.next_user = ADA
        page = await back_from_idp(client, idp, await to_idp(client))  # started at a, back at b
        assert page.status_code == 200 and "Continue to the console" in page.text
        done = await client.post("/console/signin/idp", data={"flow": hidden(page.text, "flow"),
                                                              "csrf": hidden(page.text, "csrf")})
        assert done.status_code == 303 and "ccgate_console=" in done.headers["set-cookie"]
        overview = await client.get("/console/overview")
        assert overview.status_code == 200 and "<h1>Overview</h1>" in overview.text
        assert lb.served == ["a", "b", "a", "b"]


# /login ----------------------------------------------------------------------------------------


async def test_a_device_code_from_one_process_is_approved_at_the_other_and_polled_at_the_first(
        tmp_path: Path, idp: TestIdP) -> None:
    a, b = pair(tmp_path, Bus(), login_config(tmp_path))
    async with a, b:
        with_idp(a, idp)
        with_idp(b, idp)
        device = await start_device(a)
        assert (await poll(a, device["device_code"])).json()["error"] == "authorization_pending"
        done = await Browser(b, idp).approve(device["user_code"])
        assert done.status == 200 and b"signed in" in done.body, done.body
        answer = await poll(a, device["device_code"])
        assert answer.status == 200, answer.body
        assert answer.json()["access_token"] and answer.json()["refresh_token"]
        again = await poll(b, device["device_code"])  # handed out once, wherever asked
        assert (again.status, again.json()["error"]) == (400, "invalid_grant")


async def test_a_user_code_is_approved_once_when_two_processes_race(tmp_path: Path, idp: TestIdP) -> None:
    a, b = pair(tmp_path, Bus(), login_config(tmp_path))
    async with a, b:
        with_idp(a, idp)
        with_idp(b, idp)
        device = await start_device(a)
        browsers = [Browser(a, idp), Browser(b, idp)]
        pages = [await br.through_idp(await br.enter_code(device["user_code"])) for br in browsers]
        assert all(page.status == 200 and b"Approve sign-in?" in page.body for page in pages)
        answers = await asyncio.gather(*(
            br.post("/device/approve", {"flow": hidden_field(page, "flow"), "csrf": hidden_field(page, "csrf")})
            for br, page in zip(browsers, pages, strict=True)))
        assert sorted(answer.status for answer in answers) == [200, 400]
        lost = next(answer for answer in answers if answer.status == 400)
        assert b"already approved or denied" in lost.body
        tokens = [await poll(gw, device["device_code"]) for gw in (b, a)]
        assert [t.status for t in tokens] == [200, 400]  # one approval, one token


async def refresh(gw: InProcessGateway, token: str) -> Answer:
    return await gw.request("POST", "/oauth/token", form({"grant_type": "refresh_token",
                                                         "refresh_token": token}), headers=FORM)


async def test_refresh_grace_holds_across_processes(tmp_path: Path, idp: TestIdP) -> None:
    idp.reusable_refresh = True  # the IdP accepts its token again: ccgate's own rule decides
    a, b = pair(tmp_path, Bus(), login_config(tmp_path))
    async with a, b:
        with_idp(a, idp)
        with_idp(b, idp)
        first = (await sign_in(a, idp))["refresh_token"]
        second = await refresh(a, first)
        assert second.status == 200, second.body
        # Another Claude Code process still holds the first token and refreshes at b: one step
        # old, inside the grace.
        third = await refresh(b, first)
        assert third.status == 200, third.body
        # Now the first is two rotations old: refused at either process, without asking the IdP.
        asked = len(idp.requests)
        for gw in (a, b):
            stale = await refresh(gw, first)
            assert (stale.status, stale.json()["error"]) == (401, "invalid_grant")
        assert len(idp.requests) == asked
        # Two processes refreshing the newest token at the same moment do not lock each other out:
        # both new tokens are accepted afterwards.
        newest = third.json()["refresh_token"]
        racing = await asyncio.gather(refresh(a, newest), refresh(b, newest))
        assert [r.status for r in racing] == [200, 200]
        for answer, gw in zip(racing, (b, a), strict=True):
            assert (await refresh(gw, answer.json()["refresh_token"])).status == 200


async def test_a_revoked_refresh_token_is_refused_at_the_other_process(tmp_path: Path, idp: TestIdP) -> None:
    a, b = pair(tmp_path, Bus(), login_config(tmp_path))
    async with a, b:
        with_idp(a, idp)
        with_idp(b, idp)
        token = (await sign_in(a, idp))["refresh_token"]
        revoked = await a.request("POST", "/oauth/revoke", form({"token": token}), headers=FORM)
        assert revoked.status == 200
        refused = await refresh(b, token)
        assert (refused.status, refused.json()["error"]) == (401, "invalid_grant")


async def test_device_requests_are_limited_across_processes(tmp_path: Path) -> None:
    a, b = pair(tmp_path, Bus(), login_config(tmp_path, device_rate_limit=3))
    async with a, b:
        statuses = [(await gw.request("POST", "/oauth/device_authorization", b"", headers=FORM)).status
                    for gw in (a, b, a, b)]
        assert statuses == [200, 200, 200, 400]  # three from this address in all


# The backend down ------------------------------------------------------------------------------


async def test_a_backend_that_does_not_answer_gives_503_not_500(tmp_path: Path, idp: TestIdP) -> None:
    bus = Bus()
    config = login_config(tmp_path)
    config["server"] = {"admin": {"key": "env:CCGATE_TEST_ADMIN"}}
    async with consoles(tmp_path, bus, config) as (a, b, client, _):
        with_idp(a, idp)
        tokens = await sign_in(a, idp)
        assert (await client.post("/console/signin", data={"admin_key": ADMIN_KEY})).status_code == 303
        bus.down = True
        page = await client.get("/console/keys")
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert "shared state" in page.text and ADMIN_KEY not in page.text
        signin = await client.post("/console/signin", data={"admin_key": ADMIN_KEY})
        assert signin.status_code == 503
        started = await a.request("POST", "/oauth/device_authorization", b"", headers=FORM)
        assert (started.status, started.json()["error"]) == (503, "temporarily_unavailable")
        # A refresh that cannot be checked is "try later", never invalid_grant (which would make
        # Claude Code drop its refresh token).
        refreshed = await refresh(a, tokens["refresh_token"])
        assert (refreshed.status, refreshed.json()["error"]) == (503, "temporarily_unavailable")
        polled = await poll(a, "x" * 43)
        assert polled.status == 503
        browser = Browser(a, idp)
        entry = await browser.get("/device")
        submitted = await browser.post("/device", {"user_code": "BCDF-GHJK", "csrf": hidden_field(entry, "csrf")})
        assert submitted.status == 503 and b"Try again in a minute" in submitted.body
        metrics = (await a.request("GET", "/metrics")).body.decode()
        assert 'ccgate_shared_unavailable_total{feature="login"} 4.0' in metrics
        other = (await b.request("GET", "/metrics")).body.decode()  # the two console requests: one each
        for scrape in (metrics, other):
            assert 'ccgate_shared_unavailable_total{feature="sessions"} 1.0' in scrape
        bus.down = False
        assert (await client.get("/console/keys")).status_code == 200  # back: the session survived
        assert (await refresh(a, tokens["refresh_token"])).status == 200
