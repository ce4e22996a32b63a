"""``ccgate config check``: the same validation ``serve`` runs, without serving."""

from __future__ import annotations

import argparse
import sys

from ccgate.config.load import load_config
from ccgate.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate the config file and show what it means")
    check.add_argument("--config", metavar="FILE", help="config file to check")


def run(args: argparse.Namespace) -> int:
    from ccgate.cli.serve import describe

    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        print(f"ccgate: config error: {exc}", file=sys.stderr)
        return 1
    server = loaded.config.server
    print(f"config ok: {loaded.source}")
    for line in describe(loaded, server.host, server.port)[1:]:
        print(line)
    login = loaded.login
    if login is not None:
        groups = ["/".join(sorted(p.groups)) or "everyone" for p in login.policies.policies]
        policies = ", ".join(groups) or "none"
        print(f"  Claude Code /login: {login.public_url} via {login.oidc.issuer}; session {login.ttl} s; "
              f"policies: {policies} (docs/login.md)")
    return 0
