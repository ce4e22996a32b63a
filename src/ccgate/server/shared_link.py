"""The gateway's side of state shared with other processes (``ccgate.shared``).

Without a backend (one process) none of this runs: ``Gateway.shared`` is None and the hot
path keeps its synchronous, in-memory rate limiter. With one, rate limits are counted by the
backend (one awaited round trip, only for keys that have ``rpm``/``tpm``), and facts other
processes publish are applied here to this process's memory by the handler registered for
their kind.

Failure policy: when the backend does not answer, ``fail_open`` admits the request (limits
are briefly not enforced; the default, since refusing every limited key because Redis blinked
is the worse outage) or refuses it with 503 ``api_error`` saying why. Either way it is counted
in ``ccgate_shared_unavailable_total{feature}`` and logged once per episode, never a 500.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

from ccgate.errors import SharedStateDown
from ccgate.shared import EventKind, SharedEvent, SharedState, SharedUnavailable
from ccgate.store import IssuedKey

log = logging.getLogger("ccgate")

EventHandler = Callable[[dict[str, Any]], None]


def new_process_id() -> str:
    """Unique per process and readable in logs: host pid plus randomness."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


class SharedLink:
    def __init__(self, backend: SharedState, *, fail_open: bool = True,
                 on_unavailable: Callable[[str], None] | None = None) -> None:
        self.backend = backend
        self.fail_open = fail_open
        self._on_unavailable = on_unavailable or (lambda feature: None)
        self._handlers: dict[str, EventHandler] = {}
        self._down: set[str] = set()  # features in a failure episode (one log line each)

    # Events ------------------------------------------------------------------------------

    def handle(self, kind: EventKind, handler: EventHandler) -> None:
        """Apply events of ``kind`` from other processes with ``handler`` (one per kind)."""
        self._handlers[kind] = handler

    def publish(self, kind: EventKind, **data: Any) -> None:
        self.backend.publish(SharedEvent(kind, data, self.backend.process_id))

    def _on_event(self, event: SharedEvent) -> None:
        if event.origin == self.backend.process_id:
            return
        handler = self._handlers.get(event.kind)
        if handler is None:
            return
        try:
            handler(event.data)
        except Exception:  # a malformed event must not take the subscriber down
            log.exception("shared state: cannot apply a %s event", event.kind)

    async def start(self) -> None:
        await self.backend.start(self._on_event)

    async def close(self) -> None:
        await self.backend.close()

    async def health(self) -> dict[str, object]:
        """For /readyz: the backend's kind, whether it answers (a bounded ping when the last
        operation failed, so recovery shows without traffic), and its event counts."""
        backend = self.backend
        healthy = backend.healthy()
        ping = getattr(backend, "ping", None)
        if not healthy and ping is not None:
            healthy = bool(await ping())
        out: dict[str, object] = {"backend": backend.kind, "healthy": healthy}
        stats = getattr(backend, "stats", None)
        if stats is not None:
            out["events"] = {"published": stats.published, "received": stats.received,
                             "dropped": stats.dropped}
        return out

    # Rate limits -------------------------------------------------------------------------

    async def admit(self, key: IssuedKey, who: str) -> None:
        """Count one request against ``key``'s limits across every process; raises the 429
        when over a limit, or ``SharedStateDown`` when failing closed."""
        try:
            admission = await self.backend.admit(key.id, key.rpm, key.tpm)
        except SharedUnavailable as exc:
            self._unavailable("rate_limits", exc)
            if self.fail_open:
                return
            raise SharedStateDown(
                f"rate limits are shared between gateway processes and the {self.backend.kind} "
                "backend is not answering; retry shortly") from None
        self._recovered("rate_limits")
        if not admission.allowed:
            raise admission.error(who)

    def record_tokens(self, key_id: str, tokens: int) -> None:
        if tokens > 0:
            self.backend.record_tokens(key_id, tokens)

    def _unavailable(self, feature: str, exc: Exception) -> None:
        self._on_unavailable(feature)
        if feature not in self._down:
            self._down.add(feature)
            policy = "admitting" if self.fail_open else "refusing"
            log.warning("shared state (%s) unavailable for %s, %s requests until it is back: %s",
                        self.backend.kind, feature, policy, exc)

    def _recovered(self, feature: str) -> None:
        if feature in self._down:
            self._down.discard(feature)
            log.warning("shared state (%s) is back for %s", self.backend.kind, feature)
