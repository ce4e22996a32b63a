"""The cyclic garbage collector, tuned once the gateway has started (``ccgate serve``).

Measured under the bench's c=32 load (docs/benchmarks.md, "Where the time goes ([perf])"): with
CPython's defaults (a young collection every 700 net container allocations) the collector took
about 50 µs of CPU per request, a sixth of the gateway's own work, and found nothing: the request
path leaves no reference cycles (``gc.get_stats()`` showed the same ``collected`` count before
and after thousands of requests); reference counting frees all of it. Each young collection
costs ~0.25 ms whatever its size, and every tenth old-generation pass walked the ~65,000 objects
of the imported modules and the config (~40 ms, a pause every request in flight waits through).

Streams make it worse (``bench/run --scale``, docs/benchmarks.md "Where the time goes:
streams"): while thousands of streams open, their objects reach the old generation quickly, so
full collections came every few seconds, each stopping every open stream (2,000 streams: 4 full
collections, 2 s in all; 0.08 s after this change).

So, after start-up: everything built so far is moved out of the collector's sight
(``gc.freeze()``: module objects, the config, the routes, never garbage), and young collections
run every ``YOUNG_THRESHOLD`` allocations instead of 700. Cycles are still collected (an error
path's traceback, a reload's old runtime), just in larger, rarer batches: at most about
``YOUNG_THRESHOLD`` objects wait for it.

Two generations, not three (``MIDDLE_THRESHOLD`` 0: every young pass also takes the middle one,
which is then empty). With CPython's middle threshold of 10, the middle generation gathered the
survivors of ten young passes: while 9,000 streams opened (2,000 a second, every object of a
stream surviving) one pass walked ~200,000 objects for 86-155 ms, and every open stream's
next chunk waited for it (added chunk p99 25-33 ms; `bench/run --scale`). Now a pause walks
at most ``YOUNG_THRESHOLD`` new objects (7-37 ms, p99 12 ms), and a survivor goes to the old
generation at once, which is walked only after ``OLD_THRESHOLD`` passes and, as CPython
already requires, once a quarter of it is new. Same CPU per request at c=32 (`bench.ab`,
257 vs 259 µs, within the rounds' spread).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
MIDDLE_THRESHOLD = 0
OLD_THRESHOLD = 100


def tune_for_serving() -> None:
    """Freeze what start-up built and space out young collections (call once, after start-up)."""
    gc.collect()  # what start-up left as garbage goes now, not frozen forever
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


__all__ = ["MIDDLE_THRESHOLD", "OLD_THRESHOLD", "YOUNG_THRESHOLD", "tune_for_serving"]
