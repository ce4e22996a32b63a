"""Which metric names a PromQL expression reads, and which a real scrape exports."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

# Metric names start with our prefixes; label names, functions and keywords never do.
_NAME = re.compile(r"\b((?:ccgate|process|python)_[a-zA-Z0-9_]+)")
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created"), "gauge": (), "info": ("_info",)}


def metric_names(expr: str) -> set[str]:
    return set(_NAME.findall(expr))


def exported_names(scrape: str) -> set[str]:
    """Every series name the scrape declares (``# TYPE``, also for a labelled metric that has no
    series yet) or carries."""
    names: set[str] = set()
    for family in text_string_to_metric_families(scrape):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
        names.update(s.name for s in family.samples)
    return names
