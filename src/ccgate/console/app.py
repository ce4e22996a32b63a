"""The console as one handler under ``/console``: its routes, and who may use them.

Every path needs a signed-in session except the sign-in pages and the vendored assets. Without
one, a page (GET) redirects to the sign-in page and anything else (a fragment, the CSV, a form
post) is refused with 401, so no data leaves without a session. Every state change (POST) must
also carry the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``) and, when
the browser sends one, an Origin naming this gateway; otherwise 403.

Sessions (``sessions``, ``state``) are records in the gateway's short-lived store: this
process's memory, or the store every process of the gateway shares (Redis, the workers' hub).
When that store does not answer, every console request gets a 503 page saying so (counted in
``ccgate_shared_unavailable_total{feature="sessions"}``), never a 500.

Sessions are created by the admin key (``server.admin.key`` / ``$CCGATE_ADMIN_KEY``) or, for a
gateway on a loopback address without an admin key, by the one-time link ``ccgate serve`` prints
(``issue_link``), or through the identity provider of the ``login:`` section for the people
``server.console.admin_groups``/``admin_emails`` name (``views/idp.py``). Without any of these no session can
be created, so the console serves nothing but its sign-in page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ccgate.console.sessions import Session, Sessions, csrf_ok
from ccgate.console.state import ConsoleState
from ccgate.console.web import COOKIE, Request, redirect
from ccgate.errors import AuthenticationFailed, MethodNotAllowed, NotFound, PageError, PermissionDenied
from ccgate.login.browser import Flows
from ccgate.server.asgi import Receive, Scope
from ccgate.server.listen import is_loopback
from ccgate.server.login_state import Attempts, FlowStore
from ccgate.server.response import Response
from ccgate.shared import SharedUnavailable

if TYPE_CHECKING:
    from ccgate.server.app import Context, Gateway

log = logging.getLogger("ccgate.console")
PREFIX = "/console"
IDP_STARTS = 20  # identity-provider sign-ins one address may start per 10 minutes
# public: served to anyone; page: a page (without a session: redirected to sign in); data: a
# fragment, a download or a change (without a session: 401).
Access = Literal["public", "page", "data"]


@dataclass
class Call:
    """One console request: what a view gets."""

    req: Request
    response: Response
    session: Session | None
    args: tuple[str, ...]  # the path's variable parts (a key id, a provider name)
    console: Console

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session is not None else ""


View = Callable[[Call], Awaitable[None]]


class Console:
    def __init__(self, gateway: Gateway, *, clock: Callable[[], float] = time.time) -> None:
        from ccgate.console.views import all_routes

        settings = gateway.runtime.config.server.console
        self.settings = settings  # server.console is read at start (a reload does not change it)
        self.gateway = gateway
        # Wall-clock time (not monotonic): a session's record is read by other processes too.
        rules = Sessions(idle=settings.idle_minutes * 60, max_age=settings.max_hours * 3600, clock=clock)
        self.sessions = ConsoleState(gateway.kv, rules)
        # Sign-ins through the identity provider in progress (views/idp.py), as /login keeps them.
        self.flows = FlowStore(gateway.kv, Flows(clock), "console:flow")
        self.idp_starts = Attempts(gateway.kv, "console:attempts:idp", IDP_STARTS, 600.0)  # per address
        gateway.on_startup.append(self._publish_link)
        # pattern ("keys/*/revoke") -> method -> (view, access)
        self.routes: dict[str, dict[str, tuple[View, Access]]] = all_routes()

    # Who may sign in ----------------------------------------------------------------------

    @property
    def admin_digest(self) -> bytes | None:
        admin = self.gateway.admin
        return admin.digest if admin is not None else None

    @property
    def public_origin(self) -> str | None:
        """``login.public_url``: the origin browsers use when a TLS terminator is in front."""
        login = self.gateway.runtime.loaded.login
        return login.public_url if login is not None else None

    @property
    def link_allowed(self) -> bool:
        """The one-time link signs in only a loopback gateway without an admin key."""
        return self.admin_digest is None and is_loopback(self.gateway.listen_host)

    def issue_link(self, base_url: str) -> str | None:
        """The sign-in URL ``ccgate serve`` prints, or None when the admin key is the way in."""
        if not self.link_allowed:
            return None
        return f"{base_url}{PREFIX}/signin/link?token={self.sessions.issue_link()}"

    def _publish_link(self) -> None:
        """At start-up: store the link ``ccgate serve`` printed before the loop ran."""

        async def publish() -> None:
            try:
                await self.sessions.publish_link()
            except SharedUnavailable as exc:  # stored when it is first presented, then
                log.warning("console: cannot store the sign-in link yet: %s", exc)

        asyncio.get_running_loop().create_task(publish())

    # Dispatch ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        try:
            await self._serve(scope, receive, response, ctx)
        except SharedUnavailable as exc:
            self.gateway.metrics.shared_unavailable("sessions")
            log.warning("console: the shared state is not answering: %s", exc)
            raise PageError("Console unavailable", "The gateway cannot reach its shared state (where console "
                            "sessions are kept) right now. Try again in a minute.", status=503) from None

    async def _serve(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        path: str = scope["path"]
        subpath = path[len(PREFIX):].strip("/")
        req = Request.of(scope, receive, subpath)
        view, access, args = self._match(req.method, subpath)
        session = await self.sessions.get(req.cookie(COOKIE), self.admin_digest)
        if access != "public":
            if session is None:
                if access == "page" and req.method == "GET" and not req.htmx:
                    await redirect(response, f"{PREFIX}/signin")
                    return
                raise AuthenticationFailed("sign in to the console first (your session is missing or expired)")
            ctx.client = "console"
            if req.method == "POST":
                await self._check_change(req, session)
        await view(Call(req, response, session, args, self))

    async def _check_change(self, req: Request, session: Session) -> None:
        if not req.same_origin(self.public_origin):
            raise PermissionDenied("cross-origin change refused: the Origin is not this gateway")
        await req.read_form()
        presented = req.form.get("csrf") or req.headers.get(b"x-csrf-token", b"").decode("latin-1")
        if not csrf_ok(session, presented):
            raise PermissionDenied("missing or wrong CSRF token: reload the page and try again")

    def _match(self, method: str, subpath: str) -> tuple[View, Access, tuple[str, ...]]:
        parts = subpath.split("/") if subpath else []
        for pattern, methods in self.routes.items():
            want = pattern.split("/") if pattern else []
            if len(want) != len(parts) or any(w not in ("*", p) for w, p in zip(want, parts, strict=True)):
                continue
            if not all(parts):
                continue
            entry = methods.get(method)
            if entry is None:
                raise MethodNotAllowed(f"method {method} is not allowed on {PREFIX}/{subpath}; "
                                       f"use {', '.join(sorted(methods))}")
            args = tuple(p for w, p in zip(want, parts, strict=True) if w == "*")
            return entry[0], entry[1], args
        raise NotFound(f"no such console page: {PREFIX}/{subpath}")
