"""What the login endpoints share: the state that outlives a reload, the handlers' base
(the ``login:`` settings of the request's runtime, bounded form and query parsing) and small
HTTP helpers. ``server/login.py`` (the CLI's leg, managed settings, telemetry) and
``server/login_browser.py`` (the verification pages) build on it."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from ccgate.errors import InvalidRequest, NotFound
from ccgate.login.accounts import DeveloperKeys
from ccgate.login.browser import Flows
from ccgate.login.devicecode import DeviceGrants
from ccgate.login.oidc import OidcClient
from ccgate.login.settings import LoginSettings
from ccgate.login.telemetry import TelemetryRelay
from ccgate.login.tokens import Identity, Revocations, SessionTokens
from ccgate.routing.clock import Clock
from ccgate.server.asgi import Receive, Scope, read_body
from ccgate.server.login_state import Attempts, DeviceStore, FamilyStore, FlowStore
from ccgate.server.response import Response
from ccgate.shared import KV

if TYPE_CHECKING:
    from ccgate.server.app import Context, Gateway

log = logging.getLogger("ccgate.login")
_json = msgspec.json.Encoder()

MAX_FORM = 16 * 1024
ATTEMPT_WINDOW = 600.0
CODE_ATTEMPTS = 20  # user-code entries per client address per window
BAD_DEVICE_CODES = 60  # unknown device codes at the token endpoint per address per window
NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]

Handler = Callable[[Scope, Receive, Response, "Context"], Awaitable[None]]


class LoginState:
    """Everything of the login flow that survives a reload. Device codes, browser flows,
    refresh-token families and attempt counters are records in ``kv`` (server/login_state.py):
    this process's memory, or the store every process of the gateway shares."""

    def __init__(self, clock: Clock, keys: DeveloperKeys | None, revoked: Revocations, kv: KV) -> None:
        now = clock.time  # wall time: records are compared by other processes, other machines
        self.kv = kv
        self.grants = DeviceStore(kv, DeviceGrants(now))
        self.flows = FlowStore(kv, Flows(now), "login:flow")
        self.revoked = revoked  # access-token ids (shared with ClientAuth)
        self.families = FamilyStore(kv, now)
        self.device_limiter = Attempts(kv, "login:attempts:device", 30, ATTEMPT_WINDOW)
        self.code_limiter = Attempts(kv, "login:attempts:code", CODE_ATTEMPTS, ATTEMPT_WINDOW)
        self.bad_device_limiter = Attempts(kv, "login:attempts:bad-device", BAD_DEVICE_CODES, ATTEMPT_WINDOW)
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


class LoginHandlers:
    """The base of the login endpoints: the gateway, the shared state, request helpers."""

    def __init__(self, gateway: Gateway, state: LoginState) -> None:
        self.gateway = gateway
        self.state = state

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
        length = header(scope, b"content-length")
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


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def who(identity: Identity) -> str:
    return identity.email or identity.name or identity.sub


def random_token() -> str:
    return secrets.token_urlsafe(24)


async def json_reply(response: Response, status: int, body: dict[str, Any], *, no_store: bool = True) -> None:
    """JSON; token-endpoint answers carry ``Cache-Control: no-store`` (RFC 6749 §5.1)."""
    raw = _json.encode(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await response.whole(status, [*headers, *NO_STORE] if no_store else headers, raw)
