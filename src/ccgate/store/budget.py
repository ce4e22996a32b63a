"""Budgets per key: what each issued key has spent this UTC day and month, held in memory.

The hot path must not read the store, so ``BudgetTracker`` keeps the spend per key for the
current windows in two dicts. They are seeded from the store's usage rows
(``Store.spend_by_key``) when the gateway starts and on every reload, and grow as the usage
writer commits priced rows (``add``, called from the writer thread). ``check`` is a clock
read, two dict lookups and two comparisons, and only for keys that have a budget.

Windows: the UTC calendar day (00:00 to 24:00 UTC) and the UTC calendar month. A request
counts in the window in which its usage row is committed (at most ``UsageRecorder``'s
interval, 200 ms, after it ended). The check runs before a request starts, against what has
been spent so far, so requests that are running when the budget runs out still finish:
a budget can be overshot by what those cost. Several gateway processes sharing one store
(``ccgate.shared``): each publishes the cost of the rows it commits, and the others add it
here (``add_shared``); a cost committed before this process's last seed is skipped, since the
seed read it from the store already. Without a shared backend each process counts its own
requests plus what the store held at its last start or reload.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ccgate.store.base import IssuedKey, UsageRow, UsageStore
from ccgate.store.keys import iso

Window = Literal["daily", "monthly"]


def day_window(now: float) -> tuple[float, float]:
    """Start and end (Unix seconds) of the UTC day holding ``now``."""
    start = now - now % 86400
    return start, start + 86400


def month_window(now: float) -> tuple[float, float]:
    """Start and end (Unix seconds) of the UTC calendar month holding ``now``."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).date().replace(day=1)
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return _ts(day), _ts(following)


def _ts(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True, slots=True)
class Overspent:
    """A key at or over one of its budgets: which one, how much, and when it resets."""

    window: Window
    budget: float
    spent: float
    resets_at: float

    def message(self, key_name: str) -> str:
        return (f"gateway key {key_name!r} has used its {self.window} budget: ${self.spent:.2f} spent of "
                f"${self.budget:.2f} (UTC {'day' if self.window == 'daily' else 'month'}); it resets at "
                f"{iso(self.resets_at)}. Ask the gateway's admin to raise it "
                "(ccgate keys update --budget-day / --budget-month)")


class BudgetTracker:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # taken by the writer per batch, and to change windows
        self._day: dict[str, float] = {}
        self._month: dict[str, float] = {}
        self._day_start, self._day_end = day_window(clock())
        self._month_start, self._month_end = month_window(clock())
        self._seeded_at = float("-inf")  # rows committed before this are in the seed

    # Event loop ---------------------------------------------------------------------------

    def check(self, key: IssuedKey) -> Overspent | None:
        """None while the key is under both its budgets (call only for a key with one)."""
        now = self._clock()
        if now >= self._day_end:
            with self._lock:
                self._roll(now)
        if key.budget_day is not None:
            spent = self._day.get(key.id, 0.0)
            if spent >= key.budget_day:
                return Overspent("daily", key.budget_day, spent, self._day_end)
        if key.budget_month is not None:
            spent = self._month.get(key.id, 0.0)
            if spent >= key.budget_month:
                return Overspent("monthly", key.budget_month, spent, self._month_end)
        return None

    def spent(self, key_id: str) -> tuple[float, float]:
        """This process's view of the key's spend: (today, this month), USD."""
        return self._day.get(key_id, 0.0), self._month.get(key_id, 0.0)

    # Writer thread ------------------------------------------------------------------------

    def add(self, rows: Sequence[UsageRow]) -> None:
        """Count committed rows (``UsageRecorder``'s ``on_commit``)."""
        with self._lock:
            self._roll(self._clock())
            day, month = self._day, self._month
            for row in rows:
                cost = row.cost_usd
                if cost and row.key_id is not None and not row.log_only:
                    day[row.key_id] = day.get(row.key_id, 0.0) + cost
                    month[row.key_id] = month.get(row.key_id, 0.0) + cost

    def add_shared(self, key_id: str, usd: float, committed_at: float) -> None:
        """Count spending another process committed at ``committed_at`` (Unix seconds)."""
        with self._lock:
            self._roll(self._clock())
            if committed_at < self._seeded_at or usd <= 0:
                return
            if committed_at >= self._day_start:
                self._day[key_id] = self._day.get(key_id, 0.0) + usd
            if committed_at >= self._month_start:
                self._month[key_id] = self._month.get(key_id, 0.0) + usd

    def seed(self, store: UsageStore) -> None:
        """Start over from the store's usage rows. Run it in the usage writer thread
        (``UsageRecorder.call_in_writer``) so no commit lands between the read and the swap."""
        with self._lock:
            now = self._clock()
            self._roll(now)
            month = store.spend_by_key(self._month_start)
            day = store.spend_by_key(self._day_start)
            self._day, self._month = day, month
            self._seeded_at = self._clock()  # after the reads: what they saw is counted

    def _roll(self, now: float) -> None:
        """Move to the windows holding ``now`` (lock held); a new window starts at zero."""
        if now >= self._day_end or now < self._day_start:
            self._day_start, self._day_end = day_window(now)
            self._day = {}
        if now >= self._month_end or now < self._month_start:
            self._month_start, self._month_end = month_window(now)
            self._month = {}


__all__ = ["BudgetTracker", "Overspent", "day_window", "month_window"]
