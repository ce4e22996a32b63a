"""One request's trip to the providers and back: what happened (for usage, the access log and
metrics), and the watch for a client that goes away mid-exchange.

The watch is the server's word when the gateway runs on its own server (``ClientLink.on_lost``,
called from ``connection_lost``: nothing per request but a callback), and otherwise, under any
ASGI server, a task parked on ``receive()`` once the exchange has run ``WATCH_AFTER``.

The response's own lifecycle (status, started, bytes out, finished) belongs to
``server.response.Response``; ``Exchange`` records what only the upstream side knows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from ccgate.observe.tracing import RequestTrace
from ccgate.server.asgi import Receive
from ccgate.server.response import Response

# Seconds an exchange runs before a task starts watching for the client's disconnect.
WATCH_AFTER = 0.05


@dataclass(slots=True)
class Exchange:
    """What happened on one forwarded request, besides what the response itself records."""

    response: Response
    # The gateway's id of this request: the ``request-id`` header of an answer the gateway
    # builds itself (translated), as Anthropic's API sends one (the SDKs' ``_request_id``).
    request_id: str = ""
    # Read usage out of the relayed answer (usage recording or a key's tokens-per-minute).
    count_usage: bool = False
    streaming: bool = False
    client_gone: bool = False
    error: str | None = None
    # Anthropic usage of the answer, when known (recorded per key, model and provider).
    usage: dict[str, Any] | None = None
    # The provider that answered, and every attempt on the way ("anthropic#0 529, ...").
    provider: str | None = None
    model: str | None = None  # the model name that provider was sent (for the price)
    trail: str = ""
    # The upstream broke the response after it started (counts against its breaker).
    upstream_broke: bool = False
    # The provider's request id of the last answer (``request-id``/``x-request-id``), the model
    # and stop reason the answer named: for the access log and the trace.
    upstream_request_id: str | None = None
    response_model: str | None = None
    stop_reason: str | None = None
    # This request's trace (observe/tracing.py), None when tracing is off.
    trace: RequestTrace | None = None
    # The client's request body, for the attempts; None once an answer starts to be relayed
    # (nothing is retried from then on). Held here, not in the handlers' locals, so that a
    # stream lasting minutes does not keep a Claude Code request (~100 KiB and growing with
    # the conversation) alive: 10,000 streams would hold a gigabyte.
    request_body: bytes | None = None
    # Its top-level fields as validation split them (``MessagesHead.fields``: views of the
    # body), so a translated target does not scan it again; dropped with it.
    request_fields: dict[str, Any] | None = None

    @property
    def status(self) -> int:
        """What the client was sent: 499 if it went away before anything was."""
        status = self.response.status
        return 499 if self.client_gone and not status else status


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any], ex: Exchange) -> None:
    # The body has been read, so the next ASGI message is the disconnect (or the end of
    # our own response, which `finished` tells apart).
    message = await receive()
    if message["type"] == "http.disconnect" and not ex.response.finished:
        ex.client_gone = True
        task.cancel()


class _CancelOnLoss:
    """``ClientLink.on_lost`` for one exchange: a client gone before the end cancels it."""

    __slots__ = ("ex", "task")

    def __init__(self, ex: Exchange, task: asyncio.Task[Any]) -> None:
        self.ex, self.task = ex, task

    def __call__(self) -> None:
        if not self.ex.response.finished:
            self.ex.client_gone = True
            self.task.cancel()


async def watch_disconnect(receive: Receive, ex: Exchange, work: Awaitable[None]) -> None:
    """Run ``work`` (the whole upstream exchange), cancelling it if the client goes away.

    Cancelling closes the upstream response, which is what tells the provider to stop
    generating. Raises what ``work`` raises (an UpstreamError before the response started).
    With the server's ``ClientLink`` the connection's loss cancels the exchange directly
    (no timer, no task: one small object per request). Otherwise ``_watch_receive``.
    """
    link = ex.response.link
    if link is None:
        await _watch_receive(receive, ex, work)
        return
    task = asyncio.current_task()
    assert task is not None
    cancel = _CancelOnLoss(ex, task)
    if link.gone:
        cancel()  # gone while the request was read: cancelled at the exchange's first await
    else:
        link.on_lost = cancel
    try:
        await work
    except asyncio.CancelledError:
        if not _client_left(task, ex):
            raise
    finally:
        link.on_lost = None  # it refers to the task: nothing left pointing back once done


def _client_left(task: asyncio.Task[Any], ex: Exchange) -> bool:
    """After the exchange was cancelled: True, with the cancel absorbed, when the client's
    going away caused it (the request ends as 499); False when the cancel is someone else's
    (shutdown) and must propagate. A plain function: no frame on the exchange's await chain."""
    if not ex.client_gone:
        return False
    task.uncancel()
    ex.error = "client disconnected"
    return True


async def _watch_receive(receive: Receive, ex: Exchange, work: Awaitable[None]) -> None:
    """Under any ASGI server: a watcher task waits for ``http.disconnect``, started once the
    exchange has run ``WATCH_AFTER`` seconds: most quick exchanges never pay for it, and a
    generation worth stopping lasts far longer."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    watcher: asyncio.Task[None] | None = None

    def start_watching() -> None:
        nonlocal watcher
        if not ex.response.finished:
            watcher = loop.create_task(_cancel_on_disconnect(receive, task, ex))

    timer = loop.call_later(WATCH_AFTER, start_watching)
    try:
        await work
    except asyncio.CancelledError:
        if not _client_left(task, ex):
            raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


__all__ = ["WATCH_AFTER", "Exchange", "watch_disconnect"]
