"""Claude Code's /login endpoints on the gateway: the HTTP side of ``ccgate.login``.

``LoginEndpoints.routes()`` is the one place these routes are added to the gateway's table
(docs/login.md, the wire contract in docs/login.md#protocol):

* ``GET /.well-known/oauth-authorization-server`` - where the CLI finds the endpoints;
* ``POST /oauth/device_authorization`` and ``POST /oauth/token`` (device and refresh grants),
  ``POST /oauth/revoke`` (RFC 7009) - the CLI's leg; OAuth error bodies via ``OAuthError``;
* ``GET/POST /device``, ``GET /oauth/callback``, ``POST /device/approve``, ``POST /device/deny``
  - the browser's leg through the identity provider; HTML pages, ``PageError`` for problems;
* ``GET /managed/settings`` and ``POST /v1/{metrics,logs,traces}`` - with the session JWT.

State that must outlive a config reload (pending device grants, browser flows, revoked token
ids, attempt counters) lives in ``LoginState`` on the gateway; what the config decides is
read from ``ctx.rt.loaded.login`` per request.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from ccgate.errors import InvalidRequest, NotFound, OAuthError, PageError
from ccgate.login import pages
from ccgate.login.accounts import DeveloperKeys
from ccgate.login.browser import Flow, Flows, same_secret
from ccgate.login.devicecode import Approval, DeviceGrants, Grant
from ccgate.login.oidc import IdentityRefused, OidcClient, OidcError, RefreshRefused, authorize_url
from ccgate.login.ratelimit import WindowLimiter
from ccgate.login.settings import LoginSettings
from ccgate.login.telemetry import SIGNALS, TelemetryRelay
from ccgate.login.tokens import (
    Identity,
    RefreshFamilies,
    RefreshGrant,
    Revocations,
    Session,
    SessionTokens,
    TokenInvalid,
)
from ccgate.login.urls import origin_of
from ccgate.routing.clock import Clock
from ccgate.server.asgi import Receive, Scope, read_body
from ccgate.server.response import Response
from ccgate.store import Store, StoreError

if TYPE_CHECKING:
    from ccgate.server.app import Context, Gateway

log = logging.getLogger("ccgate.login")
_json = msgspec.json.Encoder()

MAX_FORM = 16 * 1024
ATTEMPT_WINDOW = 600.0
CODE_ATTEMPTS = 20  # user-code entries per client address per window
BAD_DEVICE_CODES = 60  # unknown device codes at the token endpoint per address per window
FLOW_COOKIE = "ccgate_flow"
CSRF_COOKIE = "ccgate_csrf"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]

Handler = Callable[[Scope, Receive, Response, "Context"], Awaitable[None]]


class LoginState:
    """Everything of the login flow that survives a reload."""

    def __init__(self, clock: Clock, store: Store | None, keys: DeveloperKeys | None,
                 revoked: Revocations) -> None:
        now = clock.time
        self.grants = DeviceGrants(now)
        self.flows = Flows(now)
        self.revoked = revoked  # access-token ids (shared with ClientAuth)
        self.families = RefreshFamilies(now)
        self.device_limiter = WindowLimiter(30, ATTEMPT_WINDOW, now)
        self.code_limiter = WindowLimiter(CODE_ATTEMPTS, ATTEMPT_WINDOW, now)
        self.bad_device_limiter = WindowLimiter(BAD_DEVICE_CODES, ATTEMPT_WINDOW, now)
        self.store = store
        self.keys = keys
        self._oidc: OidcClient | None = None
        self._relay: TelemetryRelay | None = None

    def oidc(self, settings: LoginSettings, env: Any) -> OidcClient:
        if self._oidc is None or self._oidc.oidc != settings.oidc:
            old, self._oidc = self._oidc, OidcClient(settings.oidc, env)
            if old is not None:
                asyncio.get_running_loop().create_task(old.close())
        return self._oidc

    def relay(self, settings: LoginSettings) -> TelemetryRelay:
        wanted = settings.telemetry_forward_to.rstrip("/") if settings.telemetry_forward_to else None
        if self._relay is None or self._relay.forward_to != wanted:
            self._relay = TelemetryRelay(settings.telemetry_forward_to)
        return self._relay

    async def close(self) -> None:
        if self._oidc is not None:
            await self._oidc.close()
        if self._relay is not None:
            await self._relay.close()


class LoginEndpoints:
    def __init__(self, gateway: Gateway, revoked: Revocations) -> None:
        self.gateway = gateway
        store = gateway.store
        keys = DeveloperKeys(store, gateway.key_cache) if store is not None else None
        self.state = LoginState(gateway.seams.clock, store, keys, revoked)

    def routes(self) -> dict[tuple[str, str], tuple[str, Handler, bool]]:
        table: dict[tuple[str, str], tuple[str, Handler, bool]] = {
            ("GET", "/.well-known/oauth-authorization-server"): ("login", self.discovery, False),
            ("POST", "/oauth/device_authorization"): ("login", self.device_authorization, False),
            ("POST", "/oauth/token"): ("login", self.token, False),
            ("POST", "/oauth/revoke"): ("login", self.revoke, False),
            ("GET", "/device"): ("login_page", self.device_page, False),
            ("POST", "/device"): ("login_page", self.device_submit, False),
            ("POST", "/device/deny"): ("login_page", self.device_deny, False),
            ("POST", "/device/approve"): ("login_page", self.device_approve, False),
            ("GET", "/oauth/callback"): ("login_page", self.callback, False),
            ("GET", "/managed/settings"): ("managed_settings", self.managed_settings, True),
        }
        for signal in SIGNALS:
            table[("POST", f"/v1/{signal}")] = ("telemetry", self._telemetry(signal), True)
        return table

    # Helpers --------------------------------------------------------------------------------

    @staticmethod
    def settings(ctx: Context) -> LoginSettings:
        login = ctx.rt.loaded.login
        if login is None:
            raise NotFound("Claude Code login is not configured on this gateway (no login: section)")
        return login

    def tokens(self, ctx: Context) -> SessionTokens:
        assert ctx.rt.sessions is not None  # built whenever login is configured
        return ctx.rt.sessions

    async def form(self, scope: Scope, receive: Receive, ctx: Context) -> dict[str, str]:
        length = _header(scope, b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        body = await read_body(receive, MAX_FORM, declared)
        ctx.bytes_in = len(body)
        try:
            fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=32)
        except (UnicodeDecodeError, ValueError):
            raise InvalidRequest("the form body is not valid application/x-www-form-urlencoded") from None
        return {k: v[0] for k, v in fields.items()}

    @staticmethod
    def query(scope: Scope) -> dict[str, str]:
        raw: bytes = scope.get("query_string", b"")
        try:
            fields = parse_qs(raw.decode(), max_num_fields=16)
        except (UnicodeDecodeError, ValueError):
            return {}
        return {k: v[0] for k, v in fields.items()}

    # The CLI's leg ----------------------------------------------------------------------------

    async def discovery(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        body = {
            "issuer": login.public_url,
            "device_authorization_endpoint": login.url("/oauth/device_authorization"),
            "token_endpoint": login.url("/oauth/token"),
            "revocation_endpoint": login.url("/oauth/revoke"),
            "grant_types_supported": [DEVICE_GRANT, "refresh_token"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "profile", "email"],
            "gateway_protocol_version": 1,
        }
        await response.json(200, _json.encode(body))

    async def device_authorization(self, scope: Scope, receive: Receive, response: Response,
                                   ctx: Context) -> None:
        login = self.settings(ctx)
        await self.form(scope, receive, ctx)  # surface=claude_code, or empty (2.1.197): ignored
        limiter = self.state.device_limiter
        limiter.limit = login.device_rate_limit
        if not limiter.hit(_client_ip(scope)):
            raise OAuthError("slow_down", "too many sign-in attempts from this address; wait a few minutes")
        started = self.state.grants.start()
        if started is None:
            raise OAuthError("slow_down", "too many sign-ins are pending; try again shortly")
        device_code, grant = started
        log.info("login: device authorization started from %s", _client_ip(scope))
        verification = login.url("/device")
        body = {
            "device_code": device_code, "user_code": grant.user_code, "verification_uri": verification,
            "verification_uri_complete": f"{verification}?user_code={grant.user_code}",
            "expires_in": self.state.grants.ttl, "interval": grant.interval,
        }
        await _json_reply(response, 200, body)

    async def token(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        form = await self.form(scope, receive, ctx)
        grant_type = form.get("grant_type")
        if grant_type == DEVICE_GRANT:
            await self._device_grant(scope, response, ctx, form.get("device_code", ""))
        elif grant_type == "refresh_token":
            await self._refresh_grant(response, ctx, login, form.get("refresh_token", ""))
        else:
            raise OAuthError("unsupported_grant_type", "use the device_code or refresh_token grant")

    async def _device_grant(self, scope: Scope, response: Response, ctx: Context, device_code: str) -> None:
        if not device_code:
            raise OAuthError("invalid_request", "device_code is required")
        result = self.state.grants.poll(device_code)
        if isinstance(result, str):
            if result == "invalid_grant" and not self.state.bad_device_limiter.hit(_client_ip(scope)):
                raise OAuthError("slow_down", "too many unknown device codes from this address")
            raise OAuthError(result)
        tokens = self.tokens(ctx)
        access, expires_in = tokens.mint_access(result.identity, result.key_id)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in}
        if result.idp_refresh_token:
            body["refresh_token"] = self._mint_refresh(tokens, result.identity, result.key_id,
                                                       result.idp_refresh_token, _random())
        if result.identity.email:
            body["email"] = result.identity.email  # Claude Code asks the developer to confirm it
        log.info("login: session issued to %s (key %s)", _who(result.identity), result.key_id)
        await _json_reply(response, 200, body)

    async def _refresh_grant(self, response: Response, ctx: Context, login: LoginSettings, token: str) -> None:
        tokens = self.tokens(ctx)
        try:
            grant = tokens.verify_refresh(token)
        except TokenInvalid:
            raise OAuthError("invalid_grant", "unknown or expired refresh token", status=401) from None
        keys = self.state.keys
        key = keys.active(grant.key_id) if keys is not None else None
        if not self.state.families.accepts(grant.family, grant.jti):
            log.warning("login: an old or revoked refresh token was presented for %s", _who(grant.identity))
            raise OAuthError("invalid_grant", "this refresh token was already used or revoked", status=401)
        if key is None:
            raise OAuthError("invalid_grant", "this session was revoked; sign in again", status=401)
        oidc = self.state.oidc(login, self.gateway.env)
        try:
            fresh = await oidc.refresh(grant.idp_refresh_token)
            identity = await oidc.identity(fresh.id_token, None) if fresh.id_token else grant.identity
        except (RefreshRefused, IdentityRefused) as exc:
            log.info("login: refresh refused for %s: %s", _who(grant.identity), exc)
            raise OAuthError("invalid_grant", "the identity provider ended this session", status=401) from None
        except OidcError as exc:  # unreachable or broken IdP: the CLI retries later
            log.warning("login: refresh failed: %s", exc)
            raise OAuthError("temporarily_unavailable", "the identity provider is unavailable",
                             status=503) from None
        access, expires_in = tokens.mint_access(identity, key.id)
        refresh = self._mint_refresh(tokens, identity, key.id, fresh.refresh_token or grant.idp_refresh_token,
                                     grant.family)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in,
                                "refresh_token": refresh}
        log.info("login: session refreshed for %s (key %s)", _who(identity), key.id)
        await _json_reply(response, 200, body)

    def _mint_refresh(self, tokens: SessionTokens, identity: Identity, key_id: str, idp_token: str,
                      family: str) -> str:
        token, jti, exp = tokens.mint_refresh(identity, key_id, idp_token, family)
        self.state.families.issue(family, jti, exp)
        return token

    async def revoke(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        """RFC 7009: always 200; an unknown token is not an error."""
        self.settings(ctx)
        token = (await self.form(scope, receive, ctx)).get("token", "")
        tokens = self.tokens(ctx)
        for verify in (tokens.verify_access, tokens.verify_refresh):
            try:
                found: Session | RefreshGrant = verify(token, check_exp=False)
            except TokenInvalid:
                continue
            if isinstance(found, RefreshGrant):
                self.state.families.end(found.family, found.exp)
            else:
                self.state.revoked.revoke(found.jti, found.exp)
            log.info("login: token revoked for %s (key %s)", _who(found.identity), found.key_id)
            break
        await response.whole(200, [(b"content-length", b"0"), *_NO_STORE])

    # The browser's leg ------------------------------------------------------------------------

    async def device_page(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        typed = self.query(scope).get("user_code", "")[:32]
        csrf = _random()
        cookie = _cookie(CSRF_COOKIE, csrf, login, same_site="Strict")
        await _page(response, 200, pages.enter_code(typed, csrf), login, [(b"set-cookie", cookie)])

    async def device_submit(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        form = await self.form(scope, receive, ctx)
        _check_csrf(scope, login, _cookies(scope).get(CSRF_COOKIE), form.get("csrf"))
        grant = self._grant_for_code(scope, form.get("user_code", ""))
        flow = self.state.flows.start(grant.user_code)
        if flow is None:
            raise PageError("Try again shortly", "Too many sign-ins are in progress.", status=503)
        oidc = self.state.oidc(login, self.gateway.env)
        try:
            disc = await oidc.discovery()
        except OidcError as exc:
            log.warning("login: %s", exc)
            raise PageError("Sign-in is unavailable", "The identity provider cannot be reached from the "
                            "gateway; ask your platform team.", status=502) from None
        target = authorize_url(disc, login.oidc, login.url("/oauth/callback"), flow.state, flow.nonce,
                               flow.challenge)
        headers = [(b"location", target.encode()), (b"content-length", b"0"), *_NO_STORE,
                   (b"set-cookie", _cookie(FLOW_COOKIE, flow.browser, login, same_site="Lax")),
                   (b"referrer-policy", b"same-origin")]
        await response.whole(302, headers)

    def _grant_for_code(self, scope: Scope, typed: str) -> Grant:
        if not self.state.code_limiter.hit(_client_ip(scope)):
            log.warning("login: too many user-code attempts from %s", _client_ip(scope))
            raise PageError("Too many attempts", "Too many codes were tried from this address. Wait ten "
                            "minutes, then start again from Claude Code.", status=429)
        grant = self.state.grants.by_user_code(typed)
        if grant is None:
            raise PageError("Code not recognised", "That code is not valid or has expired. Check the code "
                            "Claude Code shows, or run /login again.", status=400)
        return grant

    async def callback(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        params = self.query(scope)
        flow = self.state.flows.get(params.get("state", ""), _cookies(scope).get(FLOW_COOKIE))
        if flow is None or flow.identity is not None:
            raise PageError("Sign-in link not valid here", "This sign-in was not started in this browser, "
                            "was already used, or has expired. Start again from Claude Code.", status=400)
        if "error" in params:
            self.state.flows.finish(flow)
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
            self.state.flows.finish(flow)
            log.warning("login: sign-in refused: %s", exc)
            raise PageError("Sign-in refused", f"{exc}. Run /login in Claude Code to try again.",
                            status=403) from None
        flow.identity, flow.idp_refresh_token = identity, tokens.refresh_token
        body = pages.approve(flow.user_code, _who(identity), identity.groups, flow.state, flow.csrf)
        await _page(response, 200, body, login)

    def _flow(self, scope: Scope, login: LoginSettings, form: dict[str, str]) -> Flow:
        flow = self.state.flows.get(form.get("flow", ""), _cookies(scope).get(FLOW_COOKIE))
        if flow is None or flow.identity is None:
            raise PageError("Sign-in expired", "This sign-in has expired or was started in another "
                            "browser. Run /login in Claude Code again.", status=400)
        _check_csrf(scope, login, flow.csrf, form.get("csrf"))
        return flow

    async def device_approve(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        flow = self._flow(scope, login, await self.form(scope, receive, ctx))
        self.state.flows.finish(flow)
        grant = self.state.grants.by_user_code(flow.user_code)
        if grant is None or flow.identity is None:
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
        self.state.grants.approve(grant, Approval(flow.identity, key.id, flow.idp_refresh_token))
        log.info("login: %s approved a device sign-in (key %s)", _who(flow.identity), key.id)
        await _page(response, 200, pages.signed_in(_who(flow.identity)), login,
                    [(b"set-cookie", _cookie(FLOW_COOKIE, "", login, same_site="Lax", max_age=0))])

    async def device_deny(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        form = await self.form(scope, receive, ctx)
        if "flow" in form:
            flow = self._flow(scope, login, form)
            self.state.flows.finish(flow)
            grant = self.state.grants.by_user_code(flow.user_code)
        else:
            _check_csrf(scope, login, _cookies(scope).get(CSRF_COOKIE), form.get("csrf"))
            grant = self._grant_for_code(scope, form.get("user_code", ""))
        if grant is not None:
            self.state.grants.deny(grant)
        log.info("login: a device sign-in was denied in the browser")
        await _page(response, 200, pages.denied(), login)

    # With the session ---------------------------------------------------------------------------

    async def managed_settings(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        session = ctx.key.session if ctx.key is not None else None
        policy = login.policies.select(session.identity.groups if session is not None else ())
        if policy is None:
            raise NotFound("no managed settings policy applies to you")  # Claude Code: "no policy"
        headers = [(b"etag", policy.etag.encode()), (b"cache-control", b"no-cache"), (b"vary", b"User-Agent")]
        if policy.etag in _etags(_header(scope, b"if-none-match")):
            await response.whole(304, headers)
            return
        await response.whole(200, [(b"content-type", b"application/json;charset=utf-8"),
                                   (b"content-length", str(len(policy.body)).encode()), *headers], policy.body)

    def _telemetry(self, signal: str) -> Handler:
        async def handler(scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
            login = self.settings(ctx)
            length = _header(scope, b"content-length")
            declared = int(length) if length is not None and length.isdigit() else None
            # Chunked bodies (no content-length, as 2.1.197 sends them) are read the same way.
            body = await read_body(receive, login.telemetry_max_body, declared)
            ctx.bytes_in = len(body)
            ctype = (_header(scope, b"content-type") or b"application/x-protobuf").decode("latin-1")
            self.state.relay(login).accept(signal, body, ctype)
            await response.whole(200, [(b"content-length", b"0")])

        return handler


# Small helpers ----------------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _who(identity: Identity) -> str:
    return identity.email or identity.name or identity.sub


def _random() -> str:
    return secrets.token_urlsafe(24)


def _cookies(scope: Scope) -> dict[str, str]:
    raw = _header(scope, b"cookie")
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


def _check_csrf(scope: Scope, login: LoginSettings, expected: str | None, given: str | None) -> None:
    """A form post must come from our own page: same-origin headers when the browser sends them,
    and the token of the page it was served with (double submit / bound to the flow)."""
    origin = _header(scope, b"origin")
    site = _header(scope, b"sec-fetch-site")
    if site is not None:  # modern browsers: the most precise signal
        cross = site not in (b"same-origin", b"none")
    else:
        cross = origin is not None and origin not in (b"null", login.public_url.encode())
    if cross or expected is None or not same_secret(given, expected):
        log.warning("login: a form post failed the CSRF check (from %s)", _client_ip(scope))
        raise PageError("Request blocked", "This request came from another site or an old page and was "
                        "blocked. Start again from Claude Code.", status=403)


def _etags(header: bytes | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.decode("latin-1").split(",")}


async def _json_reply(response: Response, status: int, body: dict[str, Any]) -> None:
    raw = _json.encode(body)
    await response.whole(status, [(b"content-type", b"application/json"),
                                  (b"content-length", str(len(raw)).encode()), *_NO_STORE], raw)


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
        (b"referrer-policy", b"same-origin"), *_NO_STORE, *(extra or []),
    ]
    await response.whole(status, headers, body)


__all__ = ["LoginEndpoints", "LoginState"]
