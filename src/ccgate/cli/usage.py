"""``ccgate usage [--since 7d] [--by key|model|provider|session] [--json]``: token totals."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from ccgate.cli.keys import add_db_option, db_path, duration_arg, render_table
from ccgate.store import (
    DB_ENV,
    GROUP_BY,
    GroupBy,
    StoreError,
    StoreMissing,
    StoreUnavailable,
    UsageGroup,
    open_store,
)
from ccgate.store.keys import iso
from ccgate.store.report import cost_text, usage_report

_TITLES: dict[GroupBy, str] = {"key": "KEY", "model": "MODEL", "provider": "PROVIDER", "session": "SESSION"}


def _since_arg(text: str) -> int | None:
    return None if text == "all" else duration_arg(text)


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument("--since", type=_since_arg, default=7 * 86400, metavar="DURATION",
                        help="how far back: 30m, 12h, 7d, 4w or 'all' (default 7d)")
    parser.add_argument("--by", choices=GROUP_BY, default="key", help="group rows by (default key)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    path = db_path(args, "usage")
    if path is None:
        return 2
    since = None if args.since is None else time.time() - args.since
    by: GroupBy = args.by
    try:
        store = open_store(path, create=False)
    except StoreMissing:
        groups: list[UsageGroup] = []
    except StoreError as exc:
        print(f"ccgate usage: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, StoreUnavailable) else 1
    else:
        try:
            groups = store.usage_summary(since=since, by=by)
        except StoreError as exc:
            print(f"ccgate usage: {exc}", file=sys.stderr)
            return 3 if isinstance(exc, StoreUnavailable) else 1
        finally:
            store.close()
    if args.json:
        print(json.dumps(usage_report(groups, since=since, by=by), indent=2))
        return 0
    window = f"since {iso(since)}" if since is not None else "all time"
    if not groups:
        print(f"no usage recorded {window} in {path} (set --db or ${DB_ENV} to the gateway's store)",
              file=sys.stderr)
        return 0
    print(render_usage(groups, by))
    print(f"({window}; errors = responses with status >= 400)", file=sys.stderr)
    return 0


def render_usage(groups: list[UsageGroup], by: GroupBy) -> str:
    headers = [_TITLES[by], "REQUESTS", "ERRORS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "COST",
               "LAST"]
    if by == "key":
        headers.insert(1, "ID")
    rows: list[list[str]] = []
    for g in groups:
        name = (g.label if by == "key" else g.group) or g.group or "(none)"
        rows.append(_row(name, g.requests, g.errors, g.input_tokens, g.output_tokens, g.cache_read_tokens,
                         g.cache_creation_tokens, cost_text(g), (iso(g.last_ts) or "")[:16].replace("T", " ")))
        if by == "key":
            rows[-1].insert(1, g.group or "-")
    total = dataclasses.replace(groups[0], cost_usd=sum(g.cost_usd for g in groups),
                                unpriced=sum(g.unpriced for g in groups))
    rows.append(_row("TOTAL", *(sum(getattr(g, f) for g in groups) for f in _SUMMED), cost_text(total), ""))
    if by == "key":
        rows[-1].insert(1, "")
    first_number = 2 if by == "key" else 1
    return render_table(headers, rows, right=frozenset(range(first_number, first_number + 7)))


_SUMMED = ("requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")


def _row(name: str, *cells: int | str) -> list[str]:
    return [name, *(f"{c:,}" if isinstance(c, int) else c for c in cells)]
