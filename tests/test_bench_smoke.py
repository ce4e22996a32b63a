"""Smoke test for the benchmark machinery (bench/, docs/benchmarks.md).

Runs `python -m bench run --quick` once (1 s lanes, one round, no warm-up, no docs update; here
with the uvicorn floor relay so its code paths run too) and checks that it produced
well-formed results for every lane: passthrough, translated (Anthropic in, OpenAI out) and the
500-chunk streams, that ccgate answered only 200s and that every translated answer was a valid
Anthropic message or stream. It makes no assertion about speed: speed is proven by the full
bench, never in a timed unit test.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


def _run_quick(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "quick.json"
    docs = REPO / "docs" / "benchmarks.md"
    before = docs.read_bytes() if docs.exists() else None
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--quick", "--out", str(out), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    after = docs.read_bytes() if docs.exists() else None
    assert before == after, "--quick must not rewrite docs/benchmarks.md"
    return json.loads(out.read_text())


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _run_quick(tmp_path_factory.mktemp("bench"), "--large-body", "synthetic",
                      "--floor", "uvicorn")


def test_bench_quick_run_is_well_formed(quick: dict) -> None:
    r = quick
    assert r["schema"] == 1 and r["mode"] == "quick"
    assert r["machine"]["nproc"] >= 1 and r["machine"]["python"]
    assert r["requests"]["large"]["bytes"] > 50_000 and r["requests"]["large"]["tools"] >= 20
    assert r["requests"]["small"]["bytes"] < 1_000

    lanes = r["lanes"]
    assert {(ln["target"], ln["request"], ln["connections"]) for ln in lanes} == {
        (t, size, c) for t in ("direct", "ccgate", "floor-uvicorn")
        for size in ("small", "large") for c in (1, 32)
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
    assert [t["key"] for t in r["targets"]][:5] == [
        "added_p50_small_ms", "added_p50_large_ms", "rps_small_c32", "rps_large_c32",
        "idle_rss_mb",
    ]
    assert all(isinstance(t["pass"], bool) and _finite(t["measured"]) for t in r["targets"])
    rss = r["rss"]
    assert rss["idle"]["vmrss_kb"] > 0 and rss["after_load"]["vmrss_kb"] > 0
    assert rss["idle"]["processes"] == 1  # one worker process, no children


def test_bench_translated_lanes(quick: dict) -> None:
    """Anthropic in, OpenAI out: every lane produced numbers from valid Anthropic answers."""
    t = quick["translated"]
    # The bench refuses to measure unless every translated answer was valid Anthropic (JSON
    # message or well-ordered stream with the exact text and all 500 chunks in order).
    assert t["checks"]["valid_anthropic_answers"] is True
    assert t["checks"]["ccgate_errors"] == 0 and t["checks"]["direct_errors"] == 0
    assert set(t["checks"]["metrics_messages_by_status"]) <= {"200", "499"}
    assert t["requests"]["large"]["openai_bytes"] > 50_000  # the translated Claude Code body
    assert 0 < t["requests"]["small"]["openai_bytes"] < 1_000

    assert {(ln["target"], ln["request"], ln["connections"]) for ln in t["lanes"]} == {
        *((w, size, c) for w in ("direct", "ccgate") for size in ("small", "large")
          for c in (1, 32)),
        ("direct", "burst", 32), ("ccgate", "burst", 32),
    }
    for ln in t["lanes"]:
        assert ln["requests"] > 0 and ln["error_total"] == 0, ln
        assert _finite(ln["rps"]) and ln["latency_us"]["p50"] > 0
    for size in ("small", "large"):
        assert _finite(t["summary"][size]["ccgate"]["added_p50_ms"])

    for name in ("burst", "paced"):
        lane = t["streams"][name]
        assert lane["chunks"] == 500
        assert set(lane["targets"]) == {"direct", "floor", "ccgate"}
        for side in lane["targets"].values():
            assert 0 < side["ttfb_us"] <= side["ttft_us"] <= side["total_us"]
        added = lane["added"]["ccgate"]
        for key in ("ttfb_us", "ttft_us", "total_us", "per_chunk_us"):
            assert _finite(added[key]), (name, key)
    paced = t["streams"]["paced"]
    assert paced["targets"]["ccgate"]["reads"] >= 250  # chunks really came one read at a time
    assert _finite(paced["added"]["ccgate"]["chunk_latency_p50_us"])
    assert _finite(paced["added"]["ccgate"]["request_forwarding_us"])
    keys = [x["key"] for x in quick["targets"]]
    assert {"added_p50_small_oai_ms", "per_chunk_burst_us", "chunk_latency_paced_us"} <= set(keys)
    # Issue 20's ratios to the floor relay of the same run, worked out from these very lanes.
    perf = {x["key"]: x for x in quick["targets"] if x["issue"] == 20}
    assert set(perf) == {"ratio_added_p50_small", "ratio_rps_small_c32", "ratio_added_p50_large",
                         "ratio_rps_large_c32", "translated_added_p50_large_ms",
                         "translated_rps_large_c32", "ratio_paced_chunk_p50"}
    small, floor = quick["summary"]["small"]["ccgate"], quick["summary"]["small"]["floor-uvicorn"]
    assert perf["ratio_rps_small_c32"]["measured"] == pytest.approx(small["rps"] / floor["rps"])
    assert all(_finite(x["measured"]) for x in perf.values())


def test_bench_perf_targets_judge_ratios_to_the_floor() -> None:
    """Issue 20's table: a lane passes or fails by its ratio to the floor, not by its speed."""
    from bench import perf_targets

    def run(ccgate_rps: float, floor_rps: float) -> dict:
        side = {"added_p50_ms": 0.4, "rps": ccgate_rps}
        floor = {"added_p50_ms": 0.4, "rps": floor_rps}
        return {"summary": {s: {"ccgate": side, "floor-uvicorn": floor} for s in ("small", "large")}}

    slow_machine = perf_targets.targets(run(770, 1000), ["uvicorn"], 32)
    fast_machine = perf_targets.targets(run(7_600, 10_000), ["uvicorn"], 32)
    by_key = {t["key"]: t["pass"] for t in slow_machine}
    assert by_key["ratio_rps_small_c32"] is True and by_key["ratio_added_p50_small"] is True
    assert {t["key"]: t["pass"] for t in fast_machine}["ratio_rps_small_c32"] is False
    assert perf_targets.targets(run(1, 1), [], 32) == []  # no floor, no ratios
    table = perf_targets.runs_table([{"targets": slow_machine}, {"targets": fast_machine}])
    assert table[-1] == "every target met in 1 of 2 runs"


def test_bench_stream_checks_reject_broken_answers() -> None:
    """The validators the lanes rely on accept the real thing and refuse near misses."""
    from bench import answers, checks

    good = answers.ANTH_LONG_SSE
    assert checks.check_anthropic_sse(good, answers.LONG_TEXT) is None
    assert checks.markers_in_order(good) is None
    assert checks.check_anthropic_sse(good[: len(good) // 2], None)  # cut short
    assert checks.check_anthropic_sse(good.replace(b"end_turn", b"nonsense"), None)
    dropped = good.replace(answers.anth_text(answers.marker(7)), b"")
    assert checks.check_anthropic_sse(dropped, answers.LONG_TEXT)
    assert checks.markers_in_order(dropped)
    assert checks.check_anthropic_sse(answers.OAI_LONG_SSE, None)  # OpenAI is not Anthropic
    assert checks.check_anthropic_message(b'{"type":"message"}')
    msg = json.loads(answers.CHAT_COMPLETION_BYTES)
    assert checks.check_anthropic_message(json.dumps(msg).encode())
    assert checks.check_anthropic_message(answers.MESSAGE_BYTES) is None
    assert checks.check_anthropic_sse(answers.ANTH_SHORT_SSE) is None


def test_bench_docs_writer_replaces_only_its_section(tmp_path: Path) -> None:
    """`bench run` and `bench peers` rewrite their own part of the docs and nothing else."""
    from bench import run_report
    from bench.peers import report as peers_report
    from bench.report import DocsSection

    docs = (REPO / "docs" / "benchmarks.md").read_text()
    for section in (run_report.SECTION, peers_report.SECTION):  # replaced in place, not appended
        assert section.begin in docs and section.end in docs

    demo = DocsSection.of("demo", "python -m bench demo", "Demo")
    path = tmp_path / "benchmarks.md"
    demo.write(demo.render(["first", ""]), path)  # no file yet: a new one, under the heading
    assert path.read_text() == (
        "# Benchmarks\n\n## Demo\n\n"
        "<!-- bench:demo:begin (written by `python -m bench demo`; do not edit by hand) -->\n\n"
        "first\n\n<!-- bench:demo:end -->\n")
    path.write_text("intro\n\n" + path.read_text().split("## Demo\n\n")[1] + "\noutro\n")
    demo.write(demo.render(["second", ""]), path)
    text = path.read_text()
    assert text.startswith("intro\n\n<!-- bench:demo:begin") and text.endswith("end -->\n\noutro\n")
    assert "second" in text and "first" not in text


def test_bench_peers_harness_with_ccgate_only(tmp_path: Path) -> None:
    """`bench peers --quick --only ccgate`: the peers code paths, no installs, no timing."""
    out = tmp_path / "peers.json"
    docs = REPO / "docs" / "benchmarks.md"
    before = docs.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "peers", "--quick", "--only", "ccgate", "--no-trace",
         "--no-install", "--large-body", "synthetic", "--streams-open", "5", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, f"peers failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert docs.read_bytes() == before, "--quick must not rewrite docs/benchmarks.md"
    r = json.loads(out.read_text())
    cc = r["peers"]["ccgate"]
    for key in ("pt-small", "pt-large", "tr-small", "tr-large"):
        lane = cc["lanes"][key]
        assert "error" not in lane, (key, lane)
        assert set(lane) == {"1", "32"}
        assert lane["32"]["gateway"]["requests"] > 0 and lane["32"]["gateway"]["errors"] == 0
        assert _finite(lane["1"]["added_p50_ms"])
    for key in ("pt-burst", "pt-paced", "tr-burst", "tr-paced"):
        lane = cc["streams"][key]
        assert "error" not in lane, (key, lane)
        assert _finite(lane["added"]["gateway"]["ttfb_us"])
    assert cc["correctness"]["pt-cc"]["valid"] and cc["correctness"]["tr-cc"]["valid"]
    assert cc["correctness"]["pt-cc"]["byte_exact"] is True  # passthrough is byte for byte
    for slow in ("pt-slow", "tr-slow"):
        assert cc["memory"][slow]["established"] == 5, cc["memory"][slow]
    assert cc["memory"]["idle"]["tree_vmrss_kb"] > 0
    assert "| lane | ccgate" in proc.stdout  # the tables rendered


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


def test_bench_cost_is_well_formed(tmp_path: Path) -> None:
    """`python -m bench cost`: one round per variant; numbers present, no speed asserted."""
    out = tmp_path / "cost.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "cost", "full", "bare", "budget", "limited-redis", "--rounds", "1",
         "--seconds", "1",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"bench cost failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"full", "bare", "budget", "limited-redis", "floor"}
    for v in result["variants"].values():
        assert v["rps"] > 0 and _finite(v["cpu_us_per_request"]) and _finite(v["cpu_vs_floor"])
    assert "| full |" in proc.stdout and "| floor |" in proc.stdout


def test_bench_scale_quick_run_is_well_formed(tmp_path: Path) -> None:
    """The scale lane (N concurrent long streams, direct vs the floor vs ccgate) end to end, tiny:
    every stream completes every way with every chunk, the relays and the machine were measured,
    and a level past the open-files limit is reported, not run. No timing."""
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "scale", "--quick", "--streams", "20,10000000", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"bench scale failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    r = json.loads(out.read_text())
    assert r["schema"] == 1 and r["mode"] == "quick" and r["open_files"] >= 1024
    (level,) = r["levels"]
    assert level["streams"] == 20
    for side in ("direct", "floor", "ccgate"):
        run = level[side]
        assert run["completed"] == 20 and run["errors"] == 0, run
        assert run["chunks"] == 20 * r["chunks"]
        assert _finite(run["wall_s"]) and _finite(run["ttfb_ms"]["p99"]) and _finite(run["chunk_ms"]["p99"])
        # Everyone's CPU over the side, and the machine's: how much of a ratio is the machine.
        cpu = run["cpu"]
        assert cpu["upstream_cpu_s"] >= 0 and cpu["client_cpu_s"] > 0 and 0 <= cpu["machine_busy"] <= 1
        assert ("gateway_cpu_s" in cpu) == (side != "direct")
    for side in ("floor", "ccgate"):
        gateway = level[side]["gateway"]
        assert gateway["peak_rss_kb"] > 0 and gateway["peak_fds"] >= 20 and not gateway["died"]
        assert gateway["cpu_us_per_stream"] > 0
    assert _finite(level["wall_ratio"]) and _finite(level["added_chunk_ms"]["p99"])
    assert _finite(level["floor_added"]["wall_ratio"])
    # A level one gateway process cannot hold descriptors for is said, not attempted.
    (skipped,) = r["skipped"]
    assert skipped["streams"] == 10**7 and "open files limit" in skipped["why"], skipped
    assert "10000000 streams need" in proc.stderr


def test_bench_workers_is_well_formed(tmp_path: Path) -> None:
    """`python -m bench workers`, one short round: every lane answered without errors, every
    usage row of the 2-worker gateway written, /metrics counted both workers. No speed asserted."""
    out = tmp_path / "workers.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "workers", "--rounds", "1", "--seconds", "1", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"bench workers failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    r = json.loads(out.read_text())
    assert set(r["lanes"]) == {"ccgate-1", "ccgate-2-workers", "floor-uvicorn"}
    for lane in r["lanes"].values():
        assert lane["rps"] > 0 and lane["errors"] == 0 and _finite(lane["cores"]["target"])
    rows, answered = r["usage_rows_vs_answered"]
    assert rows == answered > 0
    counted, sent = r["metrics_total_vs_wrk"]
    assert counted >= sent > 0
    assert _finite(r["ratio_2_workers"]) and r["hub"]["admit_p50_us"] > 0


def test_bench_scale_memory_is_well_formed(tmp_path: Path) -> None:
    """The memory-per-open-stream tool, tiny (20 then 60 held streams), with the tracemalloc
    probe: every stream answered in both relays, both levels read, the traced heap attributed.
    No size is asserted: a few dozen streams are below RSS's page noise."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale_memory", "--streams", "20,60", "--hold", "60", "--trace"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"bench.scale_memory failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    r = json.loads(proc.stdout)
    assert r["streams"] == [20, 60]
    for side in ("floor", "ccgate"):
        run = r[side]
        assert run["streams_ok"] == 60, run
        assert set(run["rss_kb"]) == {"20", "60"} and all(v > 0 for v in run["rss_kb"].values())
        assert _finite(run["kb_per_stream"]) and run["traced_bytes_per_stream"] > 0
        assert f"{side:7} " in proc.stderr  # its traced top lines
