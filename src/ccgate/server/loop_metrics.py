"""Counters and histograms for the request path that cost a dict lookup and a few additions.

prometheus_client's metrics take a lock on every ``inc``/``observe`` (they may be shared between
threads) and walk a histogram's buckets in Python; the gateway's request path runs on one event
loop thread, and ``/metrics`` is rendered on that same thread, so every family a request adds to
(requests, their duration and bytes, tokens, attempts, upstream latency, time to first token)
keeps plain numbers and is turned into metric families only when scraped, by
``LoopCollector.collect``. Label values are tuples in the family's label order; a family's
children are never removed.

``created=True`` exports each label set's ``_created`` sample, the time it was first used, as
prometheus_client's own ``Counter`` and ``Histogram`` do (unless
``PROMETHEUS_DISABLE_CREATED_SERIES`` turns those off): the request families render exactly as
they did when they were prometheus_client metrics.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import metrics as _client_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample


def _created_wanted() -> bool:
    """prometheus_client's own switch (its environment variable, ``disable_created_metrics``)."""
    return bool(getattr(_client_metrics, "_use_created", True))


class CounterChild:
    """One label set's value: ``child.value += amount`` is the whole cost of an increment."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value: float = 0
        self.created = time.time()


class LoopCounter:
    __slots__ = ("children", "created", "help", "labelnames", "name")

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], *, created: bool = False) -> None:
        self.name, self.help, self.labelnames = name, help_text, list(labelnames)
        self.created = created
        self.children: dict[tuple[str, ...], CounterChild] = {}

    def child(self, labels: tuple[str, ...]) -> CounterChild:
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = CounterChild()
        return child

    def add(self, labels: tuple[str, ...], amount: float = 1) -> None:
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = CounterChild()
        child.value += amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.help, labels=self.labelnames)
        created = self.created and _created_wanted()
        for labels, child in list(self.children.items()):
            family.add_metric(list(labels), child.value, created=child.created if created else None)
        return family


class HistogramChild:
    """One label set's buckets (not cumulative: one increment per observation) and sum."""

    __slots__ = ("counts", "created", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one is +Inf
        self.total = 0.0
        self.created = time.time()


class LoopHistogram:
    __slots__ = ("bounds", "children", "created", "help", "labelnames", "name")

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], buckets: Sequence[float],
                 *, created: bool = False) -> None:
        self.name, self.help, self.labelnames = name, help_text, list(labelnames)
        self.bounds = [float(b) for b in buckets]
        self.created = created
        self.children: dict[tuple[str, ...], HistogramChild] = {}

    def child(self, labels: tuple[str, ...]) -> HistogramChild:
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = HistogramChild(len(self.bounds))
        return child

    def observe(self, child: HistogramChild, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le = less or equal).
        child.counts[bisect_left(self.bounds, value)] += 1
        child.total += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.help, labels=self.labelnames)
        les = [_go_float(b) for b in self.bounds] + ["+Inf"]
        created = self.created and _created_wanted()
        for labels, child in list(self.children.items()):
            running, buckets = 0, []
            for le, count in zip(les, child.counts, strict=True):
                running += count
                buckets.append((le, running))
            family.add_metric(list(labels), buckets, child.total)
            if created:
                named = dict(zip(self.labelnames, labels, strict=True))
                family.samples.append(Sample(self.name + "_created", named, child.created, None, None))
        return family


def _go_float(bound: float) -> str:
    """A bucket bound as Prometheus writes it (``0.5``, ``1.0``, ``120.0``)."""
    return repr(float(bound))


class LoopCollector(Collector):
    def __init__(self, families: Sequence[LoopCounter | LoopHistogram]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.family()


__all__ = ["CounterChild", "HistogramChild", "LoopCollector", "LoopCounter", "LoopHistogram"]
