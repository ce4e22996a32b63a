"""Smoke test for the benchmark machinery (bench/, docs/benchmarks.md).

Runs `python -m bench run --quick` (1 s lanes, no warm-up, no floor relays, no docs update)
and checks that it produced well-formed results and that ccgate answered only 200s. It makes
no assertion about speed: speed is proven by the full bench, never in a timed unit test.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run_quick(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "quick.json"
    docs = REPO / "docs" / "benchmarks.md"
    before = docs.read_bytes() if docs.exists() else None
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--quick", "--out", str(out), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    after = docs.read_bytes() if docs.exists() else None
    assert before == after, "--quick must not rewrite docs/benchmarks.md"
    return json.loads(out.read_text())


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def test_bench_quick_run_is_well_formed(tmp_path: Path) -> None:
    r = _run_quick(tmp_path, "--large-body", "synthetic")
    assert r["schema"] == 1 and r["mode"] == "quick"
    assert r["machine"]["nproc"] >= 1 and r["machine"]["python"]
    assert r["requests"]["large"]["bytes"] > 50_000 and r["requests"]["large"]["tools"] >= 20
    assert r["requests"]["small"]["bytes"] < 1_000

    lanes = r["lanes"]
    assert {(ln["target"], ln["request"], ln["connections"]) for ln in lanes} == {
        (t, size, c) for t in ("direct", "ccgate") for size in ("small", "large")
        for c in (1, 32)
    }
    for ln in lanes:
        assert ln["requests"] > 0, ln
        assert ln["error_total"] == 0, ln  # socket errors or non-2xx answers
        assert _finite(ln["rps"]) and ln["rps"] > 0
        lat = ln["latency_us"]
        assert 0 < lat["p50"] <= lat["p99"] <= lat["max"] * 1.01 + 1, lat

    checks = r["checks"]
    assert checks["ccgate_errors"] == 0 and checks["direct_errors"] == 0
    by_status = checks["metrics_messages_by_status"]
    assert by_status.get("200", 0) >= checks["ccgate_requests"] * 0.9, by_status
    assert set(by_status) <= {"200", "499"}, by_status  # 499: wrk stopped mid-request
    assert checks["access_log_lines_during_load"] >= checks["ccgate_requests"] * 0.9

    for size in ("small", "large"):
        row = r["summary"][size]
        for key in ("p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms", "rps"):
            assert _finite(row["ccgate"][key]), (size, key)
    assert [t["key"] for t in r["targets"]] == [
        "added_p50_small_ms", "added_p50_large_ms", "rps_small_c32", "rps_large_c32",
        "idle_rss_mb",
    ]
    assert all(isinstance(t["pass"], bool) and _finite(t["measured"]) for t in r["targets"])
    rss = r["rss"]
    assert rss["idle"]["vmrss_kb"] > 0 and rss["after_load"]["vmrss_kb"] > 0
    assert rss["idle"]["processes"] == 1  # one worker process, no children


def test_bench_capture_from_real_cli(tmp_path: Path) -> None:
    """The capture drives the pinned CLI against a loopback server and keeps its request."""
    from bench import capture
    from bench.common import BenchError

    try:
        capture.cli_path()
    except BenchError as exc:
        pytest.skip(str(exc))
    meta = capture.capture(tmp_path / "work", cache_dir=tmp_path / "cache", timeout=90)
    body = json.loads((tmp_path / "cache" / "body.json").read_bytes())
    assert meta["path"].startswith("/v1/messages")
    assert body["stream"] is True and body["tools"] and body["messages"]
    assert meta["tools"] == len(body["tools"]) >= 10
    headers = json.loads((tmp_path / "cache" / "headers.json").read_text())
    assert headers["x-api-key"] == "<redacted>"
    assert headers["anthropic-version"] == "2023-06-01"
