"""Real squid (Debian squid 5.7) as a lab forward proxy on a free 127.0.0.1 port.

Each instance runs ``squid -N -f <conf>`` as a child process (not the system service) with
its own pid file, logs and no disk cache, in a fresh directory under /tmp. When the tests run
as root, squid drops privileges to ``cache_effective_user proxy`` (squid refuses to keep root),
so the directory and its files are chowned to that user.

Name resolution never leaves the machine: ``hosts_file`` maps api.anthropic.com,
platform.claude.com and localhost to 127.0.0.1, and ``dns_nameservers 127.0.0.1`` with a short
``dns_timeout`` makes every other name (e.g. ``*.invalid``) fail within about two seconds
(``503`` + ``X-Squid-Error: ERR_DNS_FAIL``) instead of reaching a real resolver.

Modes:

* ``open`` — CONNECT and plain HTTP to any host and any port.
* ``basic`` — Basic auth via ``basic_ncsa_auth`` and an htpasswd file generated with
  ``htpasswd -i -m`` (the password never appears on a command line). Default password
  contains ``@ : / %`` to exercise URL encoding.
* ``deny`` — CONNECT (and plain requests) to the hosts in ``deny_hosts`` get squid's own
  ``403`` with ``X-Squid-Error: ERR_ACCESS_DENIED 0``; other hosts pass.
* ``ntlm`` — only ``Proxy-Authenticate: NTLM`` is offered. Squid's own ``ntlm_fake_auth``
  helper (shipped in the squid package) does the NTLM handshake and accepts any credentials,
  so a client that does NTLM succeeds and a Basic-only client gets 407 forever.
"""

from __future__ import annotations

import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.procs import (
    chown,
    free_port,
    hosts_file,
    lab_workdir,
    require_binary,
    stop_process,
    tail,
    wait_port,
)

SQUID_LIBEXEC = Path("/usr/lib/squid")
DEFAULT_USER = "ccgate"
DEFAULT_PASSWORD = "p@ss:w/rd%"  # lab-only credential
MODES = ("open", "basic", "deny", "ntlm")


@dataclass
class SquidProxy:
    mode: str = "open"
    username: str = DEFAULT_USER
    password: str = field(default=DEFAULT_PASSWORD, repr=False)
    deny_hosts: tuple[str, ...] = ("api.anthropic.com", "platform.claude.com")
    port: int = 0
    # Also accept TLS-wrapped proxy connections (an https:// proxy URL) with this cert/key.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_port: int = 0
    workdir: Path = field(default_factory=Path)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # --- addresses ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Proxy URL without credentials."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        """``https://`` proxy URL (TLS to the proxy itself); needs ``tls_cert``/``tls_key``."""
        return f"https://127.0.0.1:{self.tls_port}"

    def url_with_auth(self, username: str | None = None, password: str | None = None) -> str:
        """Proxy URL with percent-encoded credentials (default: the configured ones)."""
        user = urllib.parse.quote(username if username is not None else self.username, safe="")
        pw = urllib.parse.quote(password if password is not None else self.password, safe="")
        return f"http://{user}:{pw}@127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    @property
    def cache_log(self) -> Path:
        return self.workdir / "cache.log"

    def access_lines(self, since: int = 0) -> list[str]:
        """Access-log lines so far (squid writes one when a transaction ends), skipping the
        first ``since`` lines (see :meth:`access_mark`)."""
        try:
            return self.access_log.read_text(errors="replace").splitlines()[since:]
        except FileNotFoundError:
            return []

    def access_mark(self) -> int:
        """Number of access-log lines now; pass it as ``since`` to ignore earlier traffic
        (useful with the session-shared proxies)."""
        return len(self.access_lines())

    def wait_access(self, needle: str, timeout: float = 5.0, since: int = 0) -> str:
        """Wait for an access-log line (after the first ``since``) containing ``needle``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.access_lines(since):
                if needle in line:
                    return line
            time.sleep(0.05)
        raise TimeoutError(f"no access-log line with {needle!r}")

    # --- lifecycle ----------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> SquidProxy:
        if self.mode not in MODES:
            raise ValueError(f"unknown squid mode {self.mode!r}")
        squid = require_binary("squid", "/usr/sbin/squid")
        for _attempt in range(3):
            self.workdir = lab_workdir("squid", owner="proxy")
            self.port = free_port()
            conf = self._write_config()
            self.proc = subprocess.Popen(
                [squid, "-N", "-f", str(conf)], cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=(self.workdir / "stderr.log").open("wb"),
            )
            try:
                wait_port(self.port, self.proc, timeout, self.cache_log)
                return self
            except RuntimeError:
                if "Address already in use" not in tail(self.cache_log, 50):
                    self.stop()
                    raise
                self.stop()
        raise RuntimeError("squid could not bind a free port")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None

    def __enter__(self) -> SquidProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- config -------------------------------------------------------------------------
    def _tls_lines(self) -> list[str]:
        if self.tls_cert is None or self.tls_key is None:
            return []
        if not self.tls_port:
            self.tls_port = free_port()
        for path in (self.tls_cert, self.tls_key):
            chown(path, "proxy")
        return [f"https_port 127.0.0.1:{self.tls_port} tls-cert={self.tls_cert} tls-key={self.tls_key}"]

    def _write_config(self) -> Path:
        d = self.workdir
        hosts = hosts_file(d)
        lines = [
            f"http_port 127.0.0.1:{self.port}",
            *self._tls_lines(),
            f"pid_filename {d}/squid.pid",
            f"cache_log {d}/cache.log",
            f"access_log stdio:{d}/access.log squid",
            "cache_store_log none",
            f"coredump_dir {d}",
            "cache deny all",
            "cache_mem 8 MB",
            "workers 1",
            "cache_effective_user proxy",
            "visible_hostname ccgate-lab-squid",
            f"hosts_file {hosts}",
            "dns_nameservers 127.0.0.1",
            "dns_timeout 1 seconds",
            "dns_retransmit_interval 1 seconds",
            "negative_dns_ttl 1 seconds",
            "connect_timeout 5 seconds",
            "shutdown_lifetime 0 seconds",
            "pinger_enable off",
            "netdb_filename none",
            "logfile_rotate 0",
            "forwarded_for delete",
            "acl lab_clients src 127.0.0.0/8",
            "http_access deny !lab_clients",
        ]
        if self.mode == "basic":
            htpasswd = d / "htpasswd"
            subprocess.run(
                [require_binary("htpasswd"), "-i", "-c", "-m", str(htpasswd), self.username],
                input=self.password.encode(), check=True, capture_output=True,
            )
            htpasswd.chmod(0o640)
            chown(htpasswd, "proxy")
            lines += [
                f"auth_param basic program {SQUID_LIBEXEC}/basic_ncsa_auth {htpasswd}",
                "auth_param basic children 2 startup=1",
                "auth_param basic realm ccgate lab proxy",
                "auth_param basic credentialsttl 1 minute",
                "acl authed proxy_auth REQUIRED",
                "http_access allow authed",
            ]
        elif self.mode == "ntlm":
            lines += [
                f"auth_param ntlm program {SQUID_LIBEXEC}/ntlm_fake_auth",
                "auth_param ntlm children 2 startup=1",
                "acl authed proxy_auth REQUIRED",
                "http_access allow authed",
            ]
        elif self.mode == "deny":
            lines += [
                "acl denied_hosts dstdomain " + " ".join(self.deny_hosts),
                "http_access deny denied_hosts",
                "http_access allow lab_clients",
            ]
        else:
            lines.append("http_access allow lab_clients")
        lines.append("http_access deny all")
        conf = d / "squid.conf"
        conf.write_text("\n".join(lines) + "\n")
        for name in ("access.log", "cache.log"):
            (d / name).touch()
            chown(d / name, "proxy")
        return conf
