"""Overview: each provider's health (last success, breaker state, key states, error rate),
requests and tokens per minute, open streams. The live part is a fragment htmx fetches every
few seconds; it reads the running gateway (breakers, key pools, the open-streams gauge) and the
last 15 minutes of usage, never anything on the request path."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ccgate.console.views.common import fragment, in_thread, page

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View

WINDOW = 15 * 60  # seconds of usage the rates and error rates look at


def _gauge(call: Call) -> int:
    for metric in call.console.gateway.metrics.open_streams.collect():
        for sample in metric.samples:
            return int(sample.value)
    return 0


async def facts(call: Call) -> dict[str, Any]:
    gateway = call.console.gateway
    rt = gateway.runtime
    store = gateway.store
    now = time.time()
    since = now - WINDOW
    series = await in_thread(store.usage_series, since=since, bucket=60, by=None) if store else []
    by_provider = {g.group: g for g in await in_thread(store.usage_summary, since=since, by="provider")} \
        if store else {}
    last_ok = await in_thread(store.last_success, now - 86400) if store else {}
    providers = []
    for p in rt.config.providers:
        upstream = rt.upstreams[p.name]
        snap = upstream.snapshot()
        keys = snap["keys"] if isinstance(snap["keys"], list) else []
        group = by_provider.get(p.name)
        providers.append({
            "name": p.name, "kind": p.kind, "base_url": p.base_url,
            "breaker": upstream.breaker.state.value, "usable": upstream.usable(),
            "key_states": [f"#{k['index']} {k['state']}" for k in keys] or ["client's own key"],
            "last_success": last_ok.get(p.name),
            "requests": group.requests if group else 0,
            "error_rate": (group.errors / group.requests) if group and group.requests else None,
        })
    minute = int(now // 60) * 60
    last_full = [s for s in series if s.bucket == minute - 60]
    per_minute = [{"bucket": s.bucket, "requests": s.requests,
                   "tokens": s.input_tokens + s.output_tokens} for s in series]
    return {
        "providers": providers, "open_streams": _gauge(call), "per_minute": per_minute[-15:],
        "rpm": last_full[0].requests if last_full else 0,
        "tpm": (last_full[0].input_tokens + last_full[0].output_tokens) if last_full else 0,
        "now": now,
    }


async def show(call: Call) -> None:
    await page(call, "overview.html", "overview", **await facts(call))


async def live(call: Call) -> None:
    await fragment(call, "overview_live.html", **await facts(call))


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {
    "overview": {"GET": (show, "page")},
    "overview/live": {"GET": (live, "data")},
}
