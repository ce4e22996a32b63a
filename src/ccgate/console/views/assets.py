"""The vendored scripts and stylesheets (htmx, uPlot, the console's own), from the package.

Served without a session: they are the same public files for everyone and carry no data (the
sign-in page needs the stylesheet). Only the files listed here are served."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from ccgate.console.web import asset
from ccgate.errors import NotFound

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View

FILES = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}


@cache
def read_asset(name: str) -> bytes:
    return resources.files("ccgate.console").joinpath("static", name).read_bytes()


async def static(call: Call) -> None:
    (name,) = call.args
    kind = FILES.get(name)
    if kind is None:
        raise NotFound(f"no such console asset: {name}")
    await asset(call.response, read_asset(name), kind)


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {"static/*": {"GET": (static, "public")}}
