"""A real ``redis-server`` (Debian's) on 127.0.0.1, an OS-picked port, a throwaway directory,
no persistence. ``stop()`` and ``start()`` again on the same port mid-test (an outage).
``extra``: more redis-server arguments (``--requirepass``, ``--unixsocket``, TLS); ``tls``: the
port speaks TLS, this client context checks that it answers."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.lab.procs import free_port, lab_workdir, require_binary, stop_process, tail, wait_port


class RedisServer:
    def __init__(self, extra: Sequence[str] = (), *, tls: ssl.SSLContext | None = None) -> None:
        self.extra = list(extra)
        self.tls = tls
        self.binary = require_binary("redis-server", "/usr/bin/redis-server")
        self.port = free_port()
        self.dir = lab_workdir("redis")
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no",
                "--logfile", str(self.log), *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, 10.0, self.log)
        self._wait_ping()
        return self

    def _wait_ping(self) -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                    conn = raw if self.tls is None else self.tls.wrap_socket(raw, server_hostname="localhost")
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith((b"+PONG", b"-NOAUTH")):  # NOAUTH: up, with a password
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server not answering PING: {tail(self.log)}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def haproxy_binary() -> str:
    return require_binary("haproxy", "/usr/sbin/haproxy")


def write_haproxy_config(path: Path, port: int, backends: list[int]) -> None:
    """Round robin over ``backends`` (ccgate replicas), health-checked on /readyz as docs/team.md
    shows, checked every 500 ms so a killed replica is taken out quickly; ``x-replica`` names
    the server that answered (r0, r1, ...), for the tests."""
    servers = "\n".join(f"    server r{i} 127.0.0.1:{p} check inter 500ms fall 2 rise 1"
                        for i, p in enumerate(backends))
    path.write_text(f"""global
    maxconn 1000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch

frontend gateway
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-response set-header x-replica %s
{servers}
""")
