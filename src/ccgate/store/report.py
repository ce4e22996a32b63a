"""The public JSON shape of a usage summary, shared by ``ccgate usage --json`` and the admin API."""

from __future__ import annotations

from typing import Any

from ccgate.store.base import GroupBy, UsageGroup
from ccgate.store.cost import format_usd
from ccgate.store.keys import iso


def group_cost(group: UsageGroup) -> float | None:
    """USD of a group's priced rows; None (unknown) when it has unpriced rows and no priced cost."""
    if group.unpriced and not group.cost_usd:
        return None
    return round(group.cost_usd, 6)


def cost_text(group: UsageGroup) -> str:
    """The cost cell of a usage table: "$1.23", "unknown", or "$1.23 + 4 unpriced"."""
    text = format_usd(group_cost(group))
    if group.unpriced and group.cost_usd:
        text += f" + {group.unpriced} unpriced"
    return text


def usage_report(groups: list[UsageGroup], *, since: float | None, by: GroupBy) -> dict[str, Any]:
    return {
        "since": iso(since),
        "by": by,
        "data": [
            {
                "group": g.group,
                "name": g.label,
                "requests": g.requests,
                "errors": g.errors,
                "input_tokens": g.input_tokens,
                "output_tokens": g.output_tokens,
                "cache_read_tokens": g.cache_read_tokens,
                "cache_creation_tokens": g.cache_creation_tokens,
                "cache_write_1h_tokens": g.cache_write_1h_tokens,
                "cost_usd": group_cost(g),
                "unpriced_requests": g.unpriced,
                "first_at": iso(g.first_ts),
                "last_at": iso(g.last_ts),
            }
            for g in groups
        ],
    }
