"""The collector tuning ``ccgate serve`` applies after start-up (server/gcpolicy.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from ccgate.server.gcpolicy import MIDDLE_THRESHOLD, OLD_THRESHOLD, YOUNG_THRESHOLD, tune_for_serving


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_start_up_objects_are_frozen_and_young_collections_spaced(restored: None) -> None:
    built_at_start = Node()
    tune_for_serving()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    assert gc.get_freeze_count() > 0
    # Frozen: no generation the collector walks holds it any more.
    assert all(o is not built_at_start for gen in range(3) for o in gc.get_objects(gen))


def test_cycles_made_after_tuning_are_still_collected(restored: None) -> None:
    tune_for_serving()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting alone cannot free it
    gc.collect()
    assert gone() is None


def test_survivors_of_a_young_pass_skip_the_middle_generation(restored: None) -> None:
    """A stream's objects outlive many young passes: they must reach the old generation at
    once, not pile up in the middle one for a long pause (docs/benchmarks.md, "Scale")."""
    tune_for_serving()
    held = [Node() for _ in range(2 * YOUNG_THRESHOLD)]  # the collector runs by itself meanwhile
    marker = held[0]
    assert not any(o is marker for o in gc.get_objects(1))
    assert any(o is marker for o in gc.get_objects(2))
