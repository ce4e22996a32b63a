"""Service definitions for each platform, rendered from one ``ServiceSpec``. Pure: no I/O.

* Linux: a systemd **user** unit (``~/.config/systemd/user/ccgate.service``): restarted on
  failure, ``systemctl --user reload`` sends SIGHUP (which reloads ccgate's config), and an
  optional environment file for the keys the config references as ``env:NAME``.
* macOS: a launchd agent (``~/Library/LaunchAgents/<LABEL>.plist``): started at login, kept
  alive after a crash, its output in ``~/Library/Logs/ccgate/``.
* Windows: a Task Scheduler task (XML, as ``schtasks /Create /XML`` takes it): started at
  logon of this user, restarted on failure, no time limit.
"""

from __future__ import annotations

import plistlib
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

LABEL = "ccgate.gateway"  # launchd label; also the name of the unit ("ccgate") and the task
NAME = "ccgate"
DESCRIPTION = "ccgate: gateway for Claude Code and the Anthropic API"
_SYSTEMD_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


@dataclass(frozen=True)
class ServiceSpec:
    """What the service runs. ``argv[0]`` is an absolute path to the Python interpreter."""

    argv: list[str]
    env_file: str | None = None  # systemd: KEY=value lines loaded if present (keys for env: refs)
    log_dir: str | None = None  # launchd: where stdout/stderr go
    working_dir: str | None = None


def _systemd_arg(arg: str) -> str:
    """One ExecStart word: specifiers (%) and variables ($) taken literally, quoted if needed."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_PLAIN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _systemd_path(path: str) -> str:
    return path.replace("%", "%%")


def systemd_unit(spec: ServiceSpec) -> str:
    lines = [
        "# Written by `ccgate service install`; `ccgate service uninstall` removes it.",
        "[Unit]",
        f"Description={DESCRIPTION}",
        "",
        "[Service]",
        "Type=exec",
        "ExecStart=" + " ".join(_systemd_arg(a) for a in spec.argv),
        # SIGHUP reloads the config without dropping a request (docs/configuration.md).
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=2",
        # SIGTERM lets in-flight streams finish within uvicorn's shutdown; then it is killed.
        "TimeoutStopSec=30",
        "NoNewPrivileges=yes",
    ]
    if spec.env_file:
        lines.append(f"EnvironmentFile=-{_systemd_path(spec.env_file)}")  # "-": optional
    if spec.working_dir:
        lines.append(f"WorkingDirectory={_systemd_path(spec.working_dir)}")
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


def launchd_plist(spec: ServiceSpec) -> bytes:
    agent: dict[str, object] = {
        "Label": LABEL,
        "ProgramArguments": list(spec.argv),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # restart after a crash, not after a clean stop
        "ProcessType": "Background",
        "ThrottleInterval": 5,
    }
    if spec.log_dir:
        agent["StandardOutPath"] = f"{spec.log_dir}/ccgate.log"
        agent["StandardErrorPath"] = f"{spec.log_dir}/ccgate.log"
    if spec.working_dir:
        agent["WorkingDirectory"] = spec.working_dir
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=True)


def windows_task(spec: ServiceSpec, user: str) -> bytes:
    """Task Scheduler XML, UTF-16 as ``schtasks /XML`` expects. ``user``: DOMAIN\\name."""
    command, arguments = spec.argv[0], " ".join(_windows_arg(a) for a in spec.argv[1:])
    workdir = (f"\n      <WorkingDirectory>{escape(spec.working_dir)}</WorkingDirectory>"
               if spec.working_dir else "")
    xml = f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>{escape(DESCRIPTION)}</Description>
    <URI>\\{NAME}</URI>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>{escape(user)}</UserId>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>{escape(user)}</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
    <Enabled>true</Enabled>
    <Hidden>true</Hidden>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(command)}</Command>
      <Arguments>{escape(arguments)}</Arguments>{workdir}
    </Exec>
  </Actions>
</Task>
"""
    return xml.encode("utf-16")


def _windows_arg(arg: str) -> str:
    """Quoted for the Windows command line (CommandLineToArgvW rules) when it needs it."""
    if arg and not any(c in arg for c in ' \t"'):
        return arg
    out, slashes = ['"'], 0
    for c in arg:
        if c == "\\":
            slashes += 1
            continue
        if c == '"':
            out.append("\\" * (2 * slashes + 1) + '"')
        else:
            out.append("\\" * slashes + c)
        slashes = 0
    out.append("\\" * (2 * slashes) + '"')
    return "".join(out)


__all__ = ["DESCRIPTION", "LABEL", "NAME", "ServiceSpec", "launchd_plist", "systemd_unit", "windows_task"]
