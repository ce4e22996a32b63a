"""The collector tuning ``ccgate serve`` applies after start-up (server/gcpolicy.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from ccgate.server.gcpolicy import YOUNG_THRESHOLD, tune_for_serving


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
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
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
