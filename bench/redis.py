"""A redis-server (Debian's) for `bench cost`'s limited-redis variant: 127.0.0.1, a free port,
no persistence, a throwaway directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from bench.common import BenchError
from bench.procs import LOOPBACK, free_port, stop


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server not installed (scripts/install-test-deps installs it)")
        self.binary = binary
        self.port = free_port()
        self.dir = workdir / "redis"
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", LOOPBACK, "--dir", str(self.dir), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"redis-server exited {self.proc.returncode}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        stop(self.proc)
