"""Claude Code's /login endpoints on the gateway: the HTTP side of ``ccgate.login``.

``LoginEndpoints.routes()`` is the one place these routes are added to the gateway's table
(docs/login.md#endpoints):

* ``GET /.well-known/oauth-authorization-server`` - where the CLI finds the endpoints;
* ``POST /oauth/device_authorization`` and ``POST /oauth/token`` (device and refresh grants),
  ``POST /oauth/revoke`` (RFC 7009) - the CLI's leg; OAuth error bodies via ``OAuthError``;
* ``GET/POST /device``, ``GET /oauth/callback``, ``POST /device/approve``, ``POST /device/deny``
  - the browser's leg through the identity provider (``server/login_browser.py``);
* ``GET /managed/settings`` and ``POST /v1/{metrics,logs,traces}`` - with the session JWT.

State that must outlive a config reload (pending device grants, browser flows, revoked token
ids, attempt counters) lives in ``LoginState`` (``server/login_http.py``) on the gateway, the
records of it in the gateway's short-lived store (server/login_state.py) so that any process
may answer the next request; what the config decides is read from ``ctx.rt.loaded.login`` per
request. When that store does not answer (``SharedUnavailable``) the CLI's endpoints answer
503 ``temporarily_unavailable`` (Claude Code retries a refresh later and keeps its tokens) and
the pages a 503 page; counted in ``ccgate_shared_unavailable_total{feature="login"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ccgate.errors import NotFound, OAuthError, PageError
from ccgate.login.accounts import DeveloperKeys
from ccgate.login.oidc import IdentityRefused, OidcError, RefreshRefused
from ccgate.login.settings import LoginSettings
from ccgate.login.telemetry import SIGNALS
from ccgate.login.tokens import Identity, RefreshGrant, Revocations, Session, SessionTokens, TokenInvalid
from ccgate.server.asgi import Receive, Scope, read_body
from ccgate.server.login_browser import BrowserLeg
from ccgate.server.login_http import (
    NO_STORE,
    Handler,
    LoginHandlers,
    LoginState,
    client_ip,
    header,
    json_reply,
    log,
    random_token,
    who,
)
from ccgate.server.response import Response
from ccgate.shared import SharedUnavailable

if TYPE_CHECKING:
    from ccgate.server.app import Context, Gateway

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class LoginEndpoints(LoginHandlers):
    def __init__(self, gateway: Gateway, revoked: Revocations) -> None:
        store = gateway.store
        keys = DeveloperKeys(store, gateway.key_cache) if store is not None else None
        super().__init__(gateway, LoginState(gateway.seams.clock, keys, revoked, gateway.kv))
        self.browser = BrowserLeg(gateway, self.state)

    def routes(self) -> dict[tuple[str, str], tuple[str, Handler, bool]]:
        table: dict[tuple[str, str], tuple[str, Handler, bool]] = {
            ("GET", "/.well-known/oauth-authorization-server"): ("login", self.discovery, False),
            ("POST", "/oauth/device_authorization"): ("login", self._kv(self.device_authorization), False),
            ("POST", "/oauth/token"): ("login", self._kv(self.token), False),
            ("POST", "/oauth/revoke"): ("login", self._kv(self.revoke), False),
            ("GET", "/device"): ("login_page", self.browser.device_page, False),
            ("POST", "/device"): ("login_page", self._page(self.browser.device_submit), False),
            ("POST", "/device/deny"): ("login_page", self._page(self.browser.device_deny), False),
            ("POST", "/device/approve"): ("login_page", self._page(self.browser.device_approve), False),
            ("GET", "/oauth/callback"): ("login_page", self._page(self.browser.callback), False),
            ("GET", "/managed/settings"): ("managed_settings", self.managed_settings, True),
        }
        for signal in SIGNALS:
            table[("POST", f"/v1/{signal}")] = ("telemetry", self._telemetry(signal), True)
        return table

    def _kv(self, handler: Handler, *, page: bool = False) -> Handler:
        """``handler`` with the records' store down answered as 503, never 500."""

        async def guarded(scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
            try:
                await handler(scope, receive, response, ctx)
            except SharedUnavailable as exc:
                self.gateway.metrics.shared_unavailable("login")
                log.warning("login: the shared state is not answering: %s", exc)
                if page:
                    raise PageError("Sign-in is unavailable", "The gateway cannot reach its shared state "
                                    "right now. Try again in a minute.", status=503) from None
                raise OAuthError("temporarily_unavailable", "the gateway's shared state is not answering; "
                                 "retry shortly", status=503) from None

        return guarded

    def _page(self, handler: Handler) -> Handler:
        return self._kv(handler, page=True)

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
        await json_reply(response, 200, body, no_store=False)

    async def device_authorization(self, scope: Scope, receive: Receive, response: Response,
                                   ctx: Context) -> None:
        login = self.settings(ctx)
        await self.form(scope, receive, ctx)  # surface=claude_code, or empty (2.1.197): ignored
        limiter = self.state.device_limiter
        limiter.limit = login.device_rate_limit
        if not await limiter.hit(client_ip(scope)):
            raise OAuthError("slow_down", "too many sign-in attempts from this address; wait a few minutes")
        device_code, grant = await self.state.grants.start()
        log.info("login: device authorization started from %s", client_ip(scope))
        verification = login.url("/device")
        body = {
            "device_code": device_code, "user_code": grant.user_code, "verification_uri": verification,
            "verification_uri_complete": f"{verification}?user_code={grant.user_code}",
            "expires_in": self.state.grants.ttl, "interval": grant.interval,
        }
        await json_reply(response, 200, body)

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
        result = await self.state.grants.poll(device_code)
        if isinstance(result, str):
            if result == "invalid_grant" and not await self.state.bad_device_limiter.hit(client_ip(scope)):
                raise OAuthError("slow_down", "too many unknown device codes from this address")
            raise OAuthError(result)
        tokens = self.tokens(ctx)
        access, expires_in = tokens.mint_access(result.identity, result.key_id)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in}
        if result.idp_refresh_token:
            body["refresh_token"] = await self._mint_refresh(tokens, result.identity, result.key_id,
                                                             result.idp_refresh_token, random_token(), 0)
        if result.identity.email:
            body["email"] = result.identity.email  # Claude Code asks the developer to confirm it
        log.info("login: session issued to %s (key %s)", who(result.identity), result.key_id)
        await json_reply(response, 200, body)

    async def _refresh_grant(self, response: Response, ctx: Context, login: LoginSettings, token: str) -> None:
        tokens = self.tokens(ctx)
        try:
            grant = tokens.verify_refresh(token)
        except TokenInvalid:
            raise OAuthError("invalid_grant", "unknown or expired refresh token", status=401) from None
        keys = self.state.keys
        key = keys.active(grant.key_id) if keys is not None else None
        if not await self.state.families.accepts(grant):
            log.warning("login: an old or revoked refresh token was presented for %s", who(grant.identity))
            raise OAuthError("invalid_grant", "this refresh token was already used or revoked", status=401)
        if key is None:
            raise OAuthError("invalid_grant", "this session was revoked; sign in again", status=401)
        oidc = self.state.oidc(login, self.gateway.env)
        try:
            fresh = await oidc.refresh(grant.idp_refresh_token)
            identity = await oidc.identity(fresh.id_token, None) if fresh.id_token else grant.identity
        except (RefreshRefused, IdentityRefused) as exc:
            log.info("login: refresh refused for %s: %s", who(grant.identity), exc)
            raise OAuthError("invalid_grant", "the identity provider ended this session", status=401) from None
        except OidcError as exc:  # unreachable or broken IdP: the CLI retries later
            log.warning("login: refresh failed: %s", exc)
            raise OAuthError("temporarily_unavailable", "the identity provider is unavailable",
                             status=503) from None
        access, expires_in = tokens.mint_access(identity, key.id)
        idp_token = fresh.refresh_token or grant.idp_refresh_token
        refresh = await self._mint_refresh(tokens, identity, key.id, idp_token, grant.family, grant.seq)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in,
                                "refresh_token": refresh}
        log.info("login: session refreshed for %s (key %s)", who(identity), key.id)
        await json_reply(response, 200, body)

    async def _mint_refresh(self, tokens: SessionTokens, identity: Identity, key_id: str, idp_token: str,
                            family: str, presented: int) -> str:
        """A refresh token of ``family`` after the one numbered ``presented`` (0: a sign-in)."""
        seq = await self.state.families.issue(family, presented)
        return tokens.mint_refresh(identity, key_id, idp_token, family, seq)[0]

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
                await self.state.families.end(found.family, found.exp)
            else:
                self.state.revoked.revoke(found.jti, found.exp)
            log.info("login: token revoked for %s (key %s)", who(found.identity), found.key_id)
            break
        await response.whole(200, [(b"content-length", b"0"), *NO_STORE])

    async def managed_settings(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        login = self.settings(ctx)
        session = ctx.key.session if ctx.key is not None else None
        policy = login.policies.select(session.identity.groups if session is not None else ())
        if policy is None:
            raise NotFound("no managed settings policy applies to you")  # Claude Code: "no policy"
        headers = [(b"etag", policy.etag.encode()), (b"cache-control", b"no-cache"), (b"vary", b"User-Agent")]
        if policy.etag in _etags(header(scope, b"if-none-match")):
            await response.whole(304, headers)
            return
        await response.whole(200, [(b"content-type", b"application/json;charset=utf-8"),
                                   (b"content-length", str(len(policy.body)).encode()), *headers], policy.body)

    def _telemetry(self, signal: str) -> Handler:
        async def handler(scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
            login = self.settings(ctx)
            length = header(scope, b"content-length")
            declared = int(length) if length is not None and length.isdigit() else None
            # Chunked bodies (no content-length, as 2.1.197 sends them) are read the same way.
            body = await read_body(receive, login.telemetry_max_body, declared)
            ctx.bytes_in = len(body)
            ctype = (header(scope, b"content-type") or b"application/x-protobuf").decode("latin-1")
            self.state.relay(login).accept(signal, body, ctype)
            await response.whole(200, [(b"content-length", b"0")])

        return handler


def _etags(header: bytes | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.decode("latin-1").split(",")}


__all__ = ["LoginEndpoints", "LoginState"]
