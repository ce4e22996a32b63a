"""Where each platform keeps a per-user service, and the commands that load, start, stop and
describe it. The definition is written atomically (a changed one is kept as ``.bak`` first);
the service manager is asked through ``runner``, a seam the tests replace so that they never
touch the real user's services."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ccgate.service.units import LABEL, NAME, ServiceSpec, launchd_plist, systemd_unit, windows_task
from ccgate.setup.files import atomic_write

Runner = Callable[[list[str]], tuple[int, str]]
COMMAND_TIMEOUT = 30.0


class Platform(StrEnum):
    LINUX = "linux"
    MACOS = "macos"
    WINDOWS = "windows"


def current_platform() -> Platform | None:
    if sys.platform.startswith("linux"):
        return Platform.LINUX
    if sys.platform == "darwin":
        return Platform.MACOS
    if sys.platform == "win32":
        return Platform.WINDOWS
    return None


def run_command(argv: list[str]) -> tuple[int, str]:
    """Run a service-manager command: exit code and its output (127: not installed)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(argv)}: no answer in {COMMAND_TIMEOUT:g} s"
    return done.returncode, (done.stdout + done.stderr).strip()


@dataclass
class Status:
    installed: bool
    path: Path
    running: bool | None  # None: the service manager could not say
    detail: str


@dataclass
class ServiceManager:
    """``env``: HOME (and XDG_CONFIG_HOME, LOCALAPPDATA, USERDOMAIN/USERNAME where they apply);
    ``uid``: the user's id for launchctl's ``gui/<uid>`` domain (macOS)."""

    platform: Platform
    env: Mapping[str, str]
    runner: Runner = run_command
    uid: int | None = None

    # -- where ------------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        home = self.env.get("HOME") or self.env.get("USERPROFILE")
        if not home:
            raise ValueError("cannot tell the home directory: set HOME")
        return Path(home)

    def config_home(self) -> Path:
        return Path(self.env.get("XDG_CONFIG_HOME") or self.home / ".config")

    def definition_path(self) -> Path:
        if self.platform is Platform.LINUX:
            return self.config_home() / "systemd" / "user" / f"{NAME}.service"
        if self.platform is Platform.MACOS:
            return self.home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        local = Path(self.env.get("LOCALAPPDATA") or self.home / "AppData" / "Local")
        return local / NAME / f"{NAME}-task.xml"

    def env_file(self) -> Path:
        """systemd: the optional KEY=value file for secrets referenced as env:NAME."""
        return self.config_home() / NAME / f"{NAME}.env"

    def log_dir(self) -> Path:
        return self.home / "Library" / "Logs" / NAME

    def windows_user(self) -> str:
        user = self.env.get("USERNAME", "")
        domain = self.env.get("USERDOMAIN", "")
        return f"{domain}\\{user}" if domain and user else user

    # -- what -------------------------------------------------------------------------------

    def spec(self, argv: list[str]) -> ServiceSpec:
        if self.platform is Platform.LINUX:
            return ServiceSpec(argv, env_file=str(self.env_file()))
        if self.platform is Platform.MACOS:
            return ServiceSpec(argv, log_dir=str(self.log_dir()))
        return ServiceSpec(argv)

    def render(self, spec: ServiceSpec) -> bytes:
        if self.platform is Platform.LINUX:
            return systemd_unit(spec).encode()
        if self.platform is Platform.MACOS:
            return launchd_plist(spec)
        return windows_task(spec, self.windows_user())

    def _domain(self) -> str:
        if self.uid is None:
            raise ValueError("launchctl needs the user's id")
        return f"gui/{self.uid}"

    def load_commands(self) -> list[list[str]]:
        """Register the written definition with the service manager and start it."""
        path = str(self.definition_path())
        if self.platform is Platform.LINUX:
            # restart, not start: a reinstall replaces a running gateway with the new definition.
            return [["systemctl", "--user", "daemon-reload"],
                    ["systemctl", "--user", "enable", f"{NAME}.service"],
                    ["systemctl", "--user", "restart", f"{NAME}.service"]]
        if self.platform is Platform.MACOS:
            return [["launchctl", "bootstrap", self._domain(), path]]
        return [["schtasks", "/Create", "/TN", NAME, "/XML", path, "/F"], ["schtasks", "/Run", "/TN", NAME]]

    def unload_commands(self) -> list[list[str]]:
        if self.platform is Platform.LINUX:
            return [["systemctl", "--user", "disable", "--now", f"{NAME}.service"]]
        if self.platform is Platform.MACOS:
            return [["launchctl", "bootout", f"{self._domain()}/{LABEL}"]]
        return [["schtasks", "/End", "/TN", NAME], ["schtasks", "/Delete", "/TN", NAME, "/F"]]

    def status_command(self) -> list[str]:
        if self.platform is Platform.LINUX:
            return ["systemctl", "--user", "is-active", f"{NAME}.service"]
        if self.platform is Platform.MACOS:
            return ["launchctl", "print", f"{self._domain()}/{LABEL}"]
        return ["schtasks", "/Query", "/TN", NAME, "/FO", "LIST", "/V"]

    # -- doing ------------------------------------------------------------------------------

    def install(self, argv: list[str], *, start: bool = True) -> list[str]:
        """Write the definition and (``start``) register and start it; without ``start`` no
        command runs at all. Returns what was done; raises ``ServiceError`` naming the command
        that failed."""
        path = self.definition_path()
        data = self.render(self.spec(argv))
        done = []
        if path.exists():
            old = path.read_bytes()
            if old != data:
                atomic_write(path.with_name(path.name + ".bak"), old, 0o644, None)
                done.append(f"kept the previous definition as {path.name}.bak")
            if self.platform is Platform.MACOS and start:
                self.runner(["launchctl", "bootout", f"{self._domain()}/{LABEL}"])  # reload it
        if self.platform is Platform.MACOS:
            self.log_dir().mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, 0o644, None)
        done.append(f"wrote {path}")
        if not start:
            steps = " && ".join(" ".join(c) for c in self.load_commands())
            done.append(f"not started; to start it: {steps}")
            return done
        for command in self.load_commands():
            self._run(command)
            done.append("ran " + " ".join(command))
        return done

    def uninstall(self) -> list[str]:
        path = self.definition_path()
        done = []
        for command in self.unload_commands():
            code, _ = self.runner(command)
            done.append(f"ran {' '.join(command)}" + ("" if code == 0 else f" (exit {code})"))
        if path.exists():
            path.unlink()
            done.append(f"removed {path}")
        if self.platform is Platform.LINUX:
            self.runner(["systemctl", "--user", "daemon-reload"])
        return done

    def status(self) -> Status:
        path = self.definition_path()
        if not path.exists():
            return Status(False, path, None, "not installed")
        code, output = self.runner(self.status_command())
        if code == 127:
            return Status(True, path, None, output)
        if self.platform is Platform.LINUX:
            return Status(True, path, code == 0 and output.strip() == "active", output or f"exit {code}")
        if self.platform is Platform.MACOS:
            return Status(True, path, code == 0 and "state = running" in output, output or f"exit {code}")
        return Status(True, path, code == 0 and "Running" in output, output or f"exit {code}")

    def _run(self, command: list[str]) -> None:
        code, output = self.runner(command)
        if code != 0:
            raise ServiceError(f"{' '.join(command)} failed (exit {code}): {output}")


class ServiceError(Exception):
    """A service-manager command failed; the message names it and says what it printed."""


__all__ = ["Platform", "ServiceError", "ServiceManager", "Status", "current_platform", "run_command"]
