"""The admin HTTP API: the ``ccgate keys`` / ``ccgate usage`` operations over HTTP, and the
running config (``/admin/config/reload``, ``/admin/routes``: ``server.admin_config``).

Enabled only when an admin key is configured; otherwise every ``/admin/...`` path is 404,
as if it did not exist. Every endpoint except the OpenAPI document needs the admin key as
``Authorization: Bearer`` or ``x-api-key``; it is compared by SHA-256 digest with
``hmac.compare_digest``. Issued client keys are never admin keys.

Handlers have the gateway's signature ``(scope, receive, response, ctx)``
and raise ``GatewayError`` subclasses, so errors leave as the Anthropic envelope. Store calls
run in a worker thread: a key write may wait on SQLite's lock (busy_timeout), and that wait
must not stall the event loop that is relaying other requests. Changes are applied to the
in-process ``KeyCache`` at once; other processes see them at their next poll (~1 s).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar, cast
from urllib.parse import parse_qsl

import msgspec

from ccgate import __version__
from ccgate.config.secrets import Secret
from ccgate.errors import (
    AuthenticationFailed,
    Conflict,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
)
from ccgate.server.admin_config import ConfigAdmin, ConnectBody, GatewayControl, TestBody
from ccgate.server.asgi import Receive, Scope, read_body
from ccgate.server.auth import presented_token
from ccgate.server.openapi import openapi_document
from ccgate.server.response import Response
from ccgate.store import (
    GROUP_BY,
    GroupBy,
    InvalidInput,
    IssuedKey,
    KeyCache,
    KeyConflict,
    KeyManager,
    KeyNotFound,
    Store,
    StoreError,
    StoreUnavailable,
    key_summary,
    parse_duration,
)
from ccgate.store.keys import UNSET
from ccgate.store.report import usage_report

log = logging.getLogger("ccgate.admin")

ADMIN_KEY_ENV = "CCGATE_ADMIN_KEY"
MIN_ADMIN_KEY_LENGTH = 16
PREFIX = "/admin/"
_KEYS = "/admin/keys"
_PROVIDERS = "/admin/providers"
_OPENAPI = "/admin/openapi.json"  # the one admin path served without the admin key
_MAX_BODY = 64 * 1024
_json = msgspec.json.Encoder()

P = ParamSpec("P")
T = TypeVar("T")


class AdminContext(Protocol):
    """What the admin handlers use of the gateway's per-request ``Context``."""

    request_id: str
    client: str | None
    bytes_in: int


AdminHandler = Callable[[Scope, Receive, Response, AdminContext], Awaitable[None]]


class CreateKeyBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    models: list[str] = []
    # JSON has one number type: 60.0 is the integer 60 (as JSON Schema's "integer" says), 60.5 is not.
    rpm: int | float | None = None
    tpm: int | float | None = None
    expires: str | None = None
    budget_day: float | None = None
    budget_month: float | None = None

    def __post_init__(self) -> None:
        for field in ("rpm", "tpm"):
            value = getattr(self, field)
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(f"{field} must be a whole number, got {value}")
                setattr(self, field, int(value))


class UpdateKeyBody(msgspec.Struct, forbid_unknown_fields=True):
    # UNSET (left out of the body) keeps a budget; null removes it.
    budget_day: float | msgspec.UnsetType | None = msgspec.UNSET
    budget_month: float | msgspec.UnsetType | None = msgspec.UNSET


class RotateBody(msgspec.Struct, forbid_unknown_fields=True):
    grace: str | None = None


def admin_digest(admin_key: str | Secret | None) -> bytes | None:
    """The SHA-256 the admin key is checked against; ValueError (a safe message: the key is
    not shown) for a key too short to be one."""
    value = admin_key.value if isinstance(admin_key, Secret) else admin_key
    if not value:
        return None
    if len(value) < MIN_ADMIN_KEY_LENGTH:
        raise ValueError(
            f"the admin key is {len(value)} characters; use at least {MIN_ADMIN_KEY_LENGTH} random "
            f"characters (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return hashlib.sha256(value.encode()).digest()


def admin_key_from(configured: Secret | str | None, env: Mapping[str, str]) -> str | None:
    """The admin key: ``server.admin.key`` from the config, else ``$CCGATE_ADMIN_KEY``."""
    if isinstance(configured, Secret):
        return configured.value or None
    return configured or env.get(ADMIN_KEY_ENV) or None


class AdminApi:
    def __init__(
        self, store: Store, cache: KeyCache | None, admin_key: str | Secret | None, *,
        clock: Callable[[], float] = time.time, control: GatewayControl | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.keys = KeyManager(store, clock)
        self.clock = clock
        self._digest = admin_digest(admin_key)
        # The config side (reload, routes); None when the API runs without a gateway (tests).
        self.config = ConfigAdmin(control) if control is not None else None
        self._fixed: dict[str, dict[str, AdminHandler]] = {
            _KEYS: {"GET": self.list_keys, "POST": self.create_key},
            "/admin/usage": {"GET": self.usage},
            "/admin/config/reload": {"POST": self.reload_config},
            "/admin/routes": {"GET": self.routes_view},
            _PROVIDERS: {"GET": self.list_providers, "POST": self.connect_provider},
            _OPENAPI: {"GET": self.openapi},
        }

    def use_digest(self, digest: bytes | None) -> None:
        """Switch to a new admin key (a reload), as computed by ``admin_digest``."""
        self._digest = digest

    @property
    def enabled(self) -> bool:
        return self._digest is not None

    @property
    def digest(self) -> bytes | None:
        """SHA-256 of the admin key (None: none configured); the console signs in against it."""
        return self._digest

    # Routing -----------------------------------------------------------------------------

    def routes(self) -> dict[tuple[str, str], AdminHandler]:
        """Fixed-path routes, each already guarded by ``authorize``. Paths with a key in them
        (``/admin/keys/{key}...``) are served by ``dispatch``; wiring every ``/admin/`` path
        to ``dispatch`` covers both. Empty when the API is disabled."""
        if not self.enabled:
            return {}
        return {(method, path): self._guard(path, handler)
                for path, methods in self._fixed.items() for method, handler in methods.items()}

    async def dispatch(self, scope: Scope, receive: Receive, response: Response, ctx: AdminContext) -> None:
        """Serve any ``/admin/...`` request: 404 when disabled, 401 before anything else."""
        method: str = scope["method"]
        path: str = scope["path"]
        if not self.enabled:
            raise NotFound(f"no such endpoint: {method} {path}")
        if path != _OPENAPI:
            self.authorize(scope)  # before telling an anonymous caller which paths exist
            ctx.client = "admin"
        handler = self._match(method, path)
        await handler(scope, receive, response, ctx)

    def _match(self, method: str, path: str) -> AdminHandler:
        methods = self._fixed.get(path)
        if methods is None and path.startswith(_KEYS + "/"):
            methods = self._key_routes(path[len(_KEYS) + 1:])
        if methods is None and path.startswith(_PROVIDERS + "/"):
            methods = self._provider_routes(path[len(_PROVIDERS) + 1:])
        if methods is None:
            raise NotFound(f"no such endpoint: {method} {path}")
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            raise MethodNotAllowed(f"method {method} is not allowed on {path}; use {allowed}")
        return handler

    def _key_routes(self, rest: str) -> dict[str, AdminHandler] | None:
        routes = _named_routes(rest, {"": ("GET", self.get_key), "revoke": ("POST", self.revoke_key),
                                      "rotate": ("POST", self.rotate_key)})
        name, _, action = rest.partition("/")
        if routes is not None and not action:
            routes["PATCH"] = functools.partial(self.update_key, name)
        return routes

    def _provider_routes(self, rest: str) -> dict[str, AdminHandler] | None:
        return _named_routes(rest, {"": ("DELETE", self.remove_provider),
                                    "test": ("POST", self.test_provider),
                                    "models": ("GET", self.provider_models)})

    def _guard(self, path: str, handler: AdminHandler) -> AdminHandler:
        if path == _OPENAPI:
            return handler

        async def guarded(scope: Scope, receive: Receive, response: Response, ctx: AdminContext) -> None:
            self.authorize(scope)
            ctx.client = "admin"
            await handler(scope, receive, response, ctx)

        return guarded

    def authorize(self, scope: Scope) -> None:
        """Raise ``AuthenticationFailed`` unless the request carries the admin key."""
        if self._digest is None:
            raise NotFound(f"no such endpoint: {scope['method']} {scope['path']}")
        headers = dict(scope["headers"])
        token = presented_token(headers.get(b"x-api-key"), headers.get(b"authorization"))
        if not token:
            raise AuthenticationFailed(
                "missing admin credential: send the admin key (server.admin.key or CCGATE_ADMIN_KEY) "
                "as 'Authorization: Bearer' or x-api-key"
            )
        if not hmac.compare_digest(hashlib.sha256(token).digest(), self._digest):
            raise AuthenticationFailed("invalid admin credential")

    # Handlers ----------------------------------------------------------------------------

    async def list_keys(self, scope: Scope, receive: Receive, response: Response, ctx: AdminContext) -> None:
        keys = await self._call(self.keys.list_keys)
        now = self.clock()
        await _reply(response, 200, {"data": [key_summary(k, now) for k in keys]})

    async def create_key(self, scope: Scope, receive: Receive, response: Response,
                         ctx: AdminContext) -> None:
        body = _decode(await _read(scope, receive, ctx), CreateKeyBody, required=True)
        expires = _duration(body.expires, "expires")
        key, secret = await self._call(self.keys.create, body.name, models=body.models,
                                       rpm=_whole(body.rpm), tpm=_whole(body.tpm), expires_in=expires,
                                       budget_day=body.budget_day, budget_month=body.budget_month)
        self._applied(key)
        log.info("admin: created key %s (%s)", key.name, key.id)
        await _reply(response, 201, {"key": key_summary(key, self.clock()), "secret": secret})

    async def get_key(self, ref: str, scope: Scope, receive: Receive, response: Response,
                      ctx: AdminContext) -> None:
        key = await self._call(self.keys.resolve, ref)
        await _reply(response, 200, key_summary(key, self.clock()))

    async def update_key(self, ref: str, scope: Scope, receive: Receive, response: Response,
                         ctx: AdminContext) -> None:
        body = _decode(await _read(scope, receive, ctx), UpdateKeyBody, required=True)
        day = UNSET if body.budget_day is msgspec.UNSET else body.budget_day
        month = UNSET if body.budget_month is msgspec.UNSET else body.budget_month
        if day is UNSET and month is UNSET:
            raise InvalidRequest("request body: nothing to change; give budget_day and/or budget_month")
        key = await self._call(self.keys.set_budget, ref, day=day, month=month)
        self._applied(key)
        log.info("admin: updated budgets of key %s (%s)", key.name, key.id)
        await _reply(response, 200, key_summary(key, self.clock()))

    async def revoke_key(self, ref: str, scope: Scope, receive: Receive, response: Response,
                         ctx: AdminContext) -> None:
        await _read(scope, receive, ctx)  # no body expected; drain whatever came
        key = await self._call(self.keys.revoke, ref)
        self._applied(key)
        log.info("admin: revoked key %s (%s)", key.name, key.id)
        await _reply(response, 200, key_summary(key, self.clock()))

    async def rotate_key(self, ref: str, scope: Scope, receive: Receive, response: Response,
                         ctx: AdminContext) -> None:
        body = _decode(await _read(scope, receive, ctx), RotateBody, required=False)
        grace = _duration(body.grace, "grace")
        key, secret = await self._call(self.keys.rotate, ref, grace=grace)
        self._applied(key)
        log.info("admin: rotated key %s (%s)", key.name, key.id)
        await _reply(response, 200, {"key": key_summary(key, self.clock()), "secret": secret})

    async def usage(self, scope: Scope, receive: Receive, response: Response, ctx: AdminContext) -> None:
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        unknown = sorted(set(params) - {"since", "by"})
        if unknown:
            raise InvalidRequest(f"unknown query parameter {unknown[0]!r}; use since and by")
        by_text = params.get("by", "key")
        if by_text not in GROUP_BY:
            raise InvalidRequest(f"by: {by_text!r} is not one of {', '.join(GROUP_BY)}")
        by = cast(GroupBy, by_text)
        since_text = params.get("since", "7d")
        since = None if since_text == "all" else self.clock() - (_duration(since_text, "since") or 0)
        groups = await self._call(self.store.usage_summary, since=since, by=by)
        await _reply(response, 200, usage_report(groups, since=since, by=by))

    async def reload_config(self, scope: Scope, receive: Receive, response: Response,
                            ctx: AdminContext) -> None:
        await _read(scope, receive, ctx)  # no body expected; drain whatever came
        await _reply(response, 200, await self._config().reload())

    async def routes_view(self, scope: Scope, receive: Receive, response: Response,
                          ctx: AdminContext) -> None:
        await _reply(response, 200, self._config().routes())

    async def list_providers(self, scope: Scope, receive: Receive, response: Response,
                             ctx: AdminContext) -> None:
        await _reply(response, 200, await self._config().list_providers())

    async def connect_provider(self, scope: Scope, receive: Receive, response: Response,
                               ctx: AdminContext) -> None:
        body = _decode(await _read(scope, receive, ctx), ConnectBody, required=True)
        status, answer = await self._config().connect(body)
        log.info("admin: connect provider %s: %s", answer.get("provider"), answer.get("action"))
        await _reply(response, status, answer)

    async def remove_provider(self, name: str, scope: Scope, receive: Receive, response: Response,
                              ctx: AdminContext) -> None:
        await _read(scope, receive, ctx)
        answer = await self._config().remove(name)
        log.info("admin: removed provider %s", name)
        await _reply(response, 200, answer)

    async def test_provider(self, name: str, scope: Scope, receive: Receive, response: Response,
                            ctx: AdminContext) -> None:
        body = _decode(await _read(scope, receive, ctx), TestBody, required=False)
        await _reply(response, 200, await self._config().test(name, body))

    async def provider_models(self, name: str, scope: Scope, receive: Receive, response: Response,
                              ctx: AdminContext) -> None:
        await _reply(response, 200, await self._config().models(name))

    async def openapi(self, scope: Scope, receive: Receive, response: Response, ctx: AdminContext) -> None:
        await _reply(response, 200, openapi_document(__version__))

    # Helpers -----------------------------------------------------------------------------

    def _config(self) -> ConfigAdmin:
        if self.config is None:
            raise NotFound("this admin API has no gateway configuration to manage")
        return self.config

    def _applied(self, key: IssuedKey) -> None:
        if self.cache is not None:
            self.cache.apply(key)

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store operation off the event loop; map store errors to HTTP errors."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except InvalidInput as exc:
            raise InvalidRequest(str(exc)) from None
        except KeyNotFound as exc:
            raise NotFound(str(exc)) from None
        except KeyConflict as exc:
            raise Conflict(str(exc)) from None
        except StoreUnavailable as exc:
            log.warning("admin: key store unreachable: %s", exc)
            raise ServiceUnavailable("the key store is unreachable right now (PostgreSQL down or too slow); "
                                     "nothing was changed, try again shortly") from None
        except StoreError as exc:
            log.error("admin: key store error: %s", exc)
            raise InternalError("the key store is unavailable; see the gateway log") from None


def _named_routes(
    rest: str, actions: Mapping[str, tuple[str, Callable[..., Awaitable[None]]]]
) -> dict[str, AdminHandler] | None:
    """``{name}`` or ``{name}/{action}`` under a collection (``/admin/keys/...``,
    ``/admin/providers/...``): the one method the action allows, with the name bound."""
    name, _, action = rest.partition("/")
    entry = actions.get(action) if name else None
    if entry is None:
        return None
    method, handler = entry
    return {method: functools.partial(handler, name)}


def _whole(value: int | float | None) -> int | None:
    return None if value is None else int(value)  # CreateKeyBody made it a whole number


def _duration(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration(text, what)
    except InvalidInput as exc:
        raise InvalidRequest(str(exc)) from None


async def _read(scope: Scope, receive: Receive, ctx: AdminContext) -> bytes:
    declared = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = int(value) if value.isdigit() else None
    body = await read_body(receive, _MAX_BODY, declared)
    ctx.bytes_in = len(body)
    return body


def _decode(body: bytes, kind: type[T], *, required: bool) -> T:
    if not body.strip(b" \t\r\n"):  # JSON's whitespace only: a control byte is not "no body"
        if required:
            raise InvalidRequest("request body: expected a JSON object, got nothing")
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None


async def _reply(response: Response, status: int, payload: Any) -> None:
    body = _json.encode(payload)
    # no-store: responses may carry a secret (create, rotate); no cache may keep one.
    await response.whole(status, [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ], body)
