"""The OTLP relay for ``POST /v1/metrics``, ``/v1/logs`` and ``/v1/traces``.

Claude Code sends OTLP/HTTP (protobuf) to the gateway once telemetry is on and expects 200
even when nothing is kept. With ``login.telemetry.forward_to`` set the bytes are relayed
verbatim to ``<forward_to>/v1/<signal>`` in the background (the CLI's Bearer is not
forwarded); without it they are dropped. At most ``MAX_IN_FLIGHT`` relays run at once; beyond
that, or when the collector fails, a batch is dropped and counted, never retried: telemetry
must not hold up or break the CLI.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

log = logging.getLogger("ccgate.login")

MAX_IN_FLIGHT = 16
TIMEOUT = 10.0
SIGNALS = ("metrics", "logs", "traces")


class TelemetryRelay:
    def __init__(self, forward_to: str | None) -> None:
        self.forward_to = forward_to.rstrip("/") if forward_to else None
        self.accepted = 0
        self.dropped = 0
        self.forwarded = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def accept(self, signal: str, body: bytes, content_type: str) -> None:
        self.accepted += 1
        if self.forward_to is None:
            return
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(self._send(signal, body, content_type))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, signal: str, body: bytes, content_type: str) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT), trust_env=True)
        url = f"{self.forward_to}/v1/{signal}"
        try:
            async with self._session.post(url, data=body, headers={"content-type": content_type}) as reply:
                await reply.read()
                if reply.status >= 300:
                    self.dropped += 1
                    log.warning("telemetry: collector %s answered %s", url, reply.status)
                    return
            self.forwarded += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.dropped += 1
            log.warning("telemetry: cannot reach collector %s: %s", url, type(exc).__name__)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()
