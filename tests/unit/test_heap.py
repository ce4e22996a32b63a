"""server/heap.py: once started, the gateway's start-up heap is frozen out of the collector's
walks and young collections run less often (docs/benchmarks.md "Where the time goes: streams").
Run in a child interpreter: the test process's own collector stays as it is."""

from __future__ import annotations

import json
import subprocess
import sys

from ccgate.server import heap

_CHILD = """
import gc, json
import ccgate.server.app  # the gateway's modules: what a started server holds
from ccgate.server import heap
before = gc.get_freeze_count(), gc.get_threshold()
heap.settle()
young = [object() for _ in range(100)]  # created after: not frozen, still collected as usual
cycle = []; cycle.append(cycle); del cycle
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "threshold": gc.get_threshold(),
                  "collected": gc.collect()}))
"""


def test_settle_freezes_the_start_up_heap_and_raises_the_young_threshold() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    state = json.loads(out)
    assert state["before"][0] == 0 and state["before"][1][0] == 700  # CPython's defaults
    assert state["frozen"] > 10_000  # the imported gateway: tens of thousands of objects
    assert state["threshold"][0] == heap.YOUNG
    assert state["threshold"][1:] == state["before"][1][1:]
    assert state["collected"] >= 1  # a cycle made after settle() is still found
