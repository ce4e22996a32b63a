"""What the numbers were measured on, and how busy other processes kept it."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

QUIET_PCT = 15.0  # CPU busy % from other processes above which a run is flagged noisy


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields), idle


def cpu_busy_pct(seconds: float = 1.0) -> float:
    """How busy all CPUs were over `seconds` (0-100): run before the bench starts anything."""
    total0, idle0 = _cpu_times()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


def wait_for_quiet(seconds: int, log: Callable[[str], None]) -> float:
    """Wait up to `seconds` for the CPUs to be quiet; returns how busy others kept them.

    Measured before the bench starts anything, so all of it is other processes' doing.
    """
    busy = cpu_busy_pct()
    deadline = time.monotonic() + seconds
    while busy > QUIET_PCT and time.monotonic() < deadline:
        log(f"waiting for a quiet machine: others keep the CPUs {busy:.0f}% busy")
        time.sleep(2)
        busy = cpu_busy_pct()
    if busy > QUIET_PCT:
        log(f"WARNING: other processes keep the CPUs {busy:.0f}% busy; numbers will be noisy")
    return busy


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def node_version() -> str:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"


def _proc_line(path: str, prefix: str, sep: str) -> str | None:
    """The value of the first line of `path` that starts with `prefix`, if any."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(sep, 1)[1].strip()
    return None


def machine() -> dict[str, str | int]:
    """What the numbers were measured on."""
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
    os_name = _proc_line("/etc/os-release", "PRETTY_NAME=", "=")
    return {
        "nproc": os.cpu_count() or 0,
        "cpu_model": _proc_line("/proc/cpuinfo", "model name", ":") or "unknown",
        "mem_total_mb": mem_kb // 1024,
        "kernel": platform.release(),
        "os": os_name.strip('"') if os_name is not None else platform.platform(),
        "python": sys.version.split()[0],
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]),
    }
