"""Run wrk with bench/wrk_post.lua and parse its JSON summary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.common import BenchError, assert_loopback

LUA = Path(__file__).resolve().parent / "wrk_post.lua"


def wrk_exe() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        raise BenchError("wrk not found (Debian package wrk; "
                         "scripts/install-test-deps installs it)")
    return exe


def write_request(workdir: Path, name: str, body: bytes, headers: dict[str, str]) -> Path:
    """Write <name>.body and <name>.headers for the lua script; returns the body path."""
    body_file = workdir / f"{name}.body"
    body_file.write_bytes(body)
    lines = [f"{k}: {v}" for k, v in headers.items()
             if k.lower() not in ("content-length", "host", "connection", "transfer-encoding")]
    (workdir / f"{name}.headers").write_text("\n".join(lines) + "\n")
    return body_file


def run(url: str, request: Path, connections: int, seconds: int, threads: int = 1,
        path: str = "/v1/messages?beta=true") -> dict[str, Any]:
    """One wrk run; returns the parsed summary plus derived req/s (raises on wrk failure)."""
    assert_loopback(url)
    env = dict(os.environ)
    env["BENCH_BODY_FILE"] = str(request)
    env["BENCH_HEADERS_FILE"] = str(request.with_suffix(".headers"))
    env["BENCH_PATH"] = path
    cmd = [wrk_exe(), f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s",
           "--timeout", "5s", "-s", str(LUA), url]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 30)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"wrk hung: {' '.join(cmd)}") from e
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        detail = out.stderr.strip() or out.stdout[-500:]
        raise BenchError(f"wrk failed ({out.returncode}): {detail}")
    result: dict[str, Any] = json.loads(line.split(" ", 1)[1])
    secs = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / secs if secs > 0 else 0.0
    result["error_total"] = sum(result["errors"].values())
    result["connections"] = connections
    result["threads"] = min(threads, connections)
    result["seconds"] = seconds
    return result
