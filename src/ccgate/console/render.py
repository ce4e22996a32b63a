"""Templates: Jinja2 with autoescaping on for every template, so a model name, a provider name
or an upstream's error text is shown as text, never run as markup. Undefined names are errors
(StrictUndefined), so a typo in a template fails its test instead of rendering blank."""

from __future__ import annotations

import time
from typing import Any

import jinja2

from ccgate.store.cost import format_usd
from ccgate.store.report import cost_text

NAV = (("overview", "Overview"), ("providers", "Providers"), ("models", "Models"), ("keys", "Keys"),
       ("usage", "Usage"), ("requests", "Requests"), ("doctor", "Doctor"))

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("ccgate.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(ts: float | None) -> str:
    return "—" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "never"
    seconds = max(0, int((now or time.time()) - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _num(value: float | int | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


_env.filters.update(when=_when, ago=_ago, num=_num, usd=format_usd, group_cost=cost_text)
_env.globals.update(nav=NAV)


def render(template: str, **context: Any) -> str:
    return _env.get_template(template).render(**context)
