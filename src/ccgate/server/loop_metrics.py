"""Counters and histograms for the request path that cost a dict lookup and a few additions.

prometheus_client's metrics take a lock on every ``inc``/``observe`` (they may be shared between
threads); the gateway's request path runs on one event loop thread, and ``/metrics`` is rendered
on that same thread, so the per-request families added for issue 19 (tokens, attempts, upstream
latency, time to first token) keep plain numbers in dicts and are turned into metric families
only when scraped, by ``LoopCollector.collect``. Label values are tuples in the family's label
order; a family's children are never removed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class LoopCounter:
    __slots__ = ("help", "labelnames", "name", "values")

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str]) -> None:
        self.name, self.help, self.labelnames = name, help_text, list(labelnames)
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, labels: tuple[str, ...], amount: float = 1) -> None:
        values = self.values
        values[labels] = values.get(labels, 0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.help, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            family.add_metric(list(labels), value)
        return family


class HistogramChild:
    """One label set's buckets (not cumulative: one increment per observation) and sum."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one is +Inf
        self.total = 0.0


class LoopHistogram:
    __slots__ = ("bounds", "children", "help", "labelnames", "name")

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.help, self.labelnames = name, help_text, list(labelnames)
        self.bounds = [float(b) for b in buckets]
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
        for labels, child in list(self.children.items()):
            running, buckets = 0, []
            for le, count in zip(les, child.counts, strict=True):
                running += count
                buckets.append((le, running))
            family.add_metric(list(labels), buckets, child.total)
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


__all__ = ["HistogramChild", "LoopCollector", "LoopCounter", "LoopHistogram"]
