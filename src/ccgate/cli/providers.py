"""``ccgate providers [list | test NAME | remove NAME]``: the configured providers, a real test
of one with its stored key, or removing one (with its routes; backup made, gateway reloaded).

Exit status: 0 ok, 1 the test failed (or the gateway refused the reload), 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from ccgate.cli.connect import EXIT_FAILED, EXIT_OK, print_check, report_error
from ccgate.cli.gateway_reload import reload_gateway
from ccgate.connect import ConnectError, Connector


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config file (default: the one serve uses)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="providers_action", metavar="ACTION")
    listing = sub.add_parser("list", help="the configured providers (default)")
    test = sub.add_parser("test", help="send one real minimal request with the stored key")
    test.add_argument("name", metavar="NAME")
    test.add_argument("--model", metavar="ID", help="model to test (default: the routed one)")
    test.add_argument("--tools", action="store_true", help="also check tool calling")
    remove = sub.add_parser("remove", help="remove a provider and the routes to it")
    remove.add_argument("name", metavar="NAME")
    for action in (listing, test, remove):  # accepted after the action too
        action.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    try:
        connector = Connector(args.config, dict(os.environ))
        action = args.providers_action or "list"
        if action == "test":
            return _test(connector, args)
        if action == "remove":
            return _remove(connector, args)
        return _list(connector, args)
    except ConnectError as exc:
        return report_error("providers", exc, args.json)


def _list(connector: Connector, args: argparse.Namespace) -> int:
    providers = connector.providers()
    if args.json:
        print(json.dumps({"config_path": str(connector.config_path),
                          "providers": [p.to_dict() for p in providers]}, indent=2))
        return EXIT_OK
    print(f"{connector.config_path}{'' if connector.config_path.exists() else ' (not created yet: defaults)'}")
    for p in providers:
        keys = ", ".join(p.key_refs) or ("no key" if p.auth_header == "none" else "client's own key")
        preset = f" preset {p.preset}," if p.preset else ""
        print(f"  {p.name}:{preset} {p.kind}, {p.base_url}, key: {keys}")
        for route in p.routes:
            print(f"      {route.match!r} -> {route.to}")
    return EXIT_OK


def _test(connector: Connector, args: argparse.Namespace) -> int:
    check = asyncio.run(connector.test_provider(args.name, args.model, tools=args.tools))
    if args.json:
        print(json.dumps(check.to_dict(), indent=2))
    else:
        print_check(check, sys.stdout)
    return EXIT_OK if check.ok else EXIT_FAILED


def _remove(connector: Connector, args: argparse.Namespace) -> int:
    result = connector.remove(args.name)
    gateway: dict[str, Any] = reload_gateway(connector.config_path, connector.env, quiet=args.json,
                                             out=sys.stdout)
    if args.json:
        print(json.dumps({**result.to_dict(), "gateway": gateway}, indent=2))
        return EXIT_OK
    routes = ", ".join(repr(m) for m in result.routes_removed) or "none"
    print(f"Removed provider {result.provider!r} from {result.config_path} (routes removed: {routes}); "
          f"backup in {result.backup_dir}")
    for note in result.notes:
        print(f"  note: {note}")
    return EXIT_OK
