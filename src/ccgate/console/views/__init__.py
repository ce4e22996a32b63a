"""The console's pages. Each module has ``ROUTES``: path pattern below /console ("*" matches
one path segment, passed to the view) -> method -> (view, access)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccgate.console.app import Access, View


def all_routes() -> dict[str, dict[str, tuple[View, Access]]]:
    from ccgate.console.views import (
        assets,
        doctor,
        idp,
        keys,
        models,
        overview,
        providers,
        requests,
        signin,
        usage,
    )

    routes: dict[str, dict[str, tuple[View, Access]]] = {}
    for module in (signin, idp, assets, overview, providers, models, keys, usage, requests, doctor):
        for pattern, methods in module.ROUTES.items():
            routes.setdefault(pattern, {}).update(methods)
    return routes
