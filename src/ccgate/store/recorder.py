"""``UsageRecorder``: record usage from the event loop without ever waiting for the disk.

``record(row)`` appends the row to an in-memory buffer and returns. One background thread
takes rows off the buffer and commits them in batches: a batch is committed when it reaches
``batch_size`` rows or when its first row has waited ``interval`` seconds, whichever comes
first (defaults 500 rows / 200 ms: below 2,500 requests a second the interval closes the
batch, so the writer is woken about five times a second whatever the load, and each commit's
fixed cost, the WAL frames of the tables' last pages, is shared by more rows). One
transaction per batch keeps the write cost per row small under load; the interval bounds
how long a row sits only in memory.

The writer is woken only when a batch starts and when it fills, never once per row: a
thread wake-up per request (``queue.Queue`` does one) cost more CPU than the whole rest of
the usage path, because each one is a futex, a context switch and a GIL hand-over.

The loss window, stated plainly: a row is durable once the batch holding it is committed
(``on_commit`` is called after that). Rows still buffered when the process is killed, at most
``interval`` seconds' worth, are lost; ``close()`` on a clean shutdown commits everything.
If the buffer is full (the disk cannot keep up) new rows are dropped and counted in
``dropped`` rather than slowing requests down; a batch that still fails after the retries
is counted in ``failed`` and logged.

When the store is unreachable (``StoreUnavailable``: PostgreSQL down) rows are not dropped:
they are held in order and retried every ``outage_retry`` seconds, while new rows keep being
buffered, all within ``max_pending``; past it new rows are dropped (``dropped``). Once a write
succeeds the held rows go first. The outage is logged once when it starts and once when it
ends; a full buffer once per episode. Rows still held at ``close()`` are counted in
``dropped_at_close``. A batch is retried whole, the same rows in the same batch, so a store
that remembers what it committed (PostgreSQL's ``usage_batches``) can tell a retry of a batch
whose COMMIT's answer was lost and write it only once.

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

from ccgate.store.base import StoreError, StoreUnavailable, UsageRow, UsageStore

log = logging.getLogger("ccgate.store")


class UsageRecorder:
    def __init__(
        self, store: UsageStore, *, batch_size: int = 500, interval: float = 0.2,
        max_pending: int = 100_000, retry_delays: Sequence[float] = (0.05, 0.5, 2.0),
        on_commit: Callable[[Sequence[UsageRow]], None] | None = None, outage_retry: float = 1.0,
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
        self._outage_retry = outage_retry
        # Priced rows the store could not take while it was unreachable (writer thread only);
        # ``_held_count`` is its length for producers, which count it against max_pending.
        self._held: list[UsageRow] = []
        self._held_count = 0
        self.store_down = False
        self._full_logged = False
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.dropped_at_close = 0
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
            full = pending + self._held_count >= self._max_pending
            if not full:
                self._rows.append(row)
        if full:
            self.dropped += 1
            if not self._full_logged:  # once per episode; the metric counts every row
                self._full_logged = True
                log.warning("usage buffer full (%d rows%s): dropping new usage rows until it drains",
                            self._max_pending, ", the store is unreachable" if self.store_down else "")
            return
        # Wake the writer when a batch starts (it then waits out the interval) or fills.
        if pending == 0 or pending + 1 == self._batch_size:
            self._wake.set()

    @property
    def buffered(self) -> int:
        """Rows recorded but not yet committed (waiting for a batch, or held in an outage)."""
        return len(self._rows) + self._held_count

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
            self._wake.wait(self._outage_retry if self._held else None)
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
            self._commit_all(rows)
            for fn, future in calls:
                _run_into(fn, future)
            for done in flushes:
                done.set()
            if stopping:
                with self._lock:  # rows that raced with close(); record() refuses new ones now
                    rows, self._rows = self._rows, []
                    calls, self._calls = self._calls, []
                self._commit_all(rows)
                for fn, future in calls:
                    _run_into(fn, future)
                if self._held:
                    self.dropped_at_close += len(self._held)
                    log.error("the store is still unreachable: %d usage rows held in memory are lost at "
                              "shutdown", len(self._held))
                    self._held, self._held_count = [], 0
                return

    def _urgent(self) -> bool:
        return self._stopping or bool(self._flushes) or bool(self._calls)

    def _commit_all(self, rows: list[UsageRow]) -> None:
        """Held rows first, then ``rows``, in batches; stops at the first batch the store cannot
        take because it is unreachable and holds the rest for the next round."""
        pending = self._held + self._priced(rows) if rows else self._held
        self._held = []
        for start in range(0, len(pending), self._batch_size):
            if not self._commit(pending[start:start + self._batch_size]):
                self._held = pending[start:]
                break
        self._held_count = len(self._held)
        if not self._held and self.store_down and pending:
            self.store_down = False
            log.warning("the usage store is reachable again; usage rows held meanwhile are written")
        if self._full_logged and self.buffered < self._max_pending // 2:
            self._full_logged = False

    def _priced(self, batch: list[UsageRow]) -> list[UsageRow]:
        price = self.price
        if price is None:
            return batch
        try:
            return [price(row) for row in batch]
        except Exception:  # a pricing bug must not lose the usage itself
            log.exception("pricing usage rows failed; recording them without a cost")
            return batch

    def _commit(self, batch: list[UsageRow]) -> bool:
        """Write one batch. False: the store is unreachable and the batch was not written."""
        if not batch:
            return True
        for delay in (*self._retry_delays, None):
            try:
                self._store.add_usage(batch)
            except StoreUnavailable as exc:
                if not self.store_down:
                    self.store_down = True
                    log.warning("the usage store is unreachable (%s): holding usage rows in memory (up to %d) "
                                "and retrying every %g s", exc, self._max_pending, self._outage_retry)
                return False
            except StoreError as exc:
                if delay is None:
                    self.failed += len(batch)
                    log.error("dropped %d usage rows after retries: %s", len(batch), exc)
                    return True
                time.sleep(delay)
                continue
            except Exception:
                self.failed += len(batch)
                log.exception("dropped %d usage rows: unexpected error", len(batch))
                return True
            break
        self.written += len(batch)
        if self._on_commit is not None:
            try:
                self._on_commit(batch)
            except Exception:
                log.exception("usage on_commit callback failed")
        return True


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
