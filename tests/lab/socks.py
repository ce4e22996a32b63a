"""Real SOCKS5 servers for the lab, on free 127.0.0.1 ports.

* :class:`DanteSocks` — Debian's dante-server (``danted -f <conf>``, foreground), method
  ``none`` (no auth). Its rules only let clients from 127.0.0.0/8 reach 127.0.0.0/8: any
  other destination is refused by the proxy itself.
* :class:`MicroSocks` — ``microsocks -u USER -P PASS`` for RFC 1929 username/password auth
  (dante's ``username`` method checks the system passwd database, which tests must not
  touch). microsocks has no ACL, so only hand it loopback targets. The password is on its
  command line (visible in ``ps`` on the test machine only); it is never printed.

Remote DNS (``socks5h://``): both servers resolve names with the system resolver. When
possible (root with CAP_SYS_ADMIN, as in CI) the server is started inside a private mount
namespace (``unshare --mount``) in which a generated hosts file is bind-mounted over
``/etc/hosts`` (api.anthropic.com, platform.claude.com, localhost → 127.0.0.1) and a
resolv.conf pointing at 127.0.0.1 (no server there, so every other name fails fast) over
``/etc/resolv.conf``. The real files are never modified. ``resolves_lab_hosts`` tells
whether that worked; where it is False, socks5h tests must target ``localhost`` or
``127.0.0.1`` and unknown names may reach the machine's configured resolver.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tests.lab.procs import (
    free_port,
    hosts_file,
    lab_workdir,
    require_binary,
    stop_process,
    wait_port,
)

_NS_SCRIPT = (
    'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 '
    '&& exec "$@"'
)


@functools.cache
def can_isolate_dns() -> bool:
    """True when a private mount namespace with bind mounts can be created here."""
    unshare = shutil.which("unshare")
    if not unshare:
        return False
    probe = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c",
         "mount --bind /etc/hosts /etc/hosts"],
        capture_output=True, timeout=10, check=False,
    )
    return probe.returncode == 0


def _wrap(argv: list[str], workdir: Path, isolate: bool) -> tuple[list[str], bool]:
    if not (isolate and can_isolate_dns()):
        return argv, False
    hosts = hosts_file(workdir)
    resolv = workdir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    resolv.chmod(0o644)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _NS_SCRIPT, "sh",
            str(hosts), str(resolv), *argv], True


@dataclass
class _SocksBase:
    isolate_dns: bool = True
    port: int = 0
    workdir: Path = field(default_factory=Path)
    resolves_lab_hosts: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        """The server's stdout/stderr (dante also writes ``danted.log`` next to it)."""
        return self.workdir / "server.log"

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> Self:
        self.workdir = lab_workdir(type(self).__name__.lower())
        self.port = free_port()
        argv, self.resolves_lab_hosts = _wrap(self._argv(), self.workdir, self.isolate_dns)
        self.proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, timeout, self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class DanteSocks(_SocksBase):
    """dante-server, SOCKS5 without authentication."""

    @property
    def url(self) -> str:
        return f"socks5://127.0.0.1:{self.port}"

    @property
    def url_remote_dns(self) -> str:
        return f"socks5h://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        conf = self.workdir / "danted.conf"
        conf.write_text(f"""\
logoutput: {self.workdir}/danted.log
internal: 127.0.0.1 port = {self.port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error
}}
socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    log: error connect
}}
socks block {{
    from: 0.0.0.0/0 to: 0.0.0.0/0
    log: connect error
}}
""")
        danted = require_binary("danted", "/usr/sbin/danted")
        return [danted, "-f", str(conf), "-p", str(self.workdir / "danted.pid"), "-N", "1"]


@dataclass
class MicroSocks(_SocksBase):
    """microsocks with RFC 1929 username/password authentication."""

    username: str = "socksuser"
    password: str = field(default="s0cks:p@ss", repr=False)

    def url_with_auth(self, scheme: str = "socks5") -> str:
        from urllib.parse import quote

        return (f"{scheme}://{quote(self.username, safe='')}:{quote(self.password, safe='')}"
                f"@127.0.0.1:{self.port}")

    @property
    def url(self) -> str:
        """URL without credentials (the server will refuse it)."""
        return f"socks5://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        microsocks = require_binary("microsocks", "/usr/bin/microsocks")
        return [microsocks, "-i", "127.0.0.1", "-p", str(self.port), "-b", "127.0.0.1",
                "-u", self.username, "-P", self.password]
