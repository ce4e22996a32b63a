"""Plot of `python -m bench peers` results: added p50 latency vs concurrency, per gateway.

Runs in bench/.peers/tools (matplotlib lives there, never in the project's dependencies):
  bench/.peers/tools/bin/python -m bench.plot bench/results/peers.json docs/bench-peers-latency.png
Imports nothing else of the project.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PANELS = (("pt-large", "passthrough, Claude Code request"),
          ("tr-large", "translated, Claude Code request"))


def series(results: dict[str, Any], key: str) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for name, peer in results["peers"].items():
        lane = peer["lanes"].get(key)
        if not lane or "error" in lane or "unsupported" in lane:
            continue
        pts = sorted((int(c), max(v["added_p50_ms"], 1e-3)) for c, v in lane.items()
                     if "added_p50_ms" in v)
        out[name] = pts
    return out


def main(argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(Path(argv[0]).read_text())
    names = list(results["peers"])
    colors = {n: f"C{i}" for i, n in enumerate(names)}  # one colour per gateway, both panels
    fig, axes = plt.subplots(1, len(PANELS), figsize=(12, 4.8), sharey=True)
    for ax, (key, title) in zip(axes, PANELS, strict=True):
        for name, pts in series(results, key).items():
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o", linewidth=2.4 if name == "ccgate" else 1.4,
                    color=colors[name], label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(results.get("sweep", [1, 8, 32, 64]))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("concurrent connections (wrk -c)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("added p50 latency vs direct (ms, log)")
    failed = [f"{n}: {k} fails" for n, p in results["peers"].items() for k, _ in PANELS
              if "error" in (p["lanes"].get(k) or {})]
    handles = [matplotlib.lines.Line2D([], [], color=colors[n], marker="o", label=n)
               for n in names]
    fig.legend(handles=handles, loc="lower center", ncol=len(names), fontsize=9,
               bbox_to_anchor=(0.5, 0.0))
    m = results["machine"]
    fig.suptitle(f"Added p50 latency vs concurrency, same static upstream (nginx), "
                 f"{results['generated_at'][:10]}, {m['nproc']} CPUs shared by all"
                 + (f"\n({'; '.join(failed)})" if failed else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(argv[1], dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
