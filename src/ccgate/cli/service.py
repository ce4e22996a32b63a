"""``ccgate service install|uninstall|status``: the gateway as a per-user background service
(systemd user unit, launchd agent, Task Scheduler task; docs/service.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ccgate.config.load import find_config_file
from ccgate.errors import ConfigError
from ccgate.service import Platform, ServiceError, ServiceManager, current_platform


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = sub.add_parser("install", help="write the service definition, register and start it")
    install.add_argument("--config", metavar="FILE",
                         help="config file the service runs with (default: the one `ccgate serve` "
                              "would use now; none: the embedded defaults)")
    install.add_argument("--no-start", action="store_true",
                         help="write the definition only; print the commands that would start it")
    install.add_argument("--print", action="store_true", dest="print_only",
                         help="print the definition and write nothing")
    install.add_argument("--platform", choices=[p.value for p in Platform],
                         help="with --print: render another platform's definition")
    sub.add_parser("uninstall", help="stop the service and remove its definition")
    sub.add_parser("status", help="is it installed, and is it running? (exit 0: running)")


def serve_argv(config: Path | None) -> list[str]:
    """How the service starts the gateway: this Python, this ccgate, an absolute config path."""
    python = Path(sys.executable)
    if sys.platform == "win32" and (windowless := python.with_name("pythonw.exe")).exists():
        python = windowless  # no console window for a background task
    argv = [str(python), "-m", "ccgate", "serve"]
    return [*argv, "--config", str(config.resolve())] if config is not None else argv


def run(args: argparse.Namespace) -> int:
    platform = Platform(args.platform) if getattr(args, "platform", None) else current_platform()
    if getattr(args, "platform", None) and not args.print_only:
        print("ccgate service: --platform only renders (add --print)", file=sys.stderr)
        return 2
    if platform is None:
        print(f"ccgate service: no service manager known on {sys.platform}; run `ccgate serve` under "
              "your own supervisor", file=sys.stderr)
        return 2
    uid = os.getuid() if hasattr(os, "getuid") else None
    manager = ServiceManager(platform, os.environ, uid=uid)
    try:
        if args.action == "install":
            return _install(manager, args)
        if args.action == "uninstall":
            for line in manager.uninstall():
                print(line)
            return 0
        return _status(manager)
    except (ServiceError, ValueError, OSError) as exc:
        print(f"ccgate service: {exc}", file=sys.stderr)
        return 1


def _install(manager: ServiceManager, args: argparse.Namespace) -> int:
    try:
        config = find_config_file(args.config, os.environ)
    except ConfigError as exc:
        print(f"ccgate service: {exc}", file=sys.stderr)
        return 2
    argv = serve_argv(config)
    if args.print_only:
        sys.stdout.buffer.write(manager.render(manager.spec(argv)))
        sys.stdout.flush()
        return 0
    for line in manager.install(argv, start=not args.no_start):
        print(line)
    if config is None:
        print("note: no config file found; the service runs with the embedded defaults (use --config)")
    if manager.platform is Platform.LINUX:
        print(f"keys referenced as env:NAME: put NAME=value lines in {manager.env_file()} (read at start)")
    return 0


def _status(manager: ServiceManager) -> int:
    status = manager.status()
    if not status.installed:
        print(f"not installed ({status.path} does not exist)")
        return 3
    state = {True: "running", False: "not running", None: "state unknown"}[status.running]
    print(f"installed: {status.path}\n{state}: {status.detail}")
    return 0 if status.running else 3
