"""The /login protocol end to end in-process: discovery, the device grant's exact error codes,
the browser leg through the identity provider (PKCE, state, nonce, CSRF), session tokens on
/v1/messages, refresh, revocation, managed settings, model policy and telemetry."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from ccgate.login.tokens import Identity, SessionTokens
from ccgate.server.asgi import Message
from ccgate.shared.memory import MemoryKV
from ccgate.store import KeyManager, open_store
from tests.gateway.inprocess import Answer, InProcessGateway
from tests.lab.oidc_idp import ALICE, TestIdP, User
from tests.login.harness import (
    DEVICE_GRANT,
    FORM,
    JWT_SECRET,
    PUBLIC_URL,
    Browser,
    bearer,
    form,
    hidden,
    login_config,
    msg,
    ok_reply,
    poll,
    sign_in,
    start_device,
    with_idp,
)

CONTRACTOR = User("user-bob-002", "bob@contractor.example", "Bob", ["contractors"])
ALICE_IDENTITY = Identity(ALICE.sub, ALICE.email, ALICE.name, tuple(ALICE.groups))
OUTSIDER = User("user-eve-003", "eve@example.com", "Eve", ["marketing"])


@pytest.fixture
def idp() -> TestIdP:
    return TestIdP("http://127.0.0.1:9", redirect_uris=(f"{PUBLIC_URL}/oauth/callback",))


async def test_discovery_names_same_origin_endpoints(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path)) as gw:
        answer = await gw.request("GET", "/.well-known/oauth-authorization-server")
    assert answer.status == 200
    doc = answer.json()
    assert doc["device_authorization_endpoint"] == f"{PUBLIC_URL}/oauth/device_authorization"
    assert doc["token_endpoint"] == f"{PUBLIC_URL}/oauth/token"
    assert doc["revocation_endpoint"] == f"{PUBLIC_URL}/oauth/revoke"
    assert doc["grant_types_supported"] == [DEVICE_GRANT, "refresh_token"]
    assert "authorization_endpoint" not in doc


async def test_device_authorization_reply_and_poll_errors(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path)) as gw:
        empty = await gw.request("POST", "/oauth/device_authorization", b"")  # 2.1.197 sends no body
        assert empty.status == 200 and empty.headers["cache-control"] == "no-store"
        device = await start_device(gw)
        assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", device["user_code"])
        assert len(device["device_code"]) == 43 and device["expires_in"] == 600 and device["interval"] == 5
        assert device["verification_uri"] == f"{PUBLIC_URL}/device"
        assert device["verification_uri_complete"].endswith(f"?user_code={device['user_code']}")

        first = await poll(gw, device["device_code"])
        assert (first.status, first.json()["error"]) == (400, "authorization_pending")
        too_soon = await poll(gw, device["device_code"])
        assert (too_soon.status, too_soon.json()["error"]) == (400, "slow_down")
        gw.clock.advance(10.5)  # the interval grew to 10 s
        assert (await poll(gw, device["device_code"])).json()["error"] == "authorization_pending"
        gw.clock.advance(600)
        expired = await poll(gw, device["device_code"])
        assert (expired.status, expired.json()["error"]) == (400, "expired_token")
        unknown = await poll(gw, "x" * 43)
        assert (unknown.status, unknown.json()["error"]) == (400, "invalid_grant")
        bad = await gw.request("POST", "/oauth/token", form({"grant_type": "password"}), headers=FORM)
        assert (bad.status, bad.json()["error"]) == (400, "unsupported_grant_type")


async def test_deny_in_the_browser_gives_access_denied(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path)) as gw:
        with_idp(gw, idp)
        device = await start_device(gw)
        browser = Browser(gw, idp)
        page = await browser.get("/device", f"user_code={device['user_code']}")
        assert device["user_code"] in page.body.decode() and 'formaction="/device/deny"' in page.body.decode()
        denied = await browser.post("/device/deny", {"user_code": device["user_code"], "csrf": hidden(page, "csrf")})
        assert denied.status == 200 and b"stopped this sign-in" in denied.body
        answer = await poll(gw, device["device_code"])
        assert (answer.status, answer.json()["error"]) == (400, "access_denied")


async def test_full_sign_in_issues_a_jwt_for_an_issued_key(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path), {"anthropic": [ok_reply()]}) as gw:
        with_idp(gw, idp)
        tokens = await sign_in(gw, idp)
        assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
        assert tokens["email"] == ALICE.email and tokens["refresh_token"]
        header = jwt.get_unverified_header(tokens["access_token"])
        assert header["alg"] == "HS256" and header["kid"] == hashlib.sha256(JWT_SECRET.encode()).hexdigest()[:16]
        claims = jwt.decode(tokens["access_token"], JWT_SECRET, algorithms=["HS256"], audience="claude-gateway",
                            options={"verify_exp": False})
        assert (claims["sub"], claims["email"], claims["name"], claims["groups"]) == (
            ALICE.sub, ALICE.email, ALICE.name, ALICE.groups)
        assert claims["iss"] == PUBLIC_URL and claims["exp"] - claims["iat"] == 3600 and claims["jti"]
        keys = KeyManager(gw.app.store).list_keys()  # type: ignore[arg-type]
        assert [k.name for k in keys] == ["login-alice@example.com"] and claims["ccgate_key"] == keys[0].id

        answer = await gw.post("/v1/messages", msg(), headers=bearer(tokens["access_token"]), query=b"beta=true")
        assert answer.status == 200, answer.body
        sent = gw.transports["anthropic"].sent[0]
        assert sent.header("x-api-key") == "sk-ant-provider-key-0123456789"
        assert sent.header("authorization") is None  # the session JWT never goes upstream

        again = await sign_in(gw, idp)  # a second device: the same developer key
        assert jwt.decode(again["access_token"], options={"verify_signature": False})["ccgate_key"] == keys[0].id


async def test_usage_rows_carry_the_developer_key(tmp_path: Path, idp: TestIdP) -> None:
    config = login_config(tmp_path)
    async with InProcessGateway(tmp_path, config, {"anthropic": [ok_reply()]}) as gw:
        with_idp(gw, idp)
        tokens = await sign_in(gw, idp)
        assert (await gw.post("/v1/messages", msg(), headers=bearer(tokens["access_token"]))).status == 200
        key_id = jwt.decode(tokens["access_token"], options={"verify_signature": False})["ccgate_key"]
    with_rows = open_store(tmp_path / "ccgate.db")
    groups = with_rows.usage_summary(since=None, by="key")
    with_rows.close()
    assert [(g.group, g.label, g.requests) for g in groups] == [(key_id, "login-alice@example.com", 1)]


async def test_tampered_expired_and_foreign_tokens_are_refused(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path)) as gw:
        with_idp(gw, idp)
        tokens = await sign_in(gw, idp)
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        other = SessionTokens("another-secret-of-enough-length-0123456789", PUBLIC_URL, 3600, gw.clock.time)
        forged, _ = other.mint_access(ALICE_IDENTITY, claims["ccgate_key"])  # right shape, wrong secret
        for token in (forged, tokens["access_token"][:-4] + "AAAA", tokens["refresh_token"]):
            answer = await gw.post("/v1/messages", msg(), headers=bearer(token))
            assert answer.status == 401 and answer.json()["error"]["message"] == "invalid token"
            assert answer.headers["x-should-retry"] == "false"
        none_alg = jwt.encode({**claims}, None, algorithm="none")
        assert (await gw.post("/v1/messages", msg(), headers=bearer(none_alg))).status == 401
        gw.clock.advance(3600)
        expired = await gw.post("/v1/messages", msg(), headers=bearer(tokens["access_token"]))
        assert expired.status == 401 and "expired" in expired.json()["error"]["message"]


async def test_refresh_rotates_and_remints_and_refused_refresh_is_invalid_grant(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path), {"anthropic": [ok_reply()]}) as gw:
        with_idp(gw, idp)
        tokens = await sign_in(gw, idp)
        gw.clock.advance(3400)
        idp.next_user = ALICE
        refreshed = await gw.request("POST", "/oauth/token", form(
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}), headers=FORM)
        assert refreshed.status == 200, refreshed.body
        fresh = refreshed.json()
        assert fresh["access_token"] != tokens["access_token"] and fresh["refresh_token"] != tokens["refresh_token"]
        assert idp.requests[-1][1]["grant_type"] == "refresh_token"
        gw.clock.advance(300)  # the first JWT has expired; the new one works
        assert (await gw.post("/v1/messages", msg(), headers=bearer(fresh["access_token"]))).status == 200
        again = await gw.request("POST", "/oauth/token", form(
            {"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]}), headers=FORM)
        assert again.status == 200, again.body
        # The token before the newest is still accepted once more (another process's copy); the
        # original one is two rotations old and refused, without asking the IdP.
        asked = len(idp.requests)
        reused = await gw.request("POST", "/oauth/token", form(
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}), headers=FORM)
        assert (reused.status, reused.json()["error"]) == (401, "invalid_grant") and len(idp.requests) == asked
        # The IdP ending the session (account disabled) is invalid_grant too.
        other = await sign_in(gw, idp)
        idp.refuse_refresh.add(ALICE.sub)
        refused = await gw.request("POST", "/oauth/token", form(
            {"grant_type": "refresh_token", "refresh_token": other["refresh_token"]}), headers=FORM)
        assert (refused.status, refused.json()["error"]) == (401, "invalid_grant")
        assert idp.requests[-1][1]["grant_type"] == "refresh_token"
        garbage = await gw.request("POST", "/oauth/token", form(
            {"grant_type": "refresh_token", "refresh_token": "idp-rt-nonsense"}), headers=FORM)
        assert (garbage.status, garbage.json()["error"]) == (401, "invalid_grant")


async def test_revocation_endpoint_and_key_revocation(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path), {"anthropic": [ok_reply(), ok_reply()]}) as gw:
        with_idp(gw, idp)
        first = await sign_in(gw, idp)
        revoked = await gw.request("POST", "/oauth/revoke", form({"token": first["access_token"]}), headers=FORM)
        assert revoked.status == 200 and revoked.body == b""
        answer = await gw.post("/v1/messages", msg(), headers=bearer(first["access_token"]))
        assert answer.status == 401 and "revoked" in answer.json()["error"]["message"]
        assert answer.headers["x-should-retry"] == "false"  # Claude Code stops at once
        rt = await gw.request("POST", "/oauth/revoke", form({"token": first["refresh_token"],
                                                              "token_type_hint": "refresh_token"}), headers=FORM)
        assert rt.status == 200
        refresh = await gw.request("POST", "/oauth/token", form(
            {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}), headers=FORM)
        assert (refresh.status, refresh.json()["error"]) == (401, "invalid_grant")
        unknown = await gw.request("POST", "/oauth/revoke", form({"token": "whatever"}), headers=FORM)
        assert unknown.status == 200  # RFC 7009: not an error

        second = await sign_in(gw, idp)
        assert (await gw.post("/v1/messages", msg(), headers=bearer(second["access_token"]))).status == 200
        key = KeyManager(gw.app.store).revoke("login-alice@example.com")  # type: ignore[arg-type]
        assert gw.app.key_cache is not None
        gw.app.key_cache.apply(key)
        answer = await gw.post("/v1/messages", msg(), headers=bearer(second["access_token"]))
        assert answer.status == 401 and "/login" in answer.json()["error"]["message"]
        refresh = await gw.request("POST", "/oauth/token", form(
            {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}), headers=FORM)
        assert (refresh.status, refresh.json()["error"]) == (401, "invalid_grant")


async def test_managed_settings_checksum_304_and_404(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path)) as gw:
        with_idp(gw, idp)
        alice = await sign_in(gw, idp)
        answer = await gw.request("GET", "/managed/settings", headers=bearer(alice["access_token"]))
        assert answer.status == 200, answer.body
        doc = answer.json()
        assert set(doc) == {"uuid", "checksum", "settings"}
        settings = {"availableModels": ["claude-sonnet-4-5", "haiku"], "env": {"LAB_PUSHED_VAR": "from-gateway"}}
        assert doc["settings"] == settings
        expected = "sha256:" + hashlib.sha256(
            json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        assert doc["checksum"] == doc["uuid"] == expected
        assert answer.headers["etag"] == f'"{expected}"'
        cached = await gw.request("GET", "/managed/settings",
                                  headers={**bearer(alice["access_token"]), "if-none-match": f'"{expected}"'})
        assert cached.status == 304 and cached.body == b"" and cached.headers["etag"] == f'"{expected}"'
        stale = await gw.request("GET", "/managed/settings",
                                 headers={**bearer(alice["access_token"]), "if-none-match": '"sha256:old"'})
        assert stale.status == 200

        idp.next_user = CONTRACTOR
        bob = await sign_in(gw, idp)
        contractor = (await gw.request("GET", "/managed/settings", headers=bearer(bob["access_token"]))).json()
        assert contractor["settings"]["availableModels"] == ["claude-haiku-4-5"]
        idp.next_user = OUTSIDER
        eve = await sign_in(gw, idp)
        none = await gw.request("GET", "/managed/settings", headers=bearer(eve["access_token"]))
        assert none.status == 404
        assert (await gw.request("GET", "/managed/settings")).status == 401


async def test_policy_limits_models_with_the_error_claude_code_shows(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path), {"anthropic": [ok_reply()]}) as gw:
        with_idp(gw, idp)
        idp.next_user = CONTRACTOR
        bob = await sign_in(gw, idp)
        denied = await gw.post("/v1/messages", msg("claude-opus-4-7"), headers=bearer(bob["access_token"]))
        assert denied.status == 400
        assert denied.json()["error"] == {"type": "invalid_request_error", "message":
                                          "model claude-opus-4-7 is not in your role's availableModels allowlist"}
        allowed = await gw.post("/v1/messages", msg("claude-haiku-4-5-20251001"), headers=bearer(bob["access_token"]))
        assert allowed.status == 200  # a dated version of an allowed id
        assert len(gw.transports["anthropic"].sent) == 1


async def test_telemetry_accepted_chunked_and_bounded(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path, telemetry={"max_body_bytes": 4096})) as gw:
        with_idp(gw, idp)
        tokens = await sign_in(gw, idp)
        for signal in ("metrics", "logs", "traces"):
            answer = await chunked(gw, f"/v1/{signal}", [b"\x0a\x10" * 100, b"\x12" * 50],
                                   bearer(tokens["access_token"]))
            assert answer.status == 200, answer.body
        too_big = await chunked(gw, "/v1/logs", [b"x" * 3000, b"y" * 3000], bearer(tokens["access_token"]))
        assert too_big.status == 413
        assert (await chunked(gw, "/v1/metrics", [b"x"], {})).status == 401
        relay = gw.app.login.state.relay(gw.loaded.login)  # type: ignore[arg-type]
        assert relay.accepted == 3 and relay.forwarded == 0  # no forward_to: accepted, dropped


async def chunked(gw: InProcessGateway, path: str, pieces: list[bytes], headers: dict[str, str]) -> Answer:
    """A request whose body arrives in pieces with no content-length (Transfer-Encoding: chunked)."""
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"",
             "headers": [(k.encode(), v.encode()) for k, v in {**headers, "content-type": "application/x-protobuf"}.items()]}
    incoming: list[Message] = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
                               for i, p in enumerate(pieces)]
    messages: list[Message] = []
    done = asyncio.Event()

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await gw.app(scope, receive, send)
    return Answer.of(messages)


async def test_state_pkce_and_csrf_are_enforced(tmp_path: Path, idp: TestIdP) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path)) as gw:
        with_idp(gw, idp)
        device = await start_device(gw)
        browser = Browser(gw, idp)
        page = await browser.get("/device", f"user_code={device['user_code']}")
        csrf = hidden(page, "csrf")
        # CSRF: no token, a wrong one, or a cross-site post are refused.
        assert (await browser.post("/device", {"user_code": device["user_code"]})).status == 403
        assert (await browser.post("/device", {"user_code": device["user_code"], "csrf": "x" + csrf})).status == 403
        cross = await browser.post("/device", {"user_code": device["user_code"], "csrf": csrf},
                                   headers={"origin": "https://evil.example"})
        assert cross.status == 403 and b"another site" in cross.body
        fetched = await browser.post("/device", {"user_code": device["user_code"], "csrf": csrf},
                                     headers={"sec-fetch-site": "cross-site", "origin": PUBLIC_URL})
        assert fetched.status == 403
        redirect = await browser.post("/device", {"user_code": device["user_code"], "csrf": csrf},
                                      headers={"origin": PUBLIC_URL, "sec-fetch-site": "same-origin"})
        assert redirect.status == 302
        location = redirect.headers["location"]
        assert "code_challenge_method=S256" in location and "nonce=" in location and "state=" in location

        # The callback with another state, or from a browser without the flow cookie, is refused.
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        status, back = idp.authorize(params)
        assert status == 302
        back_query = urlsplit(back).query
        wrong_state = back_query.replace(params["state"], "forged-state")
        assert (await browser.get("/oauth/callback", wrong_state)).status == 400
        stranger = Browser(gw, idp)
        assert (await stranger.get("/oauth/callback", back_query)).status == 400
        # PKCE: the IdP refuses a code redeemed with another verifier.
        kv = gw.app.kv
        assert isinstance(kv, MemoryKV)
        (key,) = kv.live_keys("login:flow:")
        record = json.loads(await kv.kv_get(key) or b"")
        real_verifier, record["verifier"] = record["verifier"], "not-the-verifier-" + "x" * 40
        await kv.kv_put(key, json.dumps(record).encode(), 600)
        refused = await browser.get("/oauth/callback", back_query)
        assert refused.status == 403 and b"refused" in refused.body
        assert real_verifier  # the gateway sent a verifier; the IdP compared it with the challenge
        assert (await poll(gw, device["device_code"])).json()["error"] == "authorization_pending"


async def test_user_code_guessing_and_device_requests_are_rate_limited(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, login_config(tmp_path, device_rate_limit=3)) as gw:
        browser = Browser(gw, TestIdP())
        page = await browser.get("/device")
        csrf = hidden(page, "csrf")
        statuses = [(await browser.post("/device", {"user_code": f"BCDF-{c * 4}", "csrf": csrf})).status
                    for c in "GHJKLMNPQRSTVWXZBCDFG"]
        assert statuses[:20] == [400] * 20 and statuses[20] == 429
        device = await start_device(gw)  # even the right code is refused while limited
        assert (await browser.post("/device", {"user_code": device["user_code"], "csrf": csrf})).status == 429
        for _ in range(2):
            await start_device(gw)
        limited = await gw.request("POST", "/oauth/device_authorization", b"", headers=FORM)
        assert (limited.status, limited.json()["error"]) == (400, "slow_down")
        # Guessing device codes at the token endpoint is bounded too.
        answers = [(await poll(gw, f"guess-{i:039d}")).json()["error"] for i in range(61)]
        assert answers[:60] == ["invalid_grant"] * 60 and answers[60] == "slow_down"


async def test_tokens_and_secrets_never_reach_the_log(tmp_path: Path, idp: TestIdP,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = login_config(tmp_path)
    config["log"] = {"access": True, "file": str(tmp_path / "access.log")}
    async with InProcessGateway(tmp_path, config, {"anthropic": [ok_reply()]}) as gw:
        with_idp(gw, idp)
        device = await start_device(gw)
        done = await Browser(gw, idp).approve(device["user_code"])
        assert done.status == 200
        tokens = (await poll(gw, device["device_code"])).json()
        await gw.post("/v1/messages", msg(), headers=bearer(tokens["access_token"]))
        await gw.request("POST", "/oauth/token", form(
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}), headers=FORM)
        await gw.post("/v1/messages", msg(), headers=bearer(tokens["access_token"] + "x"))
        gw.app.access_log.flush()
    logged = caplog.text + (tmp_path / "access.log").read_text()
    assert "signed in" in logged or "approved" in logged  # the audit lines are there
    secrets = [tokens["access_token"], tokens["refresh_token"], device["device_code"], JWT_SECRET,
               "idp-client-secret-for-tests", "idp-rt-"]
    secrets += [t.split(".")[1] for t in (tokens["access_token"], tokens["refresh_token"])]
    for secret in secrets:
        assert secret not in logged
