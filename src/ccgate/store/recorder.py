"""``UsageRecorder``: record usage from the event loop without ever waiting for the disk.

``record(row)`` puts the row on a bounded in-memory queue and returns. One background thread
takes rows off the queue and commits them in batches: a batch is committed when it reaches
``batch_size`` rows or when its first row has waited ``interval`` seconds, whichever comes
first (defaults 100 rows / 200 ms). One transaction per batch keeps the write cost per row
small under load; the interval bounds how long a row sits only in memory.

The loss window, stated plainly: a row is durable once the batch holding it is committed
(``on_commit`` is called after that). Rows still queued when the process is killed, at most
``interval`` seconds' worth, are lost; ``close()`` on a clean shutdown commits everything.
If the queue is full (the disk cannot keep up) new rows are dropped and counted in
``dropped`` rather than slowing requests down; a batch that still fails after the retries
is counted in ``failed`` and logged.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ccgate.store.base import StoreError, UsageRow, UsageStore

log = logging.getLogger("ccgate.store")


@dataclass(eq=False)
class _Flush:
    stop: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class UsageRecorder:
    def __init__(
        self, store: UsageStore, *, batch_size: int = 100, interval: float = 0.2,
        max_pending: int = 100_000, retry_delays: Sequence[float] = (0.05, 0.5, 2.0),
        on_commit: Callable[[Sequence[UsageRow]], None] | None = None,
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._interval = interval
        self._retry_delays = tuple(retry_delays)
        self._on_commit = on_commit
        self._queue: queue.Queue[UsageRow | _Flush] = queue.Queue(maxsize=max_pending)
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="ccgate-usage-writer", daemon=True)
        self._thread.start()

    # Producer side -----------------------------------------------------------------------

    def record(self, row: UsageRow) -> None:
        """Queue one row; never blocks. Safe from any thread or the event loop."""
        if self._closed:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("usage queue full: %d usage rows dropped so far", self.dropped)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every row recorded before this call is committed (or failed)."""
        if not self._thread.is_alive():
            return self._queue.empty()
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit what is queued, then stop the writer. Later ``record`` calls are dropped."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            marker = _Flush(stop=True)
            self._queue.put(marker)
            marker.done.wait(timeout)
            self._thread.join(timeout)

    async def aclose(self) -> None:
        """``close`` for an ASGI lifespan shutdown, off the event loop."""
        await asyncio.to_thread(self.close)

    # Writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        batch: list[UsageRow] = []
        deadline = 0.0
        while True:
            timeout = None if not batch else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._commit(batch)
                batch = []
                continue
            if isinstance(item, _Flush):
                self._commit(batch)
                batch = []
                item.done.set()
                if item.stop:
                    return
                continue
            if not batch:
                deadline = time.monotonic() + self._interval
            batch.append(item)
            if len(batch) >= self._batch_size:
                self._commit(batch)
                batch = []

    def _commit(self, batch: list[UsageRow]) -> None:
        if not batch:
            return
        for delay in (*self._retry_delays, None):
            try:
                self._store.add_usage(batch)
            except StoreError as exc:
                if delay is None:
                    self.failed += len(batch)
                    log.error("dropped %d usage rows after retries: %s", len(batch), exc)
                    return
                time.sleep(delay)
                continue
            except Exception:
                self.failed += len(batch)
                log.exception("dropped %d usage rows: unexpected error", len(batch))
                return
            break
        self.written += len(batch)
        if self._on_commit is not None:
            try:
                self._on_commit(batch)
            except Exception:
                log.exception("usage on_commit callback failed")


SESSION_HEADER = b"x-claude-code-session-id"
_MAX_SESSION_ID = 128


def session_id_from_headers(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """Claude Code's session id from raw ASGI headers, for ``UsageRow.session_id``.

    The value is client-controlled: keep it short and printable so it cannot bloat the
    database or garble the ``ccgate usage`` table.
    """
    for name, value in headers:
        if name == SESSION_HEADER:
            text = value.decode("latin-1").strip()[:_MAX_SESSION_ID]
            return text if text and text.isprintable() else None
    return None
