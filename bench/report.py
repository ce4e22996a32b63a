"""One writer for every bench result: the JSON file, and its section of docs/benchmarks.md.

`bench run` and `bench peers` each own one generated section of the docs, between two markers
(DocsSection). Both sections open the same way: when and with what command the numbers were
measured, on what machine, under what load (measured_with, machine_sentence, conditions).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.machine import machine
from bench.options import Options

DOCS = REPO / "docs" / "benchmarks.md"


def _replace_atomically(path: Path, text: str) -> None:
    """Readers (and an interrupted run) see the old file or the new one, never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_atomically(path, json.dumps(results, indent=2) + "\n")


def publish(results: dict[str, Any], tables: str, path: Path) -> None:
    """Print the tables, then write the results JSON to `path` and say where."""
    print()
    print(tables)
    write_json(path, results)
    print(f"\nwrote {path}")


@dataclass(frozen=True)
class DocsSection:
    """A generated part of docs/benchmarks.md, between two markers."""

    begin: str
    end: str
    heading: str  # the heading it goes under when the docs do not have its markers yet

    @classmethod
    def of(cls, key: str, command: str, heading: str) -> DocsSection:
        """The section `command` writes, marked bench:<key>:begin / end."""
        return cls(f"<!-- bench:{key}:begin (written by `{command}`; do not edit by hand) -->",
                   f"<!-- bench:{key}:end -->", heading)

    def render(self, lines: list[str]) -> str:
        """The section: the markers around `lines` (which end with a blank line)."""
        return "\n".join([self.begin, "", *lines, self.end])

    def write(self, section: str, path: Path = DOCS) -> None:
        """Put `section` between the markers in `path`, or append it under `heading`."""
        text = path.read_text() if path.exists() else ""
        if self.begin in text and self.end in text:
            head, rest = text.split(self.begin, 1)
            text = head + section + rest.split(self.end, 1)[1]
        else:
            text = ((text.rstrip() + "\n\n" if text else "# Benchmarks\n\n")
                    + f"## {self.heading}\n\n" + section + "\n")
        _replace_atomically(path, text)

    def update(self, section: str) -> None:
        """Write `section` into docs/benchmarks.md and say so."""
        self.write(section)
        print(f"updated {DOCS}")


# What every result records about the run ------------------------------------------------------


def results_header(opts: Options, **extra: Any) -> dict[str, Any]:
    """The first keys of every results file: when, what command, how long each lane ran."""
    return {
        "schema": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": opts.command,
        "mode": "quick" if opts.quick else "full",
        "seconds_per_lane": opts.seconds,
        "rounds": opts.rounds,
        **extra,
        "machine": machine(),
        "loadavg_before": os.getloadavg(),
    }


def finish(results: dict[str, Any], started: float) -> None:
    """The last keys: the load after the run and how long it took (from time.monotonic())."""
    results["loadavg_after"] = os.getloadavg()
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)


# The sentences every docs section opens with --------------------------------------------------


def measured_with(results: dict[str, Any]) -> list[str]:
    return [f"Measured {results['generated_at']} with:", "", "```sh", results["command"], "```",
            ""]


def machine_sentence(m: dict[str, Any], node: str | None = None) -> str:
    return (f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_mb']} MB RAM, "
            f"{m['os']}, kernel {m['kernel']}, Python {m['python']}, "
            + (f"Node {node}, " if node is not None else "")
            + f"{m['nginx']}, {m['wrk'].split(' Copyright')[0]}.")


def conditions(results: dict[str, Any], elapsed: str) -> str:
    """How busy the machine was around the run (`elapsed`: the run's length, formatted)."""
    return (f"others kept the CPUs {results['others_cpu_busy_pct_before']:.0f}% busy just "
            f"before; whole run {elapsed} s; load average before/after "
            f"{results['loadavg_before'][0]:.2f}/{results['loadavg_after'][0]:.2f}.")


def fmt_counts(counts: dict[str, float]) -> str:
    return ", ".join(f"{int(v):,} x {k}" for k, v in sorted(counts.items())) or "nothing"


def fmt_ms(v: float) -> str:
    return f"{v:.3f}"


def latency_table(body_title: str, rows: list[tuple[str, str, dict[str, Any], dict[str, Any]]],
                  c: int) -> list[str]:
    """Direct next to ccgate: c=1 latency, what ccgate adds, c=`c` throughput.

    `rows`: (request title, body size cell, direct figures, ccgate figures) from bench.summary.
    """
    lines = [
        f"| request | {body_title} | c=1 p50 direct | c=1 p50 ccgate | **added p50** "
        f"| c=1 p99 direct | c=1 p99 ccgate | added p99 | c={c} req/s direct "
        f"| **c={c} req/s ccgate** |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for title, body, d, g in rows:
        lines.append(
            f"| {title} | {body} | {fmt_ms(d['p50_ms'])} ms | {fmt_ms(g['p50_ms'])} ms "
            f"| **{fmt_ms(g['added_p50_ms'])} ms** | {fmt_ms(d['p99_ms'])} ms "
            f"| {fmt_ms(g['p99_ms'])} ms | {fmt_ms(g['added_p99_ms'])} ms | {d['rps']:,.0f} "
            f"| **{g['rps']:,.0f}** |")
    return lines
