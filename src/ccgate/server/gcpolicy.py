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
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def tune_for_serving() -> None:
    """Freeze what start-up built and space out young collections (call once, after start-up)."""
    gc.collect()  # what start-up left as garbage goes now, not frozen forever
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


__all__ = ["YOUNG_THRESHOLD", "tune_for_serving"]
