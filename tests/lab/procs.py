"""Small helpers shared by the lab's subprocess-backed servers (squid, dante, microsocks)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Hosts that the lab's proxies resolve to loopback (never to the real Internet).
LAB_HOSTS: tuple[str, ...] = ("api.anthropic.com", "platform.claude.com", "localhost")


def free_port() -> int:
    """Ask the OS for a free TCP port on 127.0.0.1 (for servers that need a number up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str, *candidates: str) -> str:
    """Path of an installed binary, or RuntimeError naming the install script."""
    for cand in (*candidates, name):
        found = shutil.which(cand) or (cand if os.path.isfile(cand) else None)
        if found:
            return found
    raise RuntimeError(f"{name} not installed: run scripts/install-test-deps")


def lab_workdir(prefix: str, owner: str | None = None) -> Path:
    """A fresh world-traversable directory under /tmp (pytest's tmp dirs are mode 700, which a
    server that drops privileges to ``owner`` could not enter)."""
    path = Path(tempfile.mkdtemp(prefix=f"ccgate-lab-{prefix}-"))
    path.chmod(0o755)
    chown(path, owner)
    return path


def chown(path: Path, owner: str | None) -> None:
    if owner and os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def hosts_file(directory: Path, names: tuple[str, ...] = LAB_HOSTS) -> Path:
    path = directory / "hosts"
    path.write_text("127.0.0.1 " + " ".join(names) + "\n")
    path.chmod(0o644)
    return path


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Wait until 127.0.0.1:port accepts TCP, or raise with the log tail if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited rc={proc.returncode}: {tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not listening on {port} after {timeout}s: {tail(log)}")


def tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the process we started, SIGKILL it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15.0, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy, and return that (bounded: an
    ``AssertionError`` naming ``what`` and the last value after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
        time.sleep(every)
