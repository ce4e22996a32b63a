"""The public JSON shape of a usage summary, shared by ``ccgate usage --json`` and the admin API."""

from __future__ import annotations

from typing import Any

from ccgate.store.base import GroupBy, UsageGroup
from ccgate.store.keys import iso


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
                "first_at": iso(g.first_ts),
                "last_at": iso(g.last_ts),
            }
            for g in groups
        ],
    }
