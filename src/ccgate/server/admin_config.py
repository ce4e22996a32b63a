"""The admin API's view of the running config: reload it, show the effective routes, and
manage providers through the connect backend.

``AdminApi`` routes ``POST /admin/config/reload`` and ``GET /admin/routes`` here; both read the
gateway through ``GatewayControl`` (its current ``Runtime`` and its reload), so they show what
requests use now, not what the file on disk says. The ``/admin/providers`` endpoints are thin
wrappers over ``ccgate.connect.Connector`` on the file the gateway runs on (the same backend as
``ccgate connect`` and ``ccgate providers``); a change they write is reloaded at once, and the
reload's outcome is part of the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import msgspec

from ccgate.config.model import ModelRoute
from ccgate.errors import ConfigRejected, InvalidRequest, NotFound
from ccgate.routing.route import model_alias

if TYPE_CHECKING:
    from ccgate.connect import ConnectError, Connector
    from ccgate.server.reload import ReloadOutcome
    from ccgate.server.runtime import Runtime

T = TypeVar("T")


class ConnectBody(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /admin/providers``: ``ccgate connect``'s flags as JSON."""

    preset: str | None = None
    base_url: str | None = None
    kind: Literal["openai-compatible", "anthropic-compatible", "anthropic"] | None = None
    name: str | None = None
    key: str | None = None  # a literal (stored in a 0600 file, never in the YAML), env:VAR or file:PATH
    models: list[str] = []
    tiers: dict[str, str] = {}
    test: bool = True
    force: bool = False  # save even when the test fails
    tools: bool = True


class TestBody(msgspec.Struct, forbid_unknown_fields=True):
    model: str | None = None
    tools: bool = False


class GatewayControl(Protocol):
    """What the admin API uses of the gateway: ``server.app.Gateway`` provides it."""

    @property
    def runtime(self) -> Runtime: ...

    @property
    def env(self) -> Mapping[str, str]: ...

    async def reload(self, trigger: str) -> ReloadOutcome: ...


class ConfigAdmin:
    def __init__(self, control: GatewayControl) -> None:
        self.control = control

    async def reload(self, trigger: str = "admin API") -> ReloadOutcome:
        """Reload the config file; ``ConfigRejected`` (422, the old config serves on) when it is
        unusable, with the message ``ccgate config check`` prints."""
        outcome = await self.control.reload(trigger)
        if not outcome.reloaded:
            raise ConfigRejected(f"{outcome.message} (still serving the previous config of {outcome.config})")
        return outcome

    def routes(self) -> dict[str, Any]:
        """The current runtime's providers and model routes, in the order they are matched."""
        rt = self.control.runtime
        return {
            "config": rt.loaded.source,
            "providers": [_provider(rt, p.name) for p in rt.config.providers],
            "routes": [_route(entry) for entry in rt.config.models],
            "default_provider": rt.config.providers[0].name,
        }

    # Providers, through the connect backend ------------------------------------------------

    def connector(self) -> Connector:
        from ccgate.connect import Connector

        return Connector(self.control.runtime.loaded.path, self.control.env)

    async def list_providers(self) -> dict[str, Any]:
        summaries = await _connecting(asyncio.to_thread(self.connector().providers))
        return {"data": [s.to_dict() for s in summaries]}

    async def connect(self, body: ConnectBody) -> tuple[int, dict[str, Any]]:
        """Test and save a provider (``ccgate connect --yes``); 201 when added."""
        from ccgate.connect import ProviderInput

        spec = ProviderInput(preset=body.preset, base_url=body.base_url, kind=body.kind, name=body.name,
                             key=body.key, models=tuple(body.models), tiers=body.tiers)
        result = await _connecting(self.connector().connect(spec, test=body.test, force=body.force,
                                                            tools=body.tools))
        answer = result.to_dict()
        if result.saved:
            answer["reload"] = msgspec.to_builtins(await self.control.reload("admin API: provider saved"))
        return (201 if result.action == "added" else 200), answer

    async def remove(self, name: str) -> dict[str, Any]:
        connector = await self._known(name)
        removed = await _connecting(asyncio.to_thread(connector.remove, name))
        answer = removed.to_dict()
        answer["reload"] = msgspec.to_builtins(await self.control.reload("admin API: provider removed"))
        return answer

    async def test(self, name: str, body: TestBody) -> dict[str, Any]:
        connector = await self._known(name)
        check = await _connecting(connector.test_provider(name, body.model, tools=body.tools))
        return check.to_dict()

    async def models(self, name: str) -> dict[str, Any]:
        connector = await self._known(name)
        (listed,) = await _connecting(connector.models(name))
        return listed.to_dict()

    async def _known(self, name: str) -> Connector:
        connector = self.connector()
        summaries = await _connecting(asyncio.to_thread(connector.providers))
        if name not in {s.name for s in summaries}:
            raise NotFound(f"no provider named {name!r} in {connector.config_path}")
        return connector


async def _connecting(work: Awaitable[T]) -> T:
    """Await a connect backend call; its ``ConnectError`` becomes 400 (the caller's input) or
    422 (understood, but it could not be done: nothing was written)."""
    from ccgate.connect import ConnectError

    try:
        return await work
    except ConnectError as exc:
        raise _as_http(exc) from None


def _as_http(exc: ConnectError) -> InvalidRequest | ConfigRejected:
    return InvalidRequest(exc.message) if exc.bad_input else ConfigRejected(exc.message)


def _provider(rt: Runtime, name: str) -> dict[str, Any]:
    parts = rt.providers[name]
    provider = parts.transport.provider
    discovered = provider.kind != "anthropic"
    return {
        "name": name, "kind": provider.kind, "base_url": provider.base_url,
        "keys": len(parts.transport.keys), "usable": parts.upstream.usable(),
        # Models GET /v1/models lists for this provider are named <alias_prefix><model id>.
        "alias_prefix": model_alias(name, "") if discovered else None,
    }


def _route(entry: ModelRoute) -> dict[str, Any]:
    return {
        "match": entry.match, "to": _target(entry.to),
        "fallbacks": [_target(spec) for spec in entry.fallbacks],
        "display_name": entry.display_name, "max_tokens": entry.max_tokens,
        "context_window": entry.context_window,
    }


def _target(spec: str) -> dict[str, str | None]:
    provider, _, model = spec.partition("/")
    return {"provider": provider, "model": model or None}  # None: the requested name is kept


__all__ = ["ConfigAdmin", "ConnectBody", "GatewayControl", "TestBody"]
