"""Small helpers shared by the bench modules: ports, processes, RSS, machine facts."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


class BenchError(RuntimeError):
    """A bench step failed; the message says which and why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def assert_loopback(url: str) -> None:
    """Refuse any URL whose host is not a literal 127.0.0.0/8 address."""
    host = urllib.request.urlparse(url).hostname or ""
    if not host.startswith("127."):
        raise BenchError(f"refusing non-loopback URL {url!r}")


def wait_http(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 15.0,
              what: str = "server") -> None:
    """Poll `url` until it answers anything (any HTTP status); fail if `proc` exits."""
    assert_loopback(url)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return  # it answered: an HTTP error status is still an answer
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise BenchError(f"{what} did not answer {url} within {timeout:.0f}s ({last})")


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """One loopback HTTP request; returns (status, body) for any status."""
    assert_loopback(url)
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
         grace: float = 10.0) -> None:
    """Stop one process we started (by its pid only), escalating to SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)


def _status_kb(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    with contextlib.suppress(OSError):
        for task in task_dir.iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def rss_kb(pid: int) -> dict[str, int | None]:
    """VmRSS and VmHWM of `pid` and the VmRSS summed over its process tree, in KiB."""
    tree = 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        tree += _status_kb(p, "VmRSS") or 0
        stack += _children(p)
    return {
        "vmrss_kb": _status_kb(pid, "VmRSS"),
        "vmhwm_kb": _status_kb(pid, "VmHWM"),
        "tree_vmrss_kb": tree,
        "processes": len(seen),
    }


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


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def machine() -> dict[str, str | int]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "nproc": os.cpu_count() or 0,
        "cpu_model": cpu,
        "mem_total_mb": mem_kb // 1024,
        "kernel": platform.release(),
        "os": os_name,
        "python": sys.version.split()[0],
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]),
    }
