"""Talking to a running ``ccgate serve`` from another process: its pidfile, and asking it to
reload its config (after ``ccgate connect`` saved a change, for instance)::

    request_reload(host: str, port: int, admin_key: str | None = None, *, timeout: float = 5.0) -> str

* No ccgate answers ``/api/hello`` on ``host:port``: returns ``no ccgate answers on ...; the
  change applies when it starts`` (nothing to reload).
* With ``admin_key``: ``POST http://host:port/admin/config/reload``. Returns the gateway's
  message (``reloaded /home/me/.config/ccgate/ccgate.yaml``, plus any settings that need a
  restart). Raises ``ReloadError`` with the gateway's own message when it refused the new
  config (the old one keeps serving), refused the admin key, or could not be reached.
* Without: ``SIGHUP`` to the pid in the pidfile that ``ccgate serve`` wrote for that port
  (POSIX), once a ccgate answers ``/api/hello`` there and the pid is a ccgate process.
  Returns ``sent SIGHUP to ccgate (pid N) on host:port``; the reload itself is asynchronous
  and its result (a refused config included) goes to the gateway's log.
* Otherwise it returns, without raising, what to do when the gateway cannot be signalled
  (Windows; no pidfile, e.g. a gateway started by another user): give the admin key, set
  ``server.watch_config: true``, or restart it.

The pidfile is ``<runtime dir>/serve-<port>.json`` (platformdirs' user runtime dir, e.g.
``$XDG_RUNTIME_DIR/ccgate``, else ``<user state dir>/run``), holding the pid, host, port and
config; ``ccgate serve`` removes it at exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import platformdirs

from ccgate.config.model import local_url

APP = "ccgate"


class ReloadError(Exception):
    """The running gateway refused the reload (or could not be asked); the message says why."""


def pidfile_path(port: int) -> Path:
    runtime = Path(platformdirs.user_runtime_dir(APP))
    # Only where the system provides a runtime dir ($XDG_RUNTIME_DIR, /run/user/<uid>): never
    # create /run/user/<uid> ourselves.
    base = runtime if runtime.parent.is_dir() else Path(platformdirs.user_state_dir(APP)) / "run"
    return base / f"serve-{port}.json"


class Pidfile:
    """``ccgate serve``'s pidfile: written at startup, removed at shutdown (if still ours).

    Both run in the gateway's lifespan, so the file exists exactly while SIGHUP reloads (the
    handler is installed there too); uvicorn re-raises SIGTERM after its shutdown, which ends
    the process before any code after ``run()`` would."""

    def __init__(self, host: str, port: int, config: str | None = None) -> None:
        self.path = pidfile_path(port)
        self.port = port
        self.content = {"pid": os.getpid(), "host": host, "port": port, "config": config}

    def write(self) -> None:
        """Best effort: without a pidfile, reload by signal needs the admin key or the watch."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(self.content, out)
            os.replace(tmp, self.path)
        except OSError:
            pass

    def remove(self) -> None:
        if (read_pidfile(self.port) or {}).get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()


def read_pidfile(port: int) -> dict[str, Any] | None:
    try:
        data = json.loads(pidfile_path(port).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def request_reload(host: str, port: int, admin_key: str | None = None, *, timeout: float = 5.0) -> str:
    """Ask the gateway on ``host:port`` to reload its config; see the module docstring."""
    where, base = f"{host}:{port}", local_url(host, port)
    if not _answers(base, timeout):
        return f"no ccgate answers on {where}; the change applies when it starts (ccgate serve)"
    if admin_key:
        return _reload_by_admin_api(base, admin_key, timeout)
    if not hasattr(signal, "SIGHUP"):
        return (f"cannot signal the gateway on {where} on this platform; give the admin key "
                "(reload through POST /admin/config/reload), set server.watch_config: true, or restart it")
    info = read_pidfile(port)
    pid = info["pid"] if info else None
    if pid is None or not _is_ccgate(pid):
        return (f"ccgate on {where} has no pidfile this user can use ({pidfile_path(port)}); give the "
                "admin key, set server.watch_config: true, or restart it to apply the change")
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise ReloadError(f"cannot signal ccgate (pid {pid}) on {where}: {exc.strerror}") from None
    return f"sent SIGHUP to ccgate (pid {pid}) on {where}; it reloads its config now (see its log)"


def _opener() -> urllib.request.OpenerDirector:
    # Straight to the gateway: never through a proxy from the environment.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(base: str, timeout: float) -> bool:
    try:
        with _opener().open(base + "/api/hello", timeout=timeout) as reply:
            return bool(json.loads(reply.read()).get("service") == APP)
    except (OSError, ValueError, AttributeError):
        return False


def _reload_by_admin_api(base: str, admin_key: str, timeout: float) -> str:
    request = urllib.request.Request(base + "/admin/config/reload", data=b"", method="POST",
                                     headers={"authorization": f"Bearer {admin_key}"})
    try:
        with _opener().open(request, timeout=timeout) as reply:
            return str(json.loads(reply.read())["message"])
    except urllib.error.HTTPError as exc:
        raise ReloadError(f"the gateway at {base} refused: {_error_message(exc)}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ReloadError(f"cannot reach the gateway's admin API at {base}: {exc}") from None


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"HTTP {exc.code}"


def _is_ccgate(pid: int) -> bool:
    """The pid is alive, and where /proc tells, it is a ccgate process (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not one we may signal
    cmdline = Path(f"/proc/{pid}/cmdline")
    if sys.platform.startswith("linux") and cmdline.exists():
        try:
            return b"ccgate" in cmdline.read_bytes()
        except OSError:
            return False
    return True


__all__ = ["Pidfile", "ReloadError", "pidfile_path", "read_pidfile", "request_reload"]
