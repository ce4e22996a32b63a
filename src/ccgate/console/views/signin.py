"""Signing in and out: the admin key form, the one-time link, sign-out (the identity provider:
``views/idp.py``)."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from ccgate.console.idp import display_name, offered
from ccgate.console.render import render
from ccgate.console.web import COOKIE, cookie_header, html, redirect
from ccgate.errors import PermissionDenied

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View

HOME = "/console/overview"


async def root(call: Call) -> None:
    await redirect(call.response, HOME if call.session is not None else "/console/signin")


async def signin_page(call: Call, *, error: str | None = None, status: int = 200) -> None:
    console = call.console
    settings = console.settings
    login = console.gateway.runtime.loaded.login
    idp = display_name(login, settings) if login is not None and offered(login, settings) else None
    body = render("signin.html", error=error, admin_key=console.admin_digest is not None,
                  link_allowed=console.link_allowed, idp=idp, csrf="", active="")
    await html(call.response, body, status=status)


async def show_signin(call: Call) -> None:
    if call.session is not None:
        await redirect(call.response, HOME)
        return
    await signin_page(call)


async def sign_in(call: Call) -> None:
    req, console = call.req, call.console
    if not req.same_origin(call.console.public_origin):
        raise PermissionDenied("cross-origin sign-in refused: the Origin is not this gateway")
    await req.read_form()
    digest = console.admin_digest
    if digest is None:
        await signin_page(call, status=403, error="This gateway has no admin key, so the key cannot sign "
                          "you in. Use the one-time link ccgate serve printed, or configure server.admin.key.")
        return
    who = client_address(call)
    if not await console.sessions.may_try(who):
        await signin_page(call, status=429, error="Too many wrong keys: wait a minute and try again.")
        return
    presented = req.field("admin_key").encode()
    if not presented or not hmac.compare_digest(hashlib.sha256(presented).digest(), digest):
        await console.sessions.failed(who)
        await signin_page(call, status=401, error="That is not the admin key.")
        return
    await _start_session(call, digest)


def client_address(call: Call) -> str:
    """The client's address as the server saw it (``proxy_headers`` is off: not a header)."""
    client = call.req.scope.get("client")
    return str(client[0]) if client else "-"


async def sign_in_with_link(call: Call) -> None:
    console = call.console
    if not console.link_allowed or not await console.sessions.redeem_link(call.req.query.get("token")):
        await signin_page(call, status=401, error="This sign-in link is not valid or was already used. "
                          "Restart ccgate serve for a new one, or configure an admin key.")
        return
    await _start_session(call, None)


async def _start_session(call: Call, digest: bytes | None) -> None:
    token, _ = await call.console.sessions.create(digest)
    await redirect(call.response, HOME, extra=[cookie_header(token, https=call.req.https)])


async def sign_out(call: Call) -> None:
    await call.console.sessions.end(call.req.cookie(COOKIE))
    cleared = cookie_header("", https=call.req.https, clear=True)
    await redirect(call.response, "/console/signin", extra=[cleared])


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {
    "": {"GET": (root, "public")},
    "signin": {"GET": (show_signin, "public"), "POST": (sign_in, "public")},
    "signin/link": {"GET": (sign_in_with_link, "public")},
    "signout": {"POST": (sign_out, "data")},
}
