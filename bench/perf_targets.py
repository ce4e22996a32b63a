"""Issue 20's targets ([perf]): every lane against the floor relay of the same run.

Issue 2's and 4's targets (run_report, translated_report) are absolute numbers; issue 20's are
ratios to the bare relay (bench/relay_floor.py on uvicorn + aiohttp, the first `--floor`), so
they hold on a slow machine and a fast one alike: latency added at most 1.3× the floor's,
throughput at least 1/1.3 of it, the paced translated stream's added latency per chunk at most
1.2× the floor's (the floor passes the OpenAI chunks on untranslated), and the translated Claude
Code request at most 1 ms added p50 and at least 1,000 req/s at c=32. A run without a floor
(`--quick`, `--floor ''`) has only the two absolute ones.
"""

from __future__ import annotations

from typing import Any

from bench.summary import target

ISSUE = 20
LATENCY_RATIO = 1.3
THROUGHPUT_RATIO = 1 / LATENCY_RATIO
PACED_RATIO = 1.2


def _ratio(num: float | None, den: float | None) -> float:
    return num / den if num is not None and den else float("nan")


def _passthrough(summary: dict[str, Any], floor: str, c: int) -> list[dict[str, Any]]:
    out = []
    for size, title in (("small", "small"), ("large", "Claude Code body")):
        g, f = summary[size]["ccgate"], summary[size][floor]
        out.append(target(f"ratio_added_p50_{size}", ISSUE,
                          f"added p50, {title}, c=1, × the floor's", LATENCY_RATIO, "×", False,
                          _ratio(g["added_p50_ms"], f["added_p50_ms"])))
        out.append(target(f"ratio_rps_{size}_c{c}", ISSUE,
                          f"req/s, {title}, c={c}, × the floor's", THROUGHPUT_RATIO, "×", True,
                          _ratio(g["rps"], f["rps"])))
    return out


def _translated(t: dict[str, Any], c: int, with_floor: bool) -> list[dict[str, Any]]:
    large = t["summary"]["large"]["ccgate"]
    out = [target("translated_added_p50_large_ms", ISSUE,
                  "translated Claude Code request: added p50, c=1", 1.0, "ms", False,
                  large["added_p50_ms"]),
           target(f"translated_rps_large_c{c}", ISSUE,
                  f"translated Claude Code request: req/s, c={c}", 1000, "req/s", True,
                  large["rps"])]
    added = t["streams"]["paced"]["added"]
    if with_floor and "floor" in added:
        out.append(target("ratio_paced_chunk_p50", ISSUE,
                          "paced stream: added latency per chunk p50, × the floor's",
                          PACED_RATIO, "×", False,
                          _ratio(added["ccgate"].get("chunk_latency_p50_us"),
                                 added["floor"].get("chunk_latency_p50_us"))))
    return out


def targets(results: dict[str, Any], floors: list[str], c: int) -> list[dict[str, Any]]:
    """Issue 20's targets of one run; `floors` = the `--floor` servers, the first one counts."""
    floor = f"floor-{floors[0]}" if floors else None
    out = _passthrough(results["summary"], floor, c) if floor else []
    if "translated" in results:
        out += _translated(results["translated"], c, floor is not None)
    return out


def runs_table(runs: list[dict[str, Any]]) -> list[str]:
    """Issue 20's targets across several runs' results: one column per run."""
    per_run = [perf for r in runs if (perf := _of_run(r))]
    if not per_run:
        return ["no run here has issue 20's targets (a run without a floor, or an older bench)"]
    head = "| target | limit | " + " | ".join(f"run {i + 1}" for i in range(len(per_run))) + " |"
    lines = [head, "|---|--:|" + "--:|" * len(per_run)]
    for row in zip(*per_run, strict=False):
        first = row[0]
        unit = first["unit"]
        limit = f"{first['op']} {_fmt(first['limit'], unit)}"
        cells = [f"{_fmt(t['measured'], unit)} {'✓' if t['pass'] else '✗'}" for t in row]
        lines.append(f"| {first['target']} | {limit} | " + " | ".join(cells) + " |")
    met = sum(all(t["pass"] for t in run) for run in per_run)
    lines += ["", f"every target met in {met} of {len(per_run)} runs"]
    return lines


def _of_run(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's issue-20 targets, worked out from its lanes if it predates them."""
    listed = [t for t in r.get("targets", []) if t.get("issue") == ISSUE]
    if listed or "summary" not in r:
        return listed
    floors = sorted({ln["target"].removeprefix("floor-") for ln in r["lanes"]
                     if ln["target"].startswith("floor-")}, key=lambda f: f != "uvicorn")
    return targets(r, floors, max(ln["connections"] for ln in r["lanes"]))


def _fmt(v: float, unit: str) -> str:
    if unit == "×":
        return f"{v:.2f}×"
    return f"{v:,.0f} req/s" if unit == "req/s" else f"{v:.3f} ms" if unit == "ms" else f"{v:.1f} {unit}"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m bench.perf_targets",
                                 description="issue 20's targets over several `bench run` results")
    ap.add_argument("results", nargs="+", type=Path, help="bench/results/*.json of `bench run`")
    args = ap.parse_args(argv)
    print("\n".join(runs_table([json.loads(p.read_text()) for p in args.results])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
