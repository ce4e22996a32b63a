"""``ccgate keys create|list|update|revoke|rotate``: client keys the gateway issues (docs/keys.md).

Bad input (name, glob, limit, duration) is refused by argparse before the database is opened,
so it changes nothing and exits 2. A key that does not exist, a duplicate name or a revoked
key exits 1. A secret is printed exactly once, alone on stdout, by ``create`` and ``rotate``;
everything addressed to the human goes to stderr. With ``--json`` (create, update, revoke,
rotate) stdout is one JSON object instead: the key, and its secret when there is one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence

from ccgate.config.load import configured_store
from ccgate.errors import ConfigError
from ccgate.store import (
    DB_ENV,
    InvalidInput,
    IssuedKey,
    KeyManager,
    Store,
    StoreError,
    StoreLocation,
    StoreMissing,
    StoreUnavailable,
    default_db_path,
    key_summary,
    open_store,
)
from ccgate.store.cost import format_usd
from ccgate.store.keys import UNSET, iso
from ccgate.store.validate import DURATION_HELP, MAX_LIMIT, check_glob, check_name, parse_budget, parse_duration

PROPAGATION = "running gateways pick this up within about a second"


# argparse types: turn InvalidInput into argparse's own "argument --x: message" error -----


def _checked(check: Callable[[str], object]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        try:
            check(text)
        except InvalidInput as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
        return text

    return convert


def duration_arg(text: str) -> int:
    try:
        return parse_duration(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def _budget_arg(text: str) -> float | None:
    try:
        return parse_budget(text, "budget")
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


_BUDGET_HELP = ("USD the key may spend per UTC {}; requests are refused (429) once it is spent. "
                "'none' removes it")


def _add_budget_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget-day", type=_budget_arg, metavar="USD", default=UNSET,
                        help=_BUDGET_HELP.format("day (00:00-24:00 UTC)"))
    parser.add_argument("--budget-month", type=_budget_arg, metavar="USD", default=UNSET,
                        help=_BUDGET_HELP.format("calendar month"))


def _limit_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_LIMIT}, got {text!r}")
    return value


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH|URL",
                        help=f"the key and usage store: a file or postgresql://USER@HOST/DB (else "
                             f"${DB_ENV}, else store.url / store.path in the config, else {default_db_path()})")
    parser.add_argument("--config", metavar="FILE",
                        help="the gateway's config file, for its store.path (default: the one "
                             "`ccgate serve` would find)")


def db_path(args: argparse.Namespace, command: str) -> StoreLocation | None:
    """The store the options of ``add_db_option`` point at; None (after saying why) when the
    config they name cannot be read or the location is unusable."""
    from ccgate.server.store_location import store_location

    try:
        found = configured_store(args.config, os.environ)
        return store_location(args.db, os.environ, found[1] if found else None, found[0] if found else None)
    except ConfigError as exc:
        print(f"ccgate {command}: config error: {exc}", file=sys.stderr)
        return None


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    db = argparse.ArgumentParser(add_help=False)
    add_db_option(db)

    create = sub.add_parser("create", parents=[db], help="issue a key; its secret is printed once")
    create.add_argument("--name", required=True, type=_checked(check_name),
                        help="unique among unrevoked keys; shown in logs and usage")
    create.add_argument("--models", nargs="+", action="extend", default=[], type=_checked(check_glob),
                        metavar="GLOB", help="models the key may use, e.g. 'claude-*' (default: all)")
    create.add_argument("--rpm", type=_limit_arg, metavar="N", help="requests per minute (default: none)")
    create.add_argument("--tpm", type=_limit_arg, metavar="N", help="tokens per minute (default: none)")
    create.add_argument("--expires", type=duration_arg, metavar="DURATION",
                        help=f"lifetime: {DURATION_HELP} (default: never)")
    _add_budget_options(create)
    add_json_option(create)

    update = sub.add_parser("update", parents=[db], help="change a key's daily or monthly budget")
    update.add_argument("key", metavar="KEY", help="key id (key_...) or name")
    _add_budget_options(update)
    add_json_option(update)

    listing = sub.add_parser("list", parents=[db], help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    revoke = sub.add_parser("revoke", parents=[db], help="stop a key from working")
    add_json_option(revoke)
    revoke.add_argument("key", metavar="KEY", help="key id (key_...) or name")

    rotate = sub.add_parser("rotate", parents=[db], help="give a key a new secret, printed once")
    rotate.add_argument("key", metavar="KEY", help="key id (key_...) or name")
    rotate.add_argument("--grace", type=duration_arg, metavar="DURATION",
                        help=f"keep the old secret working this long: {DURATION_HELP} (default: stop now)")
    add_json_option(rotate)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout (the key, and the secret if any) "
                             "instead of the secret alone and prose on stderr")


def _print_json(key: IssuedKey, secret: str | None = None) -> None:
    out: dict[str, object] = {"key": key_summary(key, time.time())}
    if secret is not None:
        out["secret"] = secret
    print(json.dumps(out, indent=2), flush=True)


def run(args: argparse.Namespace) -> int:
    path = db_path(args, "keys")
    if path is None:
        return 2
    action = ACTIONS[args.keys_action]
    try:
        return action(args, path)
    except InvalidInput as exc:
        print(f"ccgate keys: {exc}", file=sys.stderr)
        return 2
    except StoreMissing as exc:
        print(f"ccgate keys: {exc}; create a key first, or point --db / {DB_ENV} at the gateway's store",
              file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        print(f"ccgate keys: {exc} (is PostgreSQL running and reachable?)", file=sys.stderr)
        return 3
    except StoreError as exc:  # KeyNotFound, KeyConflict, I/O
        print(f"ccgate keys: {exc}", file=sys.stderr)
        return 1


def _with_store(path: StoreLocation, create: bool, work: Callable[[Store], int]) -> int:
    store = open_store(path, create=create)
    try:
        return work(store)
    finally:
        store.close()


# Actions -----------------------------------------------------------------------------------


def _create(args: argparse.Namespace, path: StoreLocation) -> int:
    def work(store: Store) -> int:
        key, secret = KeyManager(store).create(
            args.name, models=args.models, rpm=args.rpm, tpm=args.tpm, expires_in=args.expires,
            budget_day=_given(args.budget_day), budget_month=_given(args.budget_month))
        if args.json:
            _print_json(key, secret)
            return 0
        print(secret, flush=True)
        limits = ", ".join(f"{n} {v}" for n, v in (("rpm", key.rpm), ("tpm", key.tpm)) if v) or "no limits"
        limits += f", budgets {_budgets(key)}"
        print(f"Created key {key.name} ({key.id}, {key.prefix}...): models {_models(key)}, {limits}, "
              f"expires {iso(key.expires_at) or 'never'}.", file=sys.stderr)
        _guidance()
        return 0

    return _with_store(path, True, work)


def _given(value: object) -> float | None:
    return value if isinstance(value, float) else None


def _update(args: argparse.Namespace, path: StoreLocation) -> int:
    if args.budget_day is UNSET and args.budget_month is UNSET:
        print("ccgate keys update: nothing to change; give --budget-day and/or --budget-month",
              file=sys.stderr)
        return 2

    def work(store: Store) -> int:
        key = KeyManager(store).set_budget(args.key, day=args.budget_day, month=args.budget_month)
        if args.json:
            _print_json(key)
            return 0
        print(f"Updated key {key.name} ({key.id}): budgets {_budgets(key)}; {PROPAGATION}.")
        return 0

    return _with_store(path, False, work)


def _budgets(key: IssuedKey) -> str:
    day = f"{format_usd(key.budget_day)}/day" if key.budget_day is not None else None
    month = f"{format_usd(key.budget_month)}/month" if key.budget_month is not None else None
    return " ".join(b for b in (day, month) if b) or "none"


def _guidance() -> None:
    print("Store the secret now: it cannot be shown again (ccgate keeps only a hash).\n"
          "Claude Code sends it as ANTHROPIC_AUTH_TOKEN or ANTHROPIC_API_KEY.", file=sys.stderr)


def _list(args: argparse.Namespace, path: StoreLocation) -> int:
    try:
        store = open_store(path, create=False)
    except StoreMissing:
        keys: list[IssuedKey] = []
    else:
        try:
            keys = KeyManager(store).list_keys()
        finally:
            store.close()
    now = time.time()
    if args.json:
        print(json.dumps([key_summary(k, now) for k in keys], indent=2))
        return 0
    if not keys:
        print(f"no keys in {path}", file=sys.stderr)
        return 0
    headers = ["NAME", "ID", "PREFIX", "MODELS", "RPM", "TPM", "BUDGET", "CREATED", "EXPIRES", "STATUS"]
    rows = [
        [k.name, k.id, k.prefix + "...", _models(k), _num(k.rpm), _num(k.tpm), _budgets(k),
         _when(k.created_at), _when(k.expires_at), k.status(now)]
        for k in keys
    ]
    print(render_table(headers, rows))
    return 0


def _revoke(args: argparse.Namespace, path: StoreLocation) -> int:
    def work(store: Store) -> int:
        key = KeyManager(store).revoke(args.key)
        if args.json:
            _print_json(key)
            return 0
        print(f"Revoked key {key.name} ({key.id}); {PROPAGATION}.")
        return 0

    return _with_store(path, False, work)


def _rotate(args: argparse.Namespace, path: StoreLocation) -> int:
    def work(store: Store) -> int:
        key, secret = KeyManager(store).rotate(args.key, grace=args.grace)
        if args.json:
            _print_json(key, secret)
            return 0
        print(secret, flush=True)
        old = (f"The old secret keeps working until {iso(key.grace_until)}." if key.grace_until
               else "The old secret no longer works.")
        print(f"Rotated key {key.name} ({key.id}); the new secret starts {key.prefix}...\n"
              f"{old} Running gateways pick the change up within about a second.", file=sys.stderr)
        _guidance()
        return 0

    return _with_store(path, False, work)


ACTIONS: dict[str, Callable[[argparse.Namespace, StoreLocation], int]] = {
    "create": _create, "list": _list, "update": _update, "revoke": _revoke, "rotate": _rotate,
}


# Formatting --------------------------------------------------------------------------------


def _models(key: IssuedKey) -> str:
    return ",".join(key.models) if key.models else "*"


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _when(ts: float | None) -> str:
    text = iso(ts)
    return "-" if text is None else text[:16].replace("T", " ")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 right: frozenset[int] = frozenset()) -> str:
    """Columns padded to width; ``right`` holds the indexes of numeric (right-aligned) columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])
