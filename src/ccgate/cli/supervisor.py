"""``ccgate serve --workers N``: a supervisor process and N worker processes on one port.

The supervisor (this module's ``Supervisor``) serves no request. It

1. binds the listening socket(s) once, before anything says "listening" (``server.bind.
   listen_sockets``: a ``SO_REUSEPORT`` group on Linux, one shared socket elsewhere);
2. runs the hub (``shared.hub.HubServer``) unless Redis holds the shared state: the one rate
   limiter, the event relay and the short-lived records of every worker;
3. starts the workers as *spawned* processes (``multiprocessing``'s spawn context, as
   uvicorn's ``Multiprocess`` does, so Linux, macOS and Windows behave alike): each gets its
   socket (pickled by ``multiprocessing``: the descriptor is duplicated into the child) and a
   ``WorkerRole``, loads the config itself and runs ``cli.serve.serve_process``;
4. writes the one pidfile (its own pid: ``ccgate gateway reload`` signals it);
5. forwards SIGTERM/SIGINT as SIGTERM to every worker (each drains: uvicorn stops accepting,
   in-flight requests and streams finish, the usage writer commits) and waits up to
   ``DRAIN_SECONDS`` before killing what is left; forwards SIGHUP (config reload);
6. restarts a worker that exits unexpectedly, with a backoff per slot (``RESTART_DELAYS``),
   logged. A worker that exits with status 2 before it was ever ready (a config the worker
   refuses) stops everything with that status instead of looping.

Workers are told apart by their index (0..N-1): worker 0 says the start-up lines and the
console link; every worker's access-log line carries ``worker``; /readyz says which answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as EventType
from typing import TYPE_CHECKING, Any

from ccgate.config.load import LoadedConfig, load_config
from ccgate.errors import ConfigError
from ccgate.observe import logs
from ccgate.server.bind import BindError, listen_sockets
from ccgate.server.control import Pidfile

if TYPE_CHECKING:
    from ccgate.cli.serve import WorkerRole
    from ccgate.server.app import Gateway

log = logging.getLogger("ccgate.supervisor")

DRAIN_SECONDS = 60.0  # a worker still draining after this long is killed
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)  # per slot, after consecutive failures
STABLE_SECONDS = 10.0  # up this long: the slot's failure count starts again
POLL_SECONDS = 0.25  # how soon a dead worker is noticed (and the cost of an idle supervisor)
PARENT_CHECK_SECONDS = 1.0

multiprocessing.allow_connection_pickling()  # sockets as Process arguments (uvicorn does the same)
_spawn = multiprocessing.get_context("spawn")


@dataclass
class _Slot:
    index: int
    process: SpawnProcess | None = None
    ready: EventType | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    ever_ready: bool = False
    pids: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(self, args: argparse.Namespace, loaded: LoadedConfig, workers: int) -> None:
        self.args, self.loaded, self.count = args, loaded, workers
        server = loaded.config.server
        self.host = args.host or server.host
        self.port = args.port if args.port is not None else server.port
        self.slots = [_Slot(i) for i in range(workers)]
        self.sockets: list[socket.socket] = []
        self.exit_code = 0
        self._stop: asyncio.Event | None = None

    def run(self) -> int:
        try:
            self.sockets = listen_sockets(self.host, self.port, self.count)
        except BindError as exc:
            print(f"ccgate: {exc}", file=sys.stderr, flush=True)
            return 1
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(self._main())
        finally:
            for sock in self.sockets:
                sock.close()
        return self.exit_code

    async def _main(self) -> None:
        from ccgate.shared.hub import HubServer

        self._stop = asyncio.Event()
        hub = HubServer() if not _uses_redis(self.loaded) else None
        if hub is not None:
            await hub.start()
        self._signals()
        pidfile = Pidfile(self.host, self.port, self.loaded.source)
        pidfile.write()
        try:
            for slot in self.slots:
                self._start(slot, hub)
            while not self._stop.is_set():
                self._watch(hub)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), POLL_SECONDS)
            await self._drain()
        finally:
            pidfile.remove()
            if hub is not None:
                await hub.close()

    # Workers -----------------------------------------------------------------------------

    def _start(self, slot: _Slot, hub: Any) -> None:
        from ccgate.cli.serve import WorkerRole

        role = WorkerRole(slot.index, self.count, os.getpid(),
                          hub.address if hub is not None else None, hub.token if hub is not None else None,
                          restarted=bool(slot.pids))
        slot.ready = _spawn.Event()
        sock = self.sockets[slot.index % len(self.sockets)]
        process = _spawn.Process(target=worker_main, name=f"ccgate-worker-{slot.index}",
                                 args=(self.args, role, sock, slot.ready), daemon=False)
        process.start()
        slot.process, slot.started, slot.restart_at = process, time.monotonic(), None
        if process.pid is not None:
            slot.pids.append(process.pid)

    def _watch(self, hub: Any) -> None:
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is None:
                if slot.restart_at is not None and now >= slot.restart_at:
                    log.warning("worker %d: starting again", slot.index)
                    self._start(slot, hub)
                continue
            if slot.ready is not None and not slot.ever_ready and slot.ready.is_set():
                slot.ever_ready = True
            if process.is_alive():
                if slot.failures and now - slot.started > STABLE_SECONDS:
                    slot.failures = 0
                continue
            code = process.exitcode
            process.close()
            slot.process = None
            if code == 2 and not slot.ever_ready:  # the worker refused the config: so would the next
                self.exit_code = 2
                assert self._stop is not None
                self._stop.set()
                return
            delay = RESTART_DELAYS[min(slot.failures, len(RESTART_DELAYS) - 1)]
            slot.failures += 1
            slot.restart_at = now + delay
            slot.ever_ready = False
            log.error("worker %d (pid %s) exited unexpectedly (%s); restarting it in %.1f s",
                      slot.index, slot.pids[-1] if slot.pids else "?", _exit_text(code), delay)

    async def _drain(self) -> None:
        """Every worker gets SIGTERM once and drains; stragglers are killed after DRAIN_SECONDS."""
        alive = [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        for process in alive:
            _terminate(process)
        deadline = time.monotonic() + DRAIN_SECONDS
        while any(p.is_alive() for p in alive) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
        for process in alive:
            if process.is_alive():
                log.error("worker pid %s still draining after %.0f s: killing it", process.pid, DRAIN_SECONDS)
                process.kill()
                process.join(5)

    # Signals -----------------------------------------------------------------------------

    def _signals(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._stop is not None
        stop = self._stop
        wanted = [signal.SIGINT, signal.SIGTERM]
        if hasattr(signal, "SIGBREAK"):
            wanted.append(signal.SIGBREAK)
        for sig in wanted:
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
        if hasattr(signal, "SIGHUP"):
            loop.add_signal_handler(signal.SIGHUP, self._reload)

    def _reload(self) -> None:
        """SIGHUP to every worker that is serving. Not to one still starting (it reads the
        config as it is now anyway) nor while draining: until a worker's loop handles SIGHUP,
        and again once its shutdown began, the signal's default action would kill it."""
        if sys.platform == "win32" or (self._stop is not None and self._stop.is_set()):
            return  # (Windows has no SIGHUP: reload through the pidfile's request instead)
        log.warning("SIGHUP: every worker reloads its config")
        for slot in self.slots:
            process = slot.process
            if process is None or process.pid is None or slot.ready is None or not slot.ready.is_set():
                continue
            if process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGHUP)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where installed (the hub answers every rate-limited request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _terminate(process: SpawnProcess) -> None:
    if process.pid is None:
        return
    if sys.platform == "win32":
        process.terminate()
        return
    with contextlib.suppress(OSError):
        os.kill(process.pid, signal.SIGTERM)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"status {code}"


def _uses_redis(loaded: LoadedConfig) -> bool:
    """Whether the config names a Redis for the shared state (then no hub is started)."""
    return loaded.config.redis is not None and loaded.secrets.redis_url is not None


# In a worker -----------------------------------------------------------------------------


def worker_main(args: argparse.Namespace, role: WorkerRole, sock: socket.socket, ready: EventType) -> None:
    """A worker process's entry point (spawned: a fresh interpreter, nothing inherited but its
    arguments): load the config, build the gateway and serve on the supervisor's socket."""
    from ccgate.cli.serve import serve_process

    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        if role.index == 0:
            print(f"ccgate: config error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    logs.configure(args.log_level or loaded.config.log.level, args.log_format or loaded.config.log.format)
    _WORKER_READY[0] = ready
    raise SystemExit(serve_process(args, loaded, role, sock))


_WORKER_READY: list[EventType | None] = [None]


def as_worker(app: Gateway, role: WorkerRole) -> None:
    """Make ``app`` one worker of several: its index in logs, /metrics totals through the hub,
    safe shared log writes, readiness told to the supervisor, and an exit if it goes away."""
    app.worker = role.index
    app.access_log.shared_writers = True
    if app.shared is not None:
        backend = app.shared.backend
        gather = getattr(backend, "gather", None)
        if gather is not None and hasattr(backend, "snapshot"):
            from ccgate.server.metrics_merge import snapshot

            backend.snapshot = lambda: snapshot(app.metrics.registry)
            app.metrics_peers = gather
    ready = _WORKER_READY[0]
    if ready is not None:
        app.on_startup.append(ready.set)
    app.on_startup.append(lambda: _watch_parent(role.supervisor_pid))


def _watch_parent(supervisor_pid: int) -> None:
    """A worker whose supervisor is gone (killed) drains and exits instead of serving alone."""
    loop = asyncio.get_running_loop()

    def check() -> None:
        if os.getppid() != supervisor_pid:
            log.error("the supervisor (pid %d) is gone: this worker stops", supervisor_pid)
            if sys.platform == "win32":
                os._exit(1)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        loop.call_later(PARENT_CHECK_SECONDS, check)

    loop.call_later(PARENT_CHECK_SECONDS, check)


__all__ = ["Supervisor", "as_worker", "worker_main"]
