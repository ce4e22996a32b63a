"""/metrics across workers: one scrape shows the totals of every worker (``serve --workers``).

A scrape lands on one worker. That worker asks the others, through the supervisor's hub, for a
snapshot of their registry (``snapshot``: the collected samples, msgpack), and renders the sum
(``merge``). Nothing changes on the request path: each worker keeps its own plain counters
(and the lock-free families of ``loop_metrics``); the cost is paid per scrape.

How samples combine, per family type:

- counters, histograms, summaries (and their ``_count``/``_sum``/``_bucket`` samples): summed;
  ``*_created`` timestamps: the earliest;
- gauges that measure an amount held by each worker (open connections, streams, requests in
  flight, memory, open files): summed; ``process_start_time_seconds``: the earliest;
- other gauges are states (``ccgate_breaker_state``, ``ccgate_upstream_key_state``,
  ``ccgate_build_info``): the highest, i.e. "some worker has this breaker open";
- ``ccgate_workers_reporting``: how many workers are in this answer (a worker that did not
  answer within the hub's gather timeout is missing from the totals, and this says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

SUMMED_GAUGES = frozenset({
    "ccgate_client_connections", "ccgate_requests_in_flight", "ccgate_open_streams",
    "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds",
})
EARLIEST = frozenset({"process_start_time_seconds"})
REPORTING = "ccgate_workers_reporting"

# (name, type, help, unit, [(sample name, labels, value)])
_Family = tuple[str, str, str, str, list[tuple[str, dict[str, str], float]]]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Family])


def snapshot(registry: CollectorRegistry) -> bytes:
    """This worker's samples, as another worker's ``merge`` reads them."""
    families: list[_Family] = [
        (m.name, m.type, m.documentation, m.unit, [(s.name, s.labels, s.value) for s in m.samples])
        for m in registry.collect()
    ]
    return _encoder.encode(families)


def _combine(kind: str, family: str, sample: str, old: float, new: float) -> float:
    if sample.endswith("_created") or family in EARLIEST:
        return min(old, new)
    if kind in ("counter", "histogram", "summary", "gaugehistogram", "unknown") or family in SUMMED_GAUGES:
        return old + new
    return max(old, new)


def merge(snapshots: Iterable[bytes]) -> bytes:
    """The Prometheus text of the summed snapshots (the scraped worker's own one first)."""
    order: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    reporting = 0
    for data in snapshots:
        if not data:
            continue
        reporting += 1
        for name, kind, help_text, unit, samples in _decoder.decode(data):
            if name not in order:
                order[name] = Metric(name, help_text, kind, unit)
                values[name] = {}
            into = values[name]
            for sample, labels, value in samples:
                key = (sample, tuple(sorted(labels.items())))
                old = into.get(key)
                into[key] = value if old is None else _combine(kind, name, sample, old, value)
    families = list(order.values())
    for family in families:
        family.samples = [Sample(s, dict(lbl), v, None, None) for (s, lbl), v in values[family.name].items()]
    workers = Metric(REPORTING, "Workers whose metrics are in this scrape's totals.", "gauge")
    workers.samples = [Sample(REPORTING, {}, float(reporting), None, None)]
    families.append(workers)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families

    def describe(self) -> list[Any]:
        return []


__all__ = ["merge", "snapshot"]
