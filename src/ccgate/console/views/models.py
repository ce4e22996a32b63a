"""Models & routes: the routes in the order they match, their fallbacks and limits, and what
Claude Code's model discovery (``GET /v1/models``) will list."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ccgate.console.views.common import page
from ccgate.routing.route import model_alias
from ccgate.server.admin_config import ConfigAdmin

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View

_GLOB = frozenset("*?[")


async def discovery(call: Call) -> list[dict[str, Any]]:
    """The /v1/models rows: exact-id routes, then each non-anthropic provider's models under their
    aliases (as ``server.app`` lists them; each list bounded by its own timeout)."""
    rt = call.console.gateway.runtime
    rows: list[dict[str, Any]] = [
        {"id": r.match, "name": r.display_name or r.match, "via": "route"}
        for r in rt.config.models if not _GLOB & set(r.match)
    ]
    names = [p.name for p in rt.config.providers if p.kind != "anthropic"]
    lists = await asyncio.gather(*(rt.providers[n].catalog.models() for n in names))
    for name, models in zip(names, lists, strict=True):
        rows += [{"id": model_alias(name, m.id), "name": f"{m.display_name or m.id} ({name})", "via": name}
                 for m in models]
    return rows


async def show(call: Call) -> None:
    view = ConfigAdmin(call.console.gateway).routes()
    limits = call.console.gateway.runtime.config.routing
    await page(call, "models.html", "models", view=view, discovered=await discovery(call), routing=limits)


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {"models": {"GET": (show, "page")}}
