"""``ccgate models [PROVIDER]``: each provider's live model list (``GET /models`` through its
proxy and TLS settings, with its stored key) and the configured routes that reach it.

Exit status: 0 listed (a provider whose list failed says why), 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from ccgate.connect import ConnectError, Connector

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider", nargs="?", metavar="PROVIDER", help="only this provider")
    parser.add_argument("--config", metavar="FILE", help="config file (default: the one serve uses)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    try:
        connector = Connector(args.config, dict(os.environ))
        listing = asyncio.run(connector.models(args.provider))
    except ConnectError as exc:
        if args.json:
            print(json.dumps({"error": exc.message, "bad_input": exc.bad_input}))
        else:
            print(f"ccgate models: error: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.bad_input else EXIT_FAILED
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
