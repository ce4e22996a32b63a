"""The browser's leg of Claude Code's /login: the verification pages and the round trip
through the identity provider (docs/login.md). The user confirms the code Claude Code shows
(``GET``/``POST /device``), signs in at the IdP (OIDC code flow with PKCE, ``state`` bound to
this browser by a cookie, ``nonce``), then explicitly approves (``POST /device/approve``) or
denies (``POST /device/deny``); every form post is CSRF-checked. Problems are ``PageError``s:
HTML pages, not JSON."""

from __future__ import annotations

import asyncio
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

from ccgate.errors import PageError
from ccgate.login import pages
from ccgate.login.browser import Flow, matches, same_secret
from ccgate.login.devicecode import Approval
from ccgate.login.oidc import OidcError, authorize_url
from ccgate.login.settings import LoginSettings
from ccgate.login.urls import origin_of
from ccgate.server.asgi import Receive, Scope
from ccgate.server.login_http import NO_STORE, LoginHandlers, client_ip, header, log, random_token, who
from ccgate.server.response import Response
from ccgate.store import StoreError

if TYPE_CHECKING:
    from ccgate.server.app import Context

FLOW_COOKIE = "ccgate_flow"
CSRF_COOKIE = "ccgate_csrf"


class BrowserLeg(LoginHandlers):
    async def device_page(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        typed = self.query(scope).get("user_code", "")[:32]
        csrf = random_token()
        cookie = _cookie(CSRF_COOKIE, csrf, login, same_site="Strict")
        await _page(response, 200, pages.enter_code(typed, csrf), login, [(b"set-cookie", cookie)])

    async def device_submit(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        form = await self.form(scope, receive, ctx)
        _check_csrf(scope, login, _double_submit(scope, form))
        user_code = await self._grant_for_code(scope, form.get("user_code", ""))
        started = await self.state.flows.start(user_code)
        oidc = self.state.oidc(login, self.gateway.env)
        try:
            disc = await oidc.discovery()
        except OidcError as exc:
            log.warning("login: %s", exc)
            raise PageError("Sign-in is unavailable", "The identity provider cannot be reached from the "
                            "gateway; ask your platform team.", status=502) from None
        target = authorize_url(disc, login.oidc, login.url("/oauth/callback"), started.state,
                               started.flow.nonce, started.challenge)
        headers = [(b"location", target.encode()), (b"content-length", b"0"), *NO_STORE,
                   (b"set-cookie", _cookie(FLOW_COOKIE, started.browser, login, same_site="Lax")),
                   (b"referrer-policy", b"same-origin")]
        await response.whole(302, headers)

    async def _grant_for_code(self, scope: Scope, typed: str) -> str:
        """The pending user code typed, or the page saying why not."""
        if not await self.state.code_limiter.hit(client_ip(scope)):
            log.warning("login: too many user-code attempts from %s", client_ip(scope))
            raise PageError("Too many attempts", "Too many codes were tried from this address. Wait ten "
                            "minutes, then start again from Claude Code.", status=429)
        user_code = await self.state.grants.pending(typed)
        if user_code is None:
            raise PageError("Code not recognised", "That code is not valid or has expired. Check the code "
                            "Claude Code shows, or run /login again.", status=400)
        return user_code

    async def callback(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        params = self.query(scope)
        state = params.get("state", "")
        flow = await self.state.flows.get(state, _cookies(scope).get(FLOW_COOKIE))
        # Taking the flow commits to this one answer: a replayed callback (here or at another
        # process) finds nothing, so one IdP code is exchanged per flow.
        if flow is None or flow.identity is not None or not await self.state.flows.take(state):
            raise PageError("Sign-in link not valid here", "This sign-in was not started in this browser, "
                            "was already used, or has expired. Start again from Claude Code.", status=400)
        if "error" in params:
            raise PageError("Not signed in", "The identity provider did not sign you in "
                            f"({params['error'][:64]}). Run /login in Claude Code to try again.", status=403)
        oidc = self.state.oidc(login, self.gateway.env)
        try:
            disc = await oidc.discovery()
            if "iss" in params and params["iss"].rstrip("/") != disc.issuer.rstrip("/"):
                raise OidcError("the sign-in answer came from another identity provider")  # RFC 9207
            tokens = await oidc.exchange(params.get("code", ""), flow.verifier, login.url("/oauth/callback"))
            assert tokens.id_token is not None
            identity = await oidc.identity(tokens.id_token, flow.nonce)
        except OidcError as exc:
            log.warning("login: sign-in refused: %s", exc)
            raise PageError("Sign-in refused", f"{exc}. Run /login in Claude Code to try again.",
                            status=403) from None
        csrf = self.state.flows.rules.answered(flow, identity, tokens.refresh_token)
        await self.state.flows.save(state, flow)
        body = pages.approve(flow.user_code, who(identity), identity.groups, state, csrf)
        await _page(response, 200, body, login)

    async def _flow(self, scope: Scope, login: LoginSettings, form: dict[str, str]) -> tuple[str, Flow]:
        """The flow an Approve/Deny form names, after the IdP answered, from its browser."""
        state = form.get("flow", "")
        flow = await self.state.flows.get(state, _cookies(scope).get(FLOW_COOKIE))
        if flow is None or flow.identity is None:
            raise PageError("Sign-in expired", "This sign-in has expired or was started in another "
                            "browser. Run /login in Claude Code again.", status=400)
        _check_csrf(scope, login, matches(form.get("csrf"), flow.csrf_digest))
        return state, flow

    async def device_approve(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        state, flow = await self._flow(scope, login, await self.form(scope, receive, ctx))
        if not await self.state.flows.take(state):
            raise PageError("Sign-in expired", "This sign-in was already finished. Run /login in Claude "
                            "Code again if it did not connect.", status=400)
        user_code = await self.state.grants.pending(flow.user_code)
        if user_code is None or flow.identity is None:
            raise PageError("Sign-in expired", "The code expired before it was approved. Run /login in "
                            "Claude Code again.", status=400)
        keys = self.state.keys
        if keys is None:
            raise PageError("Sign-in is unavailable", "This gateway has no key store (store.enabled is "
                            "false), which Claude Code login needs.", status=503)
        try:
            key = await asyncio.to_thread(keys.key_for, flow.identity)
        except StoreError as exc:
            log.error("login: key store error: %s", exc)
            raise PageError("Sign-in is unavailable", "The gateway's key store is unavailable.",
                            status=503) from None
        # Taking the user code decides it: of two approvals racing, one signs the CLI in.
        approval = Approval(flow.identity, key.id, flow.idp_refresh_token)
        if not await self.state.grants.decide(user_code, approval):
            raise PageError("Code already used", "This code was already approved or denied. Run /login in "
                            "Claude Code again if it did not connect.", status=400)
        log.info("login: %s approved a device sign-in (key %s)", who(flow.identity), key.id)
        await _page(response, 200, pages.signed_in(who(flow.identity)), login,
                    [(b"set-cookie", _cookie(FLOW_COOKIE, "", login, same_site="Lax", max_age=0))])

    async def device_deny(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        form = await self.form(scope, receive, ctx)
        if "flow" in form:
            state, flow = await self._flow(scope, login, form)
            await self.state.flows.finish(state)
            user_code = flow.user_code
        else:
            _check_csrf(scope, login, _double_submit(scope, form))
            user_code = await self._grant_for_code(scope, form.get("user_code", ""))
        await self.state.grants.decide(user_code, None)
        log.info("login: a device sign-in was denied in the browser")
        await _page(response, 200, pages.denied(), login)


def _double_submit(scope: Scope, form: dict[str, str]) -> bool:
    """The form's CSRF token is the one in this browser's cookie (the code-entry page)."""
    expected = _cookies(scope).get(CSRF_COOKIE)
    return expected is not None and same_secret(form.get("csrf"), expected)


def _cookies(scope: Scope) -> dict[str, str]:
    raw = header(scope, b"cookie")
    if raw is None:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _cookie(name: str, value: str, login: LoginSettings, *, same_site: str, max_age: int = 600) -> bytes:
    secure = "; Secure" if login.secure_cookies else ""
    return f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite={same_site}{secure}".encode()


def _check_csrf(scope: Scope, login: LoginSettings, token_ok: bool) -> None:
    """A form post must come from our own page: same-origin headers when the browser sends them,
    and the token of the page it was served with (``token_ok``: double submit, or bound to the
    flow)."""
    origin = header(scope, b"origin")
    site = header(scope, b"sec-fetch-site")
    if site is not None:  # modern browsers: the most precise signal
        cross = site not in (b"same-origin", b"none")
    else:
        cross = origin is not None and origin not in (b"null", login.public_url.encode())
    if cross or not token_ok:
        log.warning("login: a form post failed the CSRF check (from %s)", client_ip(scope))
        raise PageError("Request blocked", "This request came from another site or an old page and was "
                        "blocked. Start again from Claude Code.", status=403)


async def _page(response: Response, status: int, body: bytes, login: LoginSettings,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    idp = origin_of(login.oidc.issuer)
    headers = [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"content-security-policy",
         f"default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {idp}; "
         "frame-ancestors 'none'; base-uri 'none'".encode()),
        (b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on our own
        # form posts; either way no URL of ours (code, state) goes to another site.
        (b"referrer-policy", b"same-origin"), *NO_STORE, *(extra or []),
    ]
    await response.whole(status, headers, body)
