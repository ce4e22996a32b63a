"""Console sign-in through the identity provider of the ``login:`` section (docs/console.md).

``GET /console/signin/idp`` starts an OIDC authorization-code flow (PKCE S256, ``state``,
``nonce``; the ``Flow``/``Flows`` of ``ccgate.login.browser``, kept as ``console:flow:`` records
by ``server/login_state.py`` so any process of the gateway can take the callback), binds it to this browser with
an HttpOnly cookie and sends the browser to the IdP. The IdP returns it to
``GET /console/signin/callback``: the flow is found by ``state`` and only with that cookie,
the code is exchanged and the ``id_token`` checked by ``ccgate.login.oidc`` (the same client
as Claude Code's /login). Someone not in ``admin_groups``/``admin_emails`` gets a refusal page.
Everyone else gets a "Continue" form, and its CSRF-checked post (``POST /console/signin/idp``)
creates the session: arriving from the IdP is a cross-site navigation, in which the browser
would withhold the SameSite=Strict session cookie, so the session starts on a same-site post.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ccgate.console.idp import CALLBACK, display_name, may_use_console, offered, who
from ccgate.console.render import render
from ccgate.console.views.signin import HOME, client_address, signin_page
from ccgate.console.web import cookie_header, html, redirect
from ccgate.errors import PermissionDenied
from ccgate.login.browser import FLOW_TTL, Flow, matches
from ccgate.login.oidc import OidcClient, OidcError, authorize_url
from ccgate.login.settings import LoginSettings

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View

log = logging.getLogger("ccgate.console")
FLOW_COOKIE = "ccgate_console_flow"
START = "/console/signin/idp"


def _login(call: Call) -> LoginSettings | None:
    gateway = call.console.gateway
    login = gateway.runtime.loaded.login
    return login if offered(login, call.console.settings) else None


def _oidc(call: Call, login: LoginSettings) -> OidcClient:
    gateway = call.console.gateway
    return gateway.login.state.oidc(login, gateway.env)  # shared with /login: one discovery cache


def _flow_cookie(value: str, login: LoginSettings, *, clear: bool = False) -> tuple[bytes, bytes]:
    # Lax, not Strict: the browser must send it on the IdP's cross-site redirect back to us.
    parts = [f"{FLOW_COOKIE}={'' if clear else value}", "Path=/console/signin", "HttpOnly", "SameSite=Lax",
             f"Max-Age={0 if clear else FLOW_TTL}"]
    if login.secure_cookies:
        parts.append("Secure")
    return (b"set-cookie", "; ".join(parts).encode("latin-1"))


async def _refuse(call: Call, status: int, error: str) -> None:
    await signin_page(call, status=status, error=error)


async def start(call: Call) -> None:
    login = _login(call)
    if login is None:
        await _refuse(call, 404, "Signing in through the identity provider is not set up on this gateway: "
                      "it needs a login: section and server.console.admin_groups or admin_emails.")
        return
    host = call.req.headers.get(b"host", b"").decode("latin-1").lower()
    if host != urlsplit(login.public_url).netloc and call.req.query.get("moved") != "1":
        # The IdP returns the browser to public_url: start there, so the flow cookie goes with it.
        # Once only: behind a proxy that rewrites Host this would never match.
        await _to(call, login.url(f"{START}?moved=1"))
        return
    if not await call.console.idp_starts.hit(client_address(call)):
        await _refuse(call, 503, "Too many sign-ins were started: try again in a few minutes.")
        return
    started = await call.console.flows.start("console")
    try:
        disc = await _oidc(call, login).discovery()
    except OidcError as exc:
        await call.console.flows.finish(started.state)
        log.warning("console: identity provider unavailable: %s", exc)
        await _refuse(call, 502, "The identity provider cannot be reached from the gateway. Sign in with "
                      "the admin key, or ask your platform team.")
        return
    target = authorize_url(disc, login.oidc, login.url(CALLBACK), started.state, started.flow.nonce,
                           started.challenge)
    await _to(call, target, [_flow_cookie(started.browser, login)])


async def _to(call: Call, location: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """302 to an absolute URL (the IdP, or this page on public_url)."""
    await call.response.whole(302, [(b"location", location.encode()), (b"content-length", b"0"),
                                    (b"cache-control", b"no-store"), (b"referrer-policy", b"same-origin"),
                                    *(extra or [])])


async def callback(call: Call) -> None:
    login = _login(call)
    if login is None:
        await _refuse(call, 404, "Signing in through the identity provider is not set up on this gateway.")
        return
    params = call.req.query
    state = params.get("state", "")
    flow = await call.console.flows.get(state, call.req.cookie(FLOW_COOKIE))
    # Taking it commits to this answer: a replayed callback, here or at another process, finds nothing.
    if flow is None or flow.identity is not None or not await call.console.flows.take(state):
        log.warning("console: an identity-provider callback without a matching sign-in was refused")
        await _refuse(call, 400, "This sign-in was not started in this browser, was already used or has "
                      "expired. Start again below.")
        return
    if "error" in params:
        await _refuse(call, 403, f"The identity provider did not sign you in ({params['error'][:64]}).")
        return
    oidc = _oidc(call, login)
    try:
        disc = await oidc.discovery()
        if "iss" in params and params["iss"].rstrip("/") != disc.issuer.rstrip("/"):
            raise OidcError("the sign-in answer came from another identity provider")  # RFC 9207
        tokens = await oidc.exchange(params.get("code", ""), flow.verifier, login.url(CALLBACK))
        assert tokens.id_token is not None
        identity = await oidc.identity(tokens.id_token, flow.nonce)
    except OidcError as exc:
        log.warning("console: identity-provider sign-in refused: %s", exc)
        await _refuse(call, 403, f"Sign-in refused: {exc}.")
        return
    if not may_use_console(identity, call.console.settings):
        log.warning("console: %s is not a console administrator; sign-in refused", who(identity))
        await _refuse(call, 403, f"{who(identity)} is signed in at the identity provider but may not use "
                      "this console: it is open to the groups in server.console.admin_groups and the "
                      "addresses in server.console.admin_emails. Ask your gateway's administrator.")
        return
    csrf = call.console.flows.rules.answered(flow, identity, None)  # the IdP's refresh token: not needed
    await call.console.flows.save(state, flow)
    body = render("signin_continue.html", who=who(identity), flow=state, csrf=csrf,
                  idp=display_name(login, call.console.settings))
    await html(call.response, body)


async def finish(call: Call) -> None:
    """The "Continue" post: same origin, this browser's flow, the flow's CSRF token."""
    req = call.req
    login = _login(call)
    if not req.same_origin(call.console.public_origin):
        raise PermissionDenied("cross-origin sign-in refused: the Origin is not this gateway")
    await req.read_form()
    state = req.field("flow")
    flow = await call.console.flows.get(state, req.cookie(FLOW_COOKIE))
    signed_in = flow is not None and flow.identity is not None and matches(req.field("csrf"), flow.csrf_digest)
    if login is None or flow is None or not signed_in or not await call.console.flows.take(state):
        log.warning("console: a sign-in continuation without its flow or CSRF token was refused")
        await _refuse(call, 403, "This sign-in expired or did not come from this browser. Start again below.")
        return
    await _session(call, login, flow)


async def _session(call: Call, login: LoginSettings, flow: Flow) -> None:
    assert flow.identity is not None
    token, _ = await call.console.sessions.create(None, flow.identity)
    log.info("console: %s signed in through the identity provider", who(flow.identity))
    extra = [cookie_header(token, https=call.req.https), _flow_cookie("", login, clear=True)]
    await redirect(call.response, HOME, extra=extra)


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {
    "signin/idp": {"GET": (start, "public"), "POST": (finish, "public")},
    "signin/callback": {"GET": (callback, "public")},
}
