"""``ccgate`` command line: one parser, one module per subcommand."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from ccgate import __version__

# subcommand -> module exposing configure(parser) and run(args) -> int
SUBCOMMANDS = {
    "serve": ("ccgate.cli.serve", "run the gateway (default 127.0.0.1:4545)"),
    "doctor": ("ccgate.cli.doctor", "find the root cause of a failing connection"),
    "setup": ("ccgate.cli.setup", "wire a client (Claude Code) to the gateway"),
    "code": ("ccgate.cli.code", "run Claude Code through the gateway (starts one if none answers)"),
    "config": ("ccgate.cli.config_cmd", "check the configuration file, or print its JSON Schema"),
    "keys": ("ccgate.cli.keys", "issue, list, revoke and rotate client keys"),
    "usage": ("ccgate.cli.usage", "token usage per key, model, provider or session"),
    "connect": ("ccgate.cli.connect", "connect a provider: discover models, test, save, route Claude Code"),
    "providers": ("ccgate.cli.providers", "list, test or remove the configured providers"),
    "models": ("ccgate.cli.models", "each provider's live model list and the routes to it"),
    "service": ("ccgate.cli.service", "run the gateway as a background service of this user"),
    "completion": ("ccgate.cli.completion", "print a shell completion script (bash, zsh, tcsh)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccgate",
        description="Make Claude Code work anywhere: doctor, gateway, setup.",
    )
    parser.add_argument("--version", action="version", version=f"ccgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = int(run(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """``ccgate keys list --json | head``: the reader closed the pipe. Not an error of ours: no
    traceback, and stdout pointed at devnull so the interpreter's final flush cannot raise
    again (Python's documented recipe); the exit status is the shell's for SIGPIPE."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 128 + 13  # 141, as a process killed by SIGPIPE (13 on every Unix)
