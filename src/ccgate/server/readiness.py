"""/readyz: the config is loaded (or we would not be running) and a provider answered
recently. Real traffic counts as proof; without it, a probe is made and cached briefly so
a load balancer polling every second does not hammer the provider."""

from __future__ import annotations

import asyncio
import time

from ccgate.routing import Upstream
from ccgate.upstream.transport import Transport

PROBE_CACHE_SECONDS = 10.0


class Readiness:
    def __init__(
        self, transports: list[Transport], window: float, upstreams: dict[str, Upstream] | None = None
    ) -> None:
        self.transports = transports
        self.upstreams = upstreams or {}
        self.window = window
        self._probed: dict[str, tuple[float, str | None]] = {}
        self._lock = asyncio.Lock()

    async def check(self) -> tuple[bool, dict[str, dict[str, object]]]:
        async with self._lock:
            stale = [t for t in self.transports if not self._fresh(t, time.monotonic())]
            results = await asyncio.gather(*(t.probe() for t in stale))
            # Taken after the probes: a probe or a request finishing meanwhile sets last_success
            # later than a clock read before them, which made seen_seconds_ago negative.
            now = time.monotonic()
            detail: dict[str, dict[str, object]] = {}
            for transport, error in zip(stale, results, strict=True):
                self._probed[transport.name] = (now, error)
            for t in self.transports:
                if t.last_success is not None and now - t.last_success <= self.window:
                    detail[t.name] = {"reachable": True, "seen_seconds_ago": round(now - t.last_success, 1)}
                else:
                    _, error = self._probed[t.name]
                    detail[t.name] = {"reachable": error is None, **({"error": error} if error else {})}
                upstream = self.upstreams.get(t.name)
                if upstream is not None:
                    # Breaker state and each key's health (disabled keys say why; no secrets).
                    detail[t.name].update(upstream.snapshot())
                    detail[t.name]["usable"] = upstream.usable()
            ready = any(d["reachable"] and d.get("usable", True) for d in detail.values())
            return ready, detail

    def _fresh(self, t: Transport, now: float) -> bool:
        if t.last_success is not None and now - t.last_success <= self.window:
            return True
        probed = self._probed.get(t.name)
        return probed is not None and now - probed[0] <= PROBE_CACHE_SECONDS
