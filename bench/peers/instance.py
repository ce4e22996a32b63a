"""One running gateway: started for some routes, stopped with everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from bench.peers.gateways import Peer
from bench.peers.routes import Route
from bench.procs import LoopbackServer, cmdline, descendants, rss_kb, stop


class Instance(LoopbackServer):
    """`peer` serving `routes`, with a fresh HOME under `workdir`; optionally under strace."""

    def __init__(self, peer: Peer, workdir: Path, routes: list[Route], trace: bool = False
                 ) -> None:
        super().__init__()
        self.peer = peer
        self.what = peer.name
        self.routes = routes
        self.routes_by = {r.name: r for r in routes}
        tag = routes[0].name if len(routes) == 1 else "all"
        self.home = workdir / f"peer-{peer.name}-{tag}{'-trace' if trace else ''}"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = self.home / "stderr.log"
        self.trace_file = self.home / "connect.trace" if trace else None
        self.startup_s = 0.0

    def start(self) -> Instance:
        argv, env = self.peer.argv(self.home, self.port, self.routes)
        if self.trace_file is not None:
            argv = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(self.trace_file),
                    *argv]
        t0 = time.monotonic()
        self.launch(argv, timeout=self.peer.startup_timeout, cwd=self.home, env=env,
                    stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self.startup_s = time.monotonic() - t0
        return self

    def failure_detail(self) -> str:
        return f": {self.tail()}"

    def rss(self) -> dict[str, int | None]:
        return rss_kb(self.pid)

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-600:].strip()
        except OSError:
            return ""

    def path_for(self, route: Route) -> str:
        """Where a client sends a request for `route`."""
        return route.upstream_path if self.peer.relays_client_path else self.peer.messages_path

    def headers(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, **self.peer.auth()}

    def non_loopback_connects(self) -> list[str]:
        """connect() calls strace saw to anything but loopback (or local sockets)."""
        if self.trace_file is None or not self.trace_file.exists():
            return []
        bad = set()
        for path in self.trace_file.parent.glob(self.trace_file.name + "*"):
            for line in path.read_text(errors="replace").splitlines():
                if "connect(" not in line or "AF_UNIX" in line or "AF_NETLINK" in line:
                    continue
                if 'inet_addr("127.' in line or "::1" in line or "AF_UNSPEC" in line:
                    continue
                if "sin_addr" in line or "sin6_addr" in line:
                    bad.add(line.split("connect(", 1)[1][:160])
        return sorted(bad)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        tree = [(pid, cmdline(pid)) for pid in descendants(self.proc.pid)]
        if self.trace_file is not None:
            # strace would detach and leave the traced gateway running: stop that one first.
            for pid, _ in tree[:1]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        stop(self.proc, grace=15.0)
        for pid, cmd in tree:  # anything the gateway started and left behind (our own tree)
            if cmdline(pid) == cmd:  # the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
