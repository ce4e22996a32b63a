"""The operational endpoints: ``GET /readyz`` and ``GET /metrics``.

Who may see what is ``server/access.py``'s (``OpsAccess`` of the request's runtime); what
readiness means is ``server/readiness.py``'s; the metrics are ``server/metrics.py``'s, summed
over every worker of ``serve --workers N`` per scrape (``server/metrics_merge.py``). Both are
polled every few seconds by load balancers and Prometheus, so the gateway counts them in
metrics but does not log them (``QUIET_ROUTES``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from ccgate.server.asgi import Receive, Scope
from ccgate.server.response import Response

if TYPE_CHECKING:
    from ccgate.server.app import Context, Gateway, Handler

log = logging.getLogger("ccgate")
_json = msgspec.json.Encoder()
# Polled by load balancers and Prometheus every few seconds: counted in metrics, not logged.
QUIET_ROUTES = frozenset({"healthz", "readyz", "metrics"})
_PROMETHEUS_TEXT = [(b"content-type", b"text/plain; version=0.0.4")]


class OpsEndpoints:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> dict[tuple[str, str], tuple[str, Handler, bool]]:
        return {
            ("GET", "/readyz"): ("readyz", self.readyz, False),
            ("GET", "/metrics"): ("metrics", self.render_metrics, False),
        }

    async def readyz(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        gw = self.gateway
        ready, detail = await ctx.rt.readiness.check()
        status: dict[str, object] = {"status": "ready" if ready else "not ready"}
        # Shared state does not decide readiness: every replica shares the same Redis, so taking
        # them out of the load balancer for it would turn its outage into a total one.
        shared = await gw.shared.health() if gw.shared is not None else None
        if shared is not None:
            status["shared"] = "ok" if shared["healthy"] else "unavailable"
        if gw.worker is not None:  # this worker's own readiness: a balancer's probe lands on one
            status["worker"] = gw.worker
        if ctx.rt.access.is_admin(scope):  # the detail names config paths and secret references
            status |= {"config": ctx.rt.loaded.source, "providers": detail}
            if gw.store is not None:  # last known state, no store call (no password in it)
                store = gw.store.health()
                if gw.recorder is not None:
                    store |= {"usage_rows_buffered": gw.recorder.buffered,
                              "usage_writer": "holding rows: store unreachable" if gw.recorder.store_down
                              else "ok"}
                status["store"] = store
            if shared is not None:
                status["shared"] = shared
        await response.json(200 if ready else 503, _json.encode(status))

    async def render_metrics(self, scope: Scope, receive: Receive, response: Response, ctx: Context) -> None:
        gw = self.gateway
        ctx.rt.access.check_metrics(scope, gw.listen_host)
        if gw.metrics_peers is None:
            body = gw.metrics.render()
        else:  # totals of every worker (server/metrics_merge.py)
            body = await self._of_all_workers(gw.metrics_peers)
        await response.whole(200, list(_PROMETHEUS_TEXT), body)

    async def _of_all_workers(self, peers: Callable[[], Awaitable[list[bytes]]]) -> bytes:
        from ccgate.server.metrics_merge import merge, snapshot
        from ccgate.shared import SharedUnavailable

        own = snapshot(self.gateway.metrics.registry)
        try:
            others = await peers()
        except SharedUnavailable as exc:  # this worker's own numbers; workers_reporting says 1
            log.warning("metrics: the other workers' numbers are missing from this scrape: %s", exc)
            others = []
        return await asyncio.to_thread(merge, [own, *others])


__all__ = ["QUIET_ROUTES", "OpsEndpoints"]
