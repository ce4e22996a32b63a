"""What every page view shares: rendering a page with the layout's facts, running blocking
work off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ccgate.console.render import render
from ccgate.console.web import html
from ccgate.errors import InternalError, ServiceUnavailable
from ccgate.store import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from ccgate.console.app import Call

P = ParamSpec("P")
T = TypeVar("T")


async def page(call: Call, template: str, active: str, *, status: int = 200, **context: Any) -> None:
    """A full page in the layout (navigation, sign-out form, CSRF token for htmx)."""
    body = render(template, active=active, csrf=call.csrf, **context)
    await html(call.response, body, status=status)


async def fragment(call: Call, template: str, *, status: int = 200, **context: Any) -> None:
    """A piece of a page, for htmx to swap in."""
    await html(call.response, render(template, csrf=call.csrf, **context), status=status)


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A store read or write off the event loop (SQLite may wait on its lock)."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except StoreUnavailable as exc:  # PostgreSQL down: a 503 worth retrying, not a 500
        raise ServiceUnavailable(f"the store is unreachable right now; try again shortly ({exc})") from None
    except StoreError as exc:
        raise InternalError(f"the store is unavailable: {exc}") from None


# What a redirect after a change says (?done=<code>&name=<what>): fixed sentences, so a crafted
# link cannot put words of its own on the page.
_FLASH = {
    "saved": "Provider {name} saved; the gateway reloaded its config.",
    "unchanged": "Provider {name}: nothing changed.",
    "removed": "Provider {name} removed; the gateway reloaded its config.",
    "revoked": "Key {name} revoked: it is refused from now on.",
    "signed-out": "Key {name} revoked: that developer is signed out of Claude Code's /login and must sign "
                  "in again.",
    "budget": "Key {name}: budgets saved; they apply to its next request.",
}


def flash_of(query: dict[str, str]) -> str | None:
    template = _FLASH.get(query.get("done", ""))
    return template.format(name=query.get("name", "")[:64]) if template else None
