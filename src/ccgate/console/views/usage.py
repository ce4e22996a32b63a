"""Usage: tokens (in, out, cache read, cache write) and requests over time, by key, model,
provider or Claude Code session, for a chosen range; the same numbers as CSV."""

from __future__ import annotations

import csv
import io
import time
from typing import TYPE_CHECKING, Any

from ccgate.console.views.common import in_thread, page
from ccgate.console.web import download
from ccgate.errors import InvalidRequest
from ccgate.store import GROUP_BY, GroupBy, UsageGroup, UsagePoint

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View

# range -> (seconds, bucket seconds): about 60-170 points a chart
RANGES = {"1h": (3600, 60), "24h": (86400, 900), "7d": (7 * 86400, 3600), "30d": (30 * 86400, 6 * 3600)}
# Series drawn per chart; the rest are summed into "other".
TOP = 6


def _choice(call: Call) -> tuple[str, GroupBy]:
    range_ = call.req.query.get("range", "24h")
    by = call.req.query.get("by", "model")
    if range_ not in RANGES:
        raise InvalidRequest(f"range: {range_!r} is not one of {', '.join(RANGES)}")
    if by not in GROUP_BY:
        raise InvalidRequest(f"by: {by!r} is not one of {', '.join(GROUP_BY)}")
    return range_, by


async def _data(call: Call, range_: str, by: GroupBy) -> tuple[list[UsagePoint], list[UsageGroup], float, int]:
    store = call.console.gateway.store
    assert store is not None
    span, bucket = RANGES[range_]
    since = time.time() - span
    points = await in_thread(store.usage_series, since=since, bucket=bucket, by=by)
    groups = await in_thread(store.usage_summary, since=since, by=by)
    return points, groups, since, bucket


def chart_data(points: list[UsagePoint], groups: list[UsageGroup], since: float, bucket: int) -> dict[str, Any]:
    """uPlot's columns: x (bucket starts), then tokens by type, then requests per top group."""
    start = int(since // bucket) * bucket
    xs = list(range(start, int(time.time()) + 1, bucket))
    index = {x: i for i, x in enumerate(xs)}
    kinds = {"input": [0] * len(xs), "output": [0] * len(xs), "cache read": [0] * len(xs),
             "cache write": [0] * len(xs)}
    names = [g.label or g.group or "(none)" for g in groups[:TOP]]
    top = {g.group: name for g, name in zip(groups[:TOP], names, strict=True)}
    per_group = {name: [0] * len(xs) for name in [*names, "other"]}
    for p in points:
        i = index.get(int(p.bucket))
        if i is None:
            continue
        kinds["input"][i] += p.input_tokens
        kinds["output"][i] += p.output_tokens
        kinds["cache read"][i] += p.cache_read_tokens
        kinds["cache write"][i] += p.cache_creation_tokens
        per_group[top.get(p.group, "other")][i] += p.requests
    if not any(per_group["other"]):
        del per_group["other"]
    return {"x": xs, "tokens": kinds, "requests": per_group}


async def show(call: Call) -> None:
    range_, by = _choice(call)
    points, groups, since, bucket = await _data(call, range_, by)
    await page(call, "usage.html", "usage", range_=range_, by=by, ranges=list(RANGES), group_by=GROUP_BY,
               groups=groups, chart=chart_data(points, groups, since, bucket))


async def export_csv(call: Call) -> None:
    range_, by = _choice(call)
    points, groups, _, bucket = await _data(call, range_, by)
    labels = {g.group: g.label for g in groups}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["bucket_start_utc", "bucket_seconds", by, "label", "requests", "errors", "input_tokens",
                     "output_tokens", "cache_read_tokens", "cache_write_tokens"])
    for p in points:
        writer.writerow([time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(p.bucket)), bucket, _cell(p.group),
                         _cell(labels.get(p.group)), p.requests, p.errors, p.input_tokens, p.output_tokens,
                         p.cache_read_tokens, p.cache_creation_tokens])
    await download(call.response, out.getvalue().encode(), "text/csv; charset=utf-8",
                   f"ccgate-usage-{by}-{range_}.csv")


def _cell(value: str | None) -> str:
    """A spreadsheet must not run a cell a client named (a session id, a key name) as a formula."""
    text = value or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {
    "usage": {"GET": (show, "page")},
    "usage.csv": {"GET": (export_csv, "data")},
}
