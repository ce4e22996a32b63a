"""``ccgate completion bash|zsh|tcsh``: a shell completion script for the whole command line,
generated from the argparse parser itself by shtab (docs/cli.md)."""

from __future__ import annotations

import argparse

import shtab

SHELLS = ("bash", "zsh", "tcsh")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.epilog = ('bash: eval "$(ccgate completion bash)" in ~/.bashrc; zsh: ccgate completion zsh '
                     '> "${fpath[1]}/_ccgate"')


def run(args: argparse.Namespace) -> int:
    from ccgate.cli.main import build_parser

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0
