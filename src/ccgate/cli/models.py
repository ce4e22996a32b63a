"""``ccgate models [PROVIDER]``: each provider's live model list (``GET /models`` through its
proxy and TLS settings, with its stored key) and the configured routes that reach it.

Exit status: 0 listed (a provider whose list failed says why), 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from ccgate.cli.connect import EXIT_OK, report_error
from ccgate.connect import ConnectError, Connector


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider", nargs="?", metavar="PROVIDER", help="only this provider")
    parser.add_argument("--config", metavar="FILE", help="config file (default: the one serve uses)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    try:
        connector = Connector(args.config, dict(os.environ))
        listing = asyncio.run(connector.models(args.provider))
    except ConnectError as exc:
        return report_error("models", exc, args.json)
    if args.json:
        print(json.dumps({"providers": [entry.to_dict() for entry in listing]}, indent=2))
        return EXIT_OK
    for entry in listing:
        print(f"{entry.provider}:")
        for model in entry.models:
            extra = f"  ({model.display_name})" if model.display_name else ""
            window = f"  context {model.context_window}" if model.context_window else ""
            print(f"  {model.id}{extra}{window}")
        if entry.error:
            print(f"  (no live list: {entry.error})")
        for route in entry.routes:
            print(f"  route {route.match!r} -> {route.to}")
    return EXIT_OK
