"""Process control: the servers the bench starts on 127.0.0.1, and what they cost (RSS, CPU).

Every process is one we started, stopped by its own pid (never by name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import LOOPBACK, BenchError, assert_loopback

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


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


def clean_env(*drop_prefixes: str) -> dict[str, str]:
    """This process's environment without proxy variables or variables with these prefixes.

    A server under test must reach only the loopback upstreams, whatever the caller's shell has.
    """
    return {k: v for k, v in os.environ.items()
            if k.lower() not in PROXY_VARIABLES and not k.startswith(drop_prefixes)}


class LoopbackServer:
    """A server the bench runs as a subprocess on 127.0.0.1:<free port>."""

    what = "server"  # how errors name it

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self, argv: list[str], *, ready_path: str = "/", timeout: float = 15.0,
               **popen: Any) -> None:
        """Start `argv` and wait until `ready_path` answers; stop it again if it does not."""
        popen.setdefault("stdin", subprocess.DEVNULL)
        self.proc = subprocess.Popen(argv, **popen)
        try:
            wait_http(self.url + ready_path, self.proc, timeout=timeout, what=self.what)
        except BenchError as e:
            self.stop()
            raise BenchError(f"{e}{self.failure_detail()}") from None

    def failure_detail(self) -> str:
        """What to add to a start-up error (e.g. the tail of the server's log)."""
        return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        stop(self.proc)


# What a process costs -------------------------------------------------------------------------


def cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def descendants(pid: int) -> list[int]:
    """`pid`'s descendants from /proc, nearest first."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop(0))
        out += kids
        todo += kids
    return out


def _status_kb(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def rss_kb(pid: int) -> dict[str, int | None]:
    """VmRSS and VmHWM of `pid` and the VmRSS summed over its process tree, in KiB."""
    tree = [pid, *descendants(pid)]
    return {
        "vmrss_kb": _status_kb(pid, "VmRSS"),
        "vmhwm_kb": _status_kb(pid, "VmHWM"),
        "tree_vmrss_kb": sum(_status_kb(p, "VmRSS") or 0 for p in tree),
        "processes": len(tree),
    }


def cpu_ticks(pid: int) -> int:
    """utime + stime of `pid` so far, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def ticks_to_seconds(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")
