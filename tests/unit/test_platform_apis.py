"""Every ccgate module imports, and the CLI starts, with the Unix-only APIs taken away.

CI runs on Linux; this is the closest honest check that Windows can start ccgate (issue 13):
it removes the POSIX-only functions and modules a Windows Python lacks, in a fresh interpreter,
after the third-party dependencies are loaded (they pick their own platform code) and before
anything of ccgate is. It cannot catch a Windows-specific behaviour (paths,
file locking, the asyncio Proactor loop), only a call that would not exist there.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Run in a fresh interpreter: the test process has already imported ccgate with the real os.
_DRIVER = textwrap.dedent('''
    import os, signal, sys
    # Third-party packages first: on Linux they pick their Unix code, which Windows replaces
    # with its own; what is checked is ccgate's code.
    import aiohttp, msgspec, platformdirs, uvicorn, yaml  # noqa: F401
    for name in ("register_at_fork", "fchmod", "fchown", "getuid", "geteuid", "getgid", "getpgrp",
                 "setsid", "killpg", "fork", "getpwuid", "sysconf"):
        if hasattr(os, name):
            delattr(os, name)
    for name in ("SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGALRM", "SIGCHLD"):
        if hasattr(signal, name):
            delattr(signal, name)
    for module in ("fcntl", "pwd", "grp", "resource", "termios", "tty", "pty", "uvloop"):
        sys.modules[module] = None  # "import fcntl" now raises ImportError, as on Windows

    import importlib, pkgutil
    import ccgate
    for info in pkgutil.walk_packages(ccgate.__path__, "ccgate."):
        if not info.name.endswith(".__main__"):  # runs the CLI when imported; main() runs below
            importlib.import_module(info.name)

    from pathlib import Path
    from ccgate.setup.files import atomic_write
    target = Path(sys.argv[1]) / "settings.json"
    atomic_write(target, b"{}", 0o600, None)  # setup's write path, without os.fchmod
    assert target.read_bytes() == b"{}"

    from ccgate.cli.main import main
    sys.exit(main(sys.argv[2:]))
''')


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _DRIVER, str(tmp_path), *argv], capture_output=True,
                          text=True, timeout=120, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})


def test_help_without_unix_apis(tmp_path: Path) -> None:
    done = _run(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout


def test_config_check_without_unix_apis(tmp_path: Path) -> None:
    config = tmp_path / "ccgate.yaml"
    config.write_text("providers:\n  - name: anthropic\n")
    done = _run(tmp_path, "config", "check", "--config", str(config))
    assert done.returncode == 0, done.stderr


def test_serve_refuses_a_bad_config_without_unix_apis(tmp_path: Path) -> None:
    config = tmp_path / "ccgate.yaml"
    config.write_text("server:\n  port: 99999\n")
    done = _run(tmp_path, "serve", "--config", str(config))
    assert done.returncode == 2 and "config error" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
