"""The web console at ``/console``: sign-in, sessions and CSRF (``sessions``, ``app``), the pages
(``views/``), Jinja2 templates (``templates/``) and the vendored htmx and uPlot (``static/``).
See docs/console.md.

The console sits above ``server``: ``attach(gateway)`` mounts it (``ccgate serve`` calls it), and
the gateway hands every ``/console`` path to it without importing this package."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccgate.console.app import PREFIX, Console

if TYPE_CHECKING:
    from ccgate.server.app import Gateway


def attach(gateway: Gateway) -> Console | None:
    """Mount the console on ``gateway`` unless it is off (``server.console.enabled: false``) or
    the gateway has no store (keys, usage and the request log live there)."""
    if not gateway.runtime.config.server.console.enabled or gateway.admin is None:
        return None
    console = Console(gateway)
    gateway.console = console
    return console


__all__ = ["PREFIX", "Console", "attach"]
