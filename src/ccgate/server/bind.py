"""The listening socket of ``ccgate serve``, bound before anything says "listening on".

uvicorn binds inside ``Server.run`` and, when the port is busy, logs a traceback line and exits
with status 3 after ccgate had already announced the address. Binding here first means the
announcement is true when printed, and a failure becomes one sentence: what is wrong, and (best
effort, from ``/proc`` on Linux) which process holds the port.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

MIN_PORT, MAX_PORT = 1, 65535
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp
_BACKLOG = 2048  # uvicorn's default


class BindError(Exception):
    """The address cannot be listened on; the message says why and what to do."""


def bind_listener(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, ready for ``uvicorn.Server.run(sockets=...)``.
    ``reuse_port``: one of a ``SO_REUSEPORT`` group (Linux; ``listen_sockets``)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise BindError(
            f"cannot listen on {host}:{port}: the host name does not resolve ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":  # on Windows SO_REUSEADDR would let two servers share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sys.platform != "win32" and reuse_port:  # Linux only (listen_sockets): no such option on Windows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise BindError(bind_failure(host, port, exc)) from None
    sock.set_inheritable(True)
    return sock


def listen_sockets(host: str, port: int, workers: int) -> list[socket.socket]:
    """The listening sockets of ``serve --workers N``, all bound here, by the supervisor, before
    anything announces the address; worker ``i`` accepts on ``sockets[i % len(sockets)]``.

    Linux: N sockets in one ``SO_REUSEPORT`` group. The kernel spreads new connections over
    them by a hash of the peer address, so each worker gets its share; with one shared socket
    every idle worker is woken for each connection and the first to call ``accept`` takes a
    whole burst (uvloop accepts in a loop), which leaves keep-alive clients on one worker. The
    supervisor keeps its copy of each socket, so connections queued for a worker that died
    wait for its replacement instead of being reset.

    Elsewhere: one socket shared by every worker (macOS's ``SO_REUSEPORT`` does not balance;
    Windows has none), as uvicorn's ``--workers`` does."""
    if workers <= 1 or not sys.platform.startswith("linux"):
        return [bind_listener(host, port)]
    # A plain bind first: a SO_REUSEPORT bind would silently join another ccgate's group on
    # the same port (same user) instead of failing with "port in use".
    probe = bind_listener(host, port)
    port = probe.getsockname()[1]
    probe.close()
    first = bind_listener(host, port, reuse_port=True)
    sockets = [first]
    try:
        actual = first.getsockname()[1]  # the port the OS picked when ``port`` is 0
        for _ in range(workers - 1):
            sockets.append(bind_listener(host, actual, reuse_port=True))
    except BindError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_failure(host: str, port: int, exc: OSError) -> str:
    where = f"cannot listen on {host}:{port}"
    if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
        holder = port_holder(port)
        who = f"{holder} holds it" if holder else "another process holds it"
        return (f"{where}: the port is in use ({who}). Stop that process, or choose another port "
                "with --port or server.port")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{where}: permission denied (ports below 1024 need privileges); choose a port above 1023"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its own"
    return f"{where}: {exc.strerror or exc}"


def port_holder(port: int) -> str | None:
    """``pid 1234 (python3 -m http.server 4545)`` for the process listening on ``port``, when
    this system shows it (Linux ``/proc``, processes this user may inspect); else None."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    proc = Path("/proc")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return f"pid {entry.name} ({_command(entry)})"
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _command(proc_dir: Path) -> str:
    try:
        argv = (proc_dir / "cmdline").read_bytes().split(b"\0")
        text = " ".join(a.decode(errors="replace") for a in argv if a)
    except OSError:
        text = ""
    return text[:120] or "?"


__all__ = ["MAX_PORT", "MIN_PORT", "BindError", "bind_listener", "listen_sockets", "port_holder"]
