"""Console sign-in through the identity provider of the ``login:`` section, in-process: the real
gateway with the console attached, the test IdP behind the real OIDC client (no sockets), an
httpx client keeping cookies like a browser. Also the Keys page's view of /login developers:
marked, and revoking one signs them out."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.console.inprocess import BASE, console_gateway, csrf, csrf_of, sign_in
from tests.gateway.inprocess import InProcessGateway
from tests.lab.oidc_idp import ALICE, TestIdP, User
from tests.login.harness import FORM, PUBLIC_URL, bearer, form, login_config, msg, ok_reply, with_idp
from tests.login.harness import sign_in as login_sign_in

ADA = User("user-ada-010", "ada@example.com", "Ada Admin", ["gateway-admins"])
CAROL = User("user-carol-011", "carol@example.com", "Carol", ["finance"])
CALLBACK = f"{PUBLIC_URL}/console/signin/callback"
assert BASE == PUBLIC_URL  # the console is reached at the login section's public URL


@pytest.fixture
def idp() -> TestIdP:
    return TestIdP("http://127.0.0.1:9", redirect_uris=(CALLBACK, f"{PUBLIC_URL}/oauth/callback"))


def config(tmp: Path, **console: Any) -> dict[str, Any]:
    cfg = login_config(tmp)
    settings = {"admin_groups": ["gateway-admins"], "admin_emails": ["Carol@Example.com"], **console}
    cfg["server"] = {"admin": {"key": "env:CCGATE_TEST_ADMIN"}, "console": settings}
    return cfg


@asynccontextmanager
async def gateway(tmp: Path, idp: TestIdP, **console: Any) -> AsyncIterator[tuple[InProcessGateway, httpx.AsyncClient]]:
    async with console_gateway(tmp, config(tmp, **console), {"anthropic": [ok_reply(), ok_reply()]}) as (gw, _, client):
        with_idp(gw, idp)
        yield gw, client


async def to_idp(client: httpx.AsyncClient) -> dict[str, str]:
    """Click "Sign in with ...": the gateway's 302 to the IdP's authorization endpoint; its query."""
    start = await client.get("/console/signin/idp")
    assert start.status_code == 302, start.text
    target = urlsplit(start.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == "http://127.0.0.1:9/authorize"
    return {k: v[0] for k, v in parse_qs(target.query).items()}


async def back_from_idp(client: httpx.AsyncClient, idp: TestIdP, params: dict[str, str]) -> httpx.Response:
    status, back = idp.authorize(params)
    assert status == 302, back
    parts = urlsplit(back)
    return await client.get(parts.path, params=parse_qs(parts.query))


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, page
    return found.group(1)


async def idp_sign_in(client: httpx.AsyncClient, idp: TestIdP, user: User) -> httpx.Response:
    idp.next_user = user
    page = await back_from_idp(client, idp, await to_idp(client))
    assert page.status_code == 200, page.text
    assert "Continue to the console" in page.text and user.email in page.text
    return await client.post("/console/signin/idp", data={"flow": hidden(page.text, "flow"),
                                                          "csrf": hidden(page.text, "csrf")})


async def test_sign_in_through_the_idp_creates_a_console_session(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp) as (_, client):
        signin = await client.get("/console/signin")
        assert 'href="/console/signin/idp">Sign in with 127.0.0.1:9</a>' in signin.text  # the issuer's host
        # The admin key form is still there, unchanged.
        assert '<label for="admin_key">Admin key</label>' in signin.text and ">Sign in</button>" in signin.text

        params = await to_idp(client)
        assert params["redirect_uri"] == CALLBACK and params["code_challenge_method"] == "S256"
        assert params["state"] and params["nonce"] and params["response_type"] == "code"
        flow_cookie = [c for c in client.cookies.jar if c.name == "ccgate_console_flow"]
        assert len(flow_cookie) == 1 and flow_cookie[0].path == "/console/signin"
        assert (await client.get("/console/overview")).status_code == 303  # nothing signed in yet

        idp.next_user = ADA
        page = await back_from_idp(client, idp, params)
        assert page.status_code == 200 and "ada@example.com" in page.text
        assert (await client.get("/console/overview")).status_code == 303  # not before "Continue"
        done = await client.post("/console/signin/idp", data={"flow": hidden(page.text, "flow"),
                                                              "csrf": hidden(page.text, "csrf")})
        assert done.status_code == 303 and done.headers["location"] == "/console/overview"
        cookie = done.headers.get_list("set-cookie")
        assert any(c.startswith("ccgate_console=") and "HttpOnly" in c and "SameSite=Strict" in c for c in cookie)
        assert any(c.startswith("ccgate_console_flow=;") and "Max-Age=0" in c for c in cookie)
        overview = await client.get("/console/overview")
        assert overview.status_code == 200 and "<h1>Overview</h1>" in overview.text
        token = [r for r in idp.requests if r[0] == "/token"][-1][1]
        assert token["code_verifier"] and token["redirect_uri"] == CALLBACK  # PKCE verifier sent
        # The session's changes are CSRF-checked like any console session's.
        assert (await client.post("/console/keys", data={"name": "x"})).status_code == 403
        created = await client.post("/console/keys", data={"name": "made-by-ada", "csrf": await csrf(client)})
        assert created.status_code == 201


async def test_a_listed_email_may_sign_in_case_insensitively(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp) as (_, client):
        done = await idp_sign_in(client, idp, CAROL)  # not in the group; her address is listed
        assert done.status_code == 303
        assert (await client.get("/console/keys")).status_code == 200


async def test_someone_not_listed_is_refused_with_a_clear_page(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp) as (_, client):
        idp.next_user = ALICE  # a developer (group engineering), not a console admin
        page = await back_from_idp(client, idp, await to_idp(client))
        assert page.status_code == 403
        assert "alice@example.com is signed in at the identity provider but may not use this console" in page.text
        assert "server.console.admin_groups" in page.text and "Continue" not in page.text
        assert "ccgate_console=" not in page.headers.get("set-cookie", "")
        assert (await client.get("/console/overview")).status_code == 303


async def test_nobody_through_the_idp_when_no_admins_are_listed(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp, admin_groups=[], admin_emails=[]) as (_, client):
        signin = await client.get("/console/signin")
        assert "Sign in with" not in signin.text and "Admin key" in signin.text
        assert (await client.get("/console/signin/idp")).status_code == 404


async def test_configured_display_name(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp, idp_name="Okta") as (_, client):
        assert ">Sign in with Okta</a>" in (await client.get("/console/signin")).text


async def test_state_and_browser_binding_are_enforced(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp) as (gw, client):
        idp.next_user = ADA
        params = await to_idp(client)
        wrong = await back_from_idp(client, idp, {**params, "state": "not-the-state"})
        assert wrong.status_code == 400 and "not started in this browser" in wrong.text

        # The right state from another browser (no flow cookie) does nothing either.
        status, back = idp.authorize(params)
        assert status == 302
        parts = urlsplit(back)
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as other:
            stolen = await other.get(parts.path, params=parse_qs(parts.query))
            assert stolen.status_code == 400
            assert (await other.get("/console/overview")).status_code == 303

        # An answer from another issuer (RFC 9207 iss) is refused.
        mixed = await client.get(parts.path, params={**parse_qs(parts.query), "iss": "http://127.0.0.1:8"})
        assert mixed.status_code == 403 and "another identity provider" in mixed.text
        replay = await client.get(parts.path, params=parse_qs(parts.query))  # the flow is spent
        assert replay.status_code == 400


async def test_pkce_verifier_must_match(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp) as (_, client):
        idp.next_user = ADA
        params = await to_idp(client)
        page = await back_from_idp(client, idp, {**params, "code_challenge": "A" * 43})
        assert page.status_code == 403 and "refused the sign-in" in page.text
        assert (await client.get("/console/overview")).status_code == 303


async def test_continue_needs_the_flow_csrf_token_and_same_origin(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp) as (_, client):
        idp.next_user = ADA
        page = await back_from_idp(client, idp, await to_idp(client))
        fields = {"flow": hidden(page.text, "flow"), "csrf": hidden(page.text, "csrf")}
        bad = await client.post("/console/signin/idp", data={**fields, "csrf": "forged"})
        assert bad.status_code == 403 and "ccgate_console=" not in bad.headers.get("set-cookie", "")
        cross = await client.post("/console/signin/idp", data=fields, headers={"origin": "http://evil.test"})
        assert cross.status_code == 403
        assert (await client.get("/console/overview")).status_code == 303
        assert (await client.post("/console/signin/idp", data=fields)).status_code == 303  # the real one


async def test_no_token_or_cookie_in_logs(tmp_path: Path, idp: TestIdP, caplog: pytest.LogCaptureFixture) -> None:
    issued: list[dict[str, Any]] = []
    original = idp.token

    def token(form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        status, body = original(form)
        issued.append({**body, **form})
        return status, body

    idp.token = token  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG)
    async with gateway(tmp_path, idp) as (_, client):
        done = await idp_sign_in(client, idp, ADA)
        assert done.status_code == 303
        session = client.cookies["ccgate_console"]
        idp.next_user = ALICE
        refused = await back_from_idp(client, idp, await to_idp(client))  # logged, without secrets
        assert refused.status_code == 403
    # Everything ccgate logged (the test's own HTTP client logs URLs with codes: not ours).
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ccgate"))
    assert "ada@example.com signed in through the identity provider" in ours
    assert "alice@example.com is not a console administrator" in ours
    secrets = [session] + [issued[0][k] for k in ("id_token", "refresh_token", "access_token", "code",
                                                  "code_verifier", "client_secret")]
    for secret in secrets:
        assert secret and secret not in ours


async def test_keys_page_marks_login_developers_and_revoking_signs_them_out(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp) as (gw, client):
        tokens = await login_sign_in(gw, idp)  # alice through Claude Code's /login
        assert (await gw.post("/v1/messages", msg(), headers=bearer(tokens["access_token"]))).status == 200
        await sign_in(client)  # the admin key, as before
        keys = await client.get("/console/keys")
        row = re.search(r'<tr data-key="login-alice@example.com"[^>]*>(.*?)</tr>', keys.text, re.S)
        assert row and 'data-login="alice@example.com"' in row.group(0)
        assert "Signed in via /login: alice@example.com" in row.group(1)
        action = re.search(r'action="(/console/keys/[^/"]+/revoke)"', row.group(1))
        assert action
        revoked = await client.post(action.group(1), data={"csrf": csrf_of(keys.text)})
        assert revoked.status_code == 303 and "done=signed-out" in revoked.headers["location"]
        flash = await client.get(revoked.headers["location"])
        assert "that developer is signed out" in flash.text

        answer = await gw.post("/v1/messages", msg(), headers=bearer(tokens["access_token"]))
        assert answer.status == 401
        refresh = await gw.request("POST", "/oauth/token", form(
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}), headers=FORM)
        assert (refresh.status, refresh.json()["error"]) == (401, "invalid_grant")


async def test_starting_sign_ins_is_limited_per_address(tmp_path: Path, idp: TestIdP) -> None:
    from ccgate.console.app import IDP_STARTS

    async with gateway(tmp_path, idp) as (_, client):
        for _ in range(IDP_STARTS):
            assert (await client.get("/console/signin/idp")).status_code == 302
        refused = await client.get("/console/signin/idp")
        assert refused.status_code == 503 and "Too many sign-ins were started" in refused.text
        assert "Admin key" in refused.text  # the admin key form is still offered


async def test_a_sign_in_started_elsewhere_moves_to_the_public_url_once(tmp_path: Path, idp: TestIdP) -> None:
    async with gateway(tmp_path, idp) as (_, client):
        moved = await client.get("/console/signin/idp", headers={"host": "localhost:4545"})
        assert moved.status_code == 302
        assert moved.headers["location"] == f"{PUBLIC_URL}/console/signin/idp?moved=1"
        assert "ccgate_console_flow" not in moved.headers.get("set-cookie", "")
        # A proxy that rewrites Host: the second visit starts the flow anyway, no loop.
        again = await client.get("/console/signin/idp?moved=1", headers={"host": "backend:4545"})
        assert again.status_code == 302 and again.headers["location"].startswith("http://127.0.0.1:9/authorize?")


async def test_an_unreachable_identity_provider_leaves_the_admin_key(tmp_path: Path, idp: TestIdP) -> None:
    from ccgate.login.oidc import OidcError

    async with gateway(tmp_path, idp) as (gw, client):
        async def down(*args: object, **kwargs: object) -> object:
            raise OidcError("cannot reach the identity provider at http://127.0.0.1:9: ClientConnectorError")

        gw.app.login.state._oidc._request = down  # type: ignore[union-attr, method-assign]
        answer = await client.get("/console/signin/idp")
        assert answer.status_code == 502 and "cannot be reached" in answer.text
        assert 'name="admin_key"' in answer.text
        assert gw.app.kv.live_keys("console:flow:") == []  # type: ignore[attr-defined]
