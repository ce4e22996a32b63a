"""The cyclic garbage collector, set for a server that holds thousands of streams.

CPython's collector stops the event loop while it walks the objects of the generation it
collects. A full (generation 2) collection walks every tracked object, and a gateway's
start-up heap (the config, the console's templates, the libraries' own objects: about 10^5
objects) was walked each time again. While thousands of streams open, their objects reach
generation 2 quickly, so full collections came every few seconds, each stopping every open
stream for hundreds of milliseconds (`bench/run --scale` at 2,000 streams: 4 full
collections, 2 s in all; docs/benchmarks.md "Where the time goes: streams").

``settle()`` runs once, when start-up is complete and before the first request:

* ``gc.freeze()`` moves everything alive into the permanent generation, which collections
  never walk (what Instagram's and Meta's Python servers do). Those objects are still freed
  by reference counting when they go; only a reference cycle among them would stay (a
  reload's old config and transports, once per reload).
* A larger young-generation threshold (``YOUNG``): each relayed chunk allocates a few
  short-lived objects (ASGI messages, buffers), and with the default of 700 allocations the
  collector ran every few hundred chunks, scanning the open streams' young objects each time.
"""

from __future__ import annotations

import gc

# Allocations (net of deallocations) between young collections; CPython's default is 700.
YOUNG = 20_000


def settle() -> None:
    """Collect once, freeze the start-up heap, and raise the young-generation threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)


__all__ = ["YOUNG", "settle"]
