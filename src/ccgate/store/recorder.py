"""``UsageRecorder``: record usage from the event loop without ever waiting for the disk.

``record(row)`` appends the row to an in-memory buffer and returns. One background thread
takes rows off the buffer and commits them in batches: a batch is committed when it reaches
``batch_size`` rows or when its first row has waited ``interval`` seconds, whichever comes
first (defaults 100 rows / 200 ms). One transaction per batch keeps the write cost per row
small under load; the interval bounds how long a row sits only in memory.

The writer is woken only when a batch starts and when it fills, never once per row: a
thread wake-up per request (``queue.Queue`` does one) cost more CPU than the whole rest of
the usage path, because each one is a futex, a context switch and a GIL hand-over.

The loss window, stated plainly: a row is durable once the batch holding it is committed
(``on_commit`` is called after that). Rows still buffered when the process is killed, at most
``interval`` seconds' worth, are lost; ``close()`` on a clean shutdown commits everything.
If the buffer is full (the disk cannot keep up) new rows are dropped and counted in
``dropped`` rather than slowing requests down; a batch that still fails after the retries
is counted in ``failed`` and logged.

The writer thread is also where a row's cost is worked out (``price``, set by the gateway:
a price lookup and a few multiplications per row, kept off the event loop) and where
``call_in_writer`` runs work that must not interleave with commits (the budget tracker's
seed from the store: every row is then counted exactly once, by the seed or after it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from ccgate.store.base import StoreError, UsageRow, UsageStore

log = logging.getLogger("ccgate.store")


class UsageRecorder:
    def __init__(
        self, store: UsageStore, *, batch_size: int = 100, interval: float = 0.2,
        max_pending: int = 100_000, retry_delays: Sequence[float] = (0.05, 0.5, 2.0),
        on_commit: Callable[[Sequence[UsageRow]], None] | None = None,
    ) -> None:
        self._store = store
        self._batch_size = batch_size
        self._interval = interval
        self._max_pending = max_pending
        self._retry_delays = tuple(retry_delays)
        self._on_commit = on_commit
        # Fills in UsageRow.cost_usd in the writer thread; replaced on a config reload.
        self.price: Callable[[UsageRow], UsageRow] | None = None
        self._calls: list[tuple[Callable[[], object], Future[object]]] = []
        # Rows not yet taken by the writer. The lock is held for an append or a swap, never
        # across I/O: uncontended, it costs a producer well under a microsecond.
        self._rows: list[UsageRow] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flushes: list[threading.Event] = []
        self._stopping = False
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="ccgate-usage-writer", daemon=True)
        self._thread.start()

    # Producer side -----------------------------------------------------------------------

    def record(self, row: UsageRow) -> None:
        """Buffer one row; never blocks. Safe from any thread or the event loop."""
        if self._closed:
            self.dropped += 1
            return
        with self._lock:
            pending = len(self._rows)
            if pending < self._max_pending:
                self._rows.append(row)
        if pending >= self._max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("usage buffer full: %d usage rows dropped so far", self.dropped)
            return
        # Wake the writer when a batch starts (it then waits out the interval) or fills.
        if pending == 0 or pending + 1 == self._batch_size:
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every row recorded before this call is committed (or failed)."""
        if not self._thread.is_alive():
            return not self._rows
        done = threading.Event()
        with self._lock:
            self._flushes.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit what is buffered, then stop the writer. Later ``record`` calls are dropped."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def call_in_writer(self, fn: Callable[[], object]) -> Future[object]:
        """Run ``fn`` in the writer thread between two commits; its result in the future.
        After ``close`` (or if the writer is gone) it runs in the caller's thread instead."""
        future: Future[object] = Future()
        with self._lock:
            queued = not self._closed and self._thread.is_alive()
            if queued:
                self._calls.append((fn, future))
        if not queued:
            _run_into(fn, future)
            return future
        self._wake.set()
        return future

    async def aclose(self) -> None:
        """``close`` for an ASGI lifespan shutdown, off the event loop."""
        await asyncio.to_thread(self.close)

    # Writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._rows and not self._urgent():
                # A batch has started: give it until the interval ends or it fills.
                deadline = time.monotonic() + self._interval
                while len(self._rows) < self._batch_size and not self._urgent():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                    self._wake.clear()
            stopping = self._stopping
            with self._lock:
                # Taken together: every row recorded before these flush() calls is in ``rows``.
                rows, self._rows = self._rows, []
                flushes, self._flushes = self._flushes, []
                calls, self._calls = self._calls, []
            for start in range(0, len(rows), self._batch_size):
                self._commit(rows[start:start + self._batch_size])
            for fn, future in calls:
                _run_into(fn, future)
            for done in flushes:
                done.set()
            if stopping:
                with self._lock:  # rows that raced with close(); record() refuses new ones now
                    rows, self._rows = self._rows, []
                    calls, self._calls = self._calls, []
                self._commit(rows)
                for fn, future in calls:
                    _run_into(fn, future)
                return

    def _urgent(self) -> bool:
        return self._stopping or bool(self._flushes) or bool(self._calls)

    def _commit(self, batch: list[UsageRow]) -> None:
        if not batch:
            return
        price = self.price
        if price is not None:
            try:
                batch = [price(row) for row in batch]
            except Exception:  # a pricing bug must not lose the usage itself
                log.exception("pricing usage rows failed; recording them without a cost")
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


def _run_into(fn: Callable[[], object], future: Future[object]) -> None:
    try:
        future.set_result(fn())
    except Exception as exc:
        future.set_exception(exc)


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
