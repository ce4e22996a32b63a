"""Model discovery for ``GET /v1/models``: what a translated provider says it serves.

An openai-compatible or anthropic-compatible provider is asked for its own model list
(``GET <base_url>/models``, resp. ``<base_url>/v1/models``) through its transport, with
one of its keys. Claude Code gives ``/v1/models`` 3 s in all, so the fetch has
``FETCH_TIMEOUT`` and the answer is kept ``CACHE_SECONDS``; concurrent callers share one
fetch. When the provider fails, the last good list is served (or nothing, and the caller
lists the configured routes only), and the failure is kept ``RETRY_AFTER_FAILURE`` seconds
so a provider that is down is not asked on every call. The gateway lists each model under a
discovery alias (``routing.route.model_alias``) that routes back to it.
"""

from __future__ import annotations

import asyncio
import logging

from ccgate.errors import UpstreamError
from ccgate.routing import KeyLease, Upstream
from ccgate.routing.clock import SYSTEM_CLOCK, Clock
from ccgate.upstream.response import UpstreamResponse
from ccgate.upstream.transport import Transport
from ccgate.wire.openai import ListedModel, ModelListError, parse_model_list

log = logging.getLogger("ccgate.discovery")

FETCH_TIMEOUT = 2.0
CACHE_SECONDS = 60.0
RETRY_AFTER_FAILURE = 10.0
# OpenRouter's list of a few hundred models is about 1 MB.
_MAX_LIST_BYTES = 8 * 1024 * 1024


class ModelCatalog:
    """One provider's discovered models, cached; carried over a reload with its provider."""

    def __init__(self, transport: Transport, upstream: Upstream, *, clock: Clock = SYSTEM_CLOCK,
                 timeout: float = FETCH_TIMEOUT) -> None:
        self.transport = transport
        self.upstream = upstream
        self.clock = clock
        self.timeout = timeout
        self.error: str | None = None  # why the last fetch failed, for logs and the admin API
        self._models: list[ListedModel] = []
        self._valid_until: float | None = None
        self._lock = asyncio.Lock()

    async def models(self) -> list[ListedModel]:
        """The provider's models: cached, else fetched; on failure the last good list."""
        async with self._lock:  # one fetch for concurrent callers; the rest wait for it
            if self._valid_until is None or self.clock.monotonic() >= self._valid_until:
                await self._refresh()
        return self._models

    def invalidate(self) -> None:
        self._valid_until = None

    async def _refresh(self) -> None:
        try:
            models = await asyncio.wait_for(self.fetch(), self.timeout)
        except (UpstreamError, ModelListError, TimeoutError) as exc:
            self.error = _why(exc, self.timeout)
            log.warning("model discovery: provider %s: %s%s", self.transport.name, self.error,
                        "; serving the last list" if self._models else "")
            self._valid_until = self.clock.monotonic() + RETRY_AFTER_FAILURE
            return
        self._models, self.error = models, None
        self._valid_until = self.clock.monotonic() + CACHE_SECONDS

    async def fetch(self) -> list[ListedModel]:
        """Ask the provider once, uncached. Raises UpstreamError or ModelListError."""
        provider = self.transport.provider
        lease = self.upstream.pool.acquire()
        credentials = lease.headers(provider.auth_header) if isinstance(lease, KeyLease) else {}
        if provider.translated:
            path, headers = "/models", [("accept", "application/json"), *credentials.items()]
        else:
            path = "/v1/models?limit=1000"
            headers = [("accept", "application/json"), ("anthropic-version", "2023-06-01"),
                       *credentials.items()]
        response = await self.transport.send("GET", path, headers, b"", timeout=self.timeout)
        try:
            return await _read_list(response)
        finally:
            response.close()


async def _read_list(response: UpstreamResponse) -> list[ListedModel]:
    body = await response.read(_MAX_LIST_BYTES)
    if response.status != 200:
        raise ModelListError(f"HTTP {response.status}: {body[:200]!r}")
    return parse_model_list(body)


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no model list within {timeout:g} s"
    return exc.message if isinstance(exc, UpstreamError) else str(exc)


__all__ = ["CACHE_SECONDS", "FETCH_TIMEOUT", "ModelCatalog"]
