"""``ccgate connect``: a provider in, tested, saved, Claude Code routed to it.

Interactive on a terminal (a wizard that asks only what the flags did not say); with ``--yes``,
``--json`` or without a terminal it never asks. Exit status: 0 saved (or already so), 1 the test
failed (nothing saved) or a later step failed, 2 bad input (nothing changed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ccgate.cli import wizard
from ccgate.cli.gateway_reload import reload_gateway
from ccgate.config.model import ProviderKind
from ccgate.connect import (
    CheckResult,
    ConnectError,
    Connector,
    ConnectResult,
    ProviderInput,
    apply_claude_code,
    parse_map,
    plan_claude_code,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Connect a provider: discover its models, send one real minimal request, save it with "
        "Claude Code's tiers routed to it (comments in the config kept, a backup made, a typed key "
        "stored in a 0600 file), point Claude Code at the gateway and reload a running gateway."
    )
    which = parser.add_argument_group("provider")
    which.add_argument("--preset", metavar="NAME", help="a named provider (docs/providers.md)")
    which.add_argument("--base-url", metavar="URL", help="any endpoint's base URL (with --kind)")
    which.add_argument("--kind", choices=["openai-compatible", "anthropic-compatible"],
                       help="what the endpoint speaks")
    which.add_argument("--name", metavar="NAME", help="the provider's name in the config")
    which.add_argument("--key", metavar="SECRET|env:VAR|file:PATH",
                       help="the provider's key; a literal goes to a 0600 file, never into the YAML")
    which.add_argument("--model", metavar="ID", action="append", default=[],
                       help="the model for every Claude Code tier (repeat: the first is the main one)")
    which.add_argument("--map", metavar="opus=ID,sonnet=ID,haiku=ID",
                       help="a model per tier (also main=, subagent=)")
    parser.add_argument("--config", metavar="FILE", help="the config file to write (created if missing)")
    parser.add_argument("--no-claude-code", action="store_true", help="do not touch Claude Code's settings")
    parser.add_argument("--no-test", action="store_true", help="save without the real test request")
    parser.add_argument("--no-tools-check", action="store_true", help="skip the tool-calling check")
    parser.add_argument("--force", action="store_true", help="save even when the test fails")
    parser.add_argument("-y", "--yes", action="store_true", help="never ask")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    interactive = not (args.yes or args.json) and sys.stdin.isatty()
    try:
        connector = Connector(args.config, env)
        spec = spec_from_args(args)
        if interactive:
            return wizard.run_wizard(connector, spec, args, env)
        return asyncio.run(_scripted(connector, spec, args, env))
    except ConnectError as exc:
        return _fail(exc, args.json)


def spec_from_args(args: argparse.Namespace) -> ProviderInput:
    if args.kind and not args.base_url and not args.preset:
        raise ConnectError("--kind goes with --base-url URL", bad_input=True)
    if args.base_url and not args.kind and not args.preset:
        raise ConnectError("--base-url needs --kind openai-compatible|anthropic-compatible", bad_input=True)
    kind: ProviderKind | None = args.kind
    tiers = parse_map(args.map) if args.map else {}
    return ProviderInput(preset=args.preset, base_url=args.base_url, kind=kind, name=args.name,
                         key=args.key, models=tuple(args.model), tiers=tiers)


async def _scripted(connector: Connector, spec: ProviderInput, args: argparse.Namespace,
                    env: dict[str, str]) -> int:
    if spec.preset is None and spec.base_url is None:
        raise ConnectError("give --preset NAME or --base-url URL --kind KIND (or run on a terminal "
                           "for the wizard)", bad_input=True)
    result = await connector.connect(spec, test=not args.no_test, force=args.force,
                                     tools=not args.no_tools_check)
    return finish(connector, result, args, env, sys.stdout)


def finish(connector: Connector, result: ConnectResult, args: argparse.Namespace,
           env: dict[str, str], out: TextIO, *, wire: bool | None = None) -> int:
    """Report the result, wire Claude Code and reload the gateway (the wizard's end too)."""
    report: dict[str, Any] = {"connect": result.to_dict(), "claude_code": None, "gateway": None}
    if not args.json:
        print_result(result, out)
    if not result.saved and result.action != "unchanged":
        return _emit(report, args, EXIT_FAILED)
    wire = not args.no_claude_code if wire is None else wire
    if wire:
        report["claude_code"] = _wire(connector, result, env, args.json, out)
    report["gateway"] = reload_gateway(connector.config_path, env, quiet=args.json, out=out)
    failed = report["claude_code"] is not None and report["claude_code"].get("error")
    return _emit(report, args, EXIT_FAILED if failed else EXIT_OK)


def _emit(report: dict[str, Any], args: argparse.Namespace, code: int) -> int:
    if args.json:
        print(json.dumps(report, indent=2))
    return code


def _wire(connector: Connector, result: ConnectResult, env: dict[str, str], quiet: bool,
          out: TextIO) -> dict[str, Any]:
    home = Path(env.get("HOME") or Path.home())
    try:
        wiring = apply_claude_code(plan_claude_code(connector.config_path, env, home, result.claude_code_env))
    except ConnectError as exc:
        if not quiet:
            print(f"Claude Code not wired: {exc.message}", file=out)
        return {"error": exc.message}
    written = [str(state.path) for state, _ in wiring.plan.writes]
    if not quiet:
        for note in wiring.plan.notes:
            if note.level == "warn":
                print(wiring.plan.redact(f"  ! {note.text}"), file=out)
        if wiring.changed:
            print(f"Claude Code -> {wiring.plan.gateway}: wrote {', '.join(written)} "
                  f"(undo: ccgate setup claude-code --undo)", file=out)
        else:
            print(f"Claude Code already points at {wiring.plan.gateway}.", file=out)
    return {"gateway": wiring.plan.gateway, "changed": wiring.changed, "files": written,
            "backup_dir": str(wiring.backup_dir) if wiring.backup_dir else None}


def print_result(result: ConnectResult, out: TextIO) -> None:
    if result.check is not None:
        print_check(result.check, out)
    for warning in result.warnings:
        print(f"warning: {warning}", file=out)
    if result.action == "not_saved":
        print("Nothing saved: the test failed (fix it, or save anyway with --force).", file=out)
        return
    verb = {"added": "Added", "updated": "Updated", "unchanged": "Unchanged:"}[result.action]
    print(f"{verb} provider {result.provider!r} ({result.kind}, {result.base_url}) in {result.config_path}",
          file=out)
    if result.secret_file:
        print(f"  key stored in {result.secret_file} (mode 0600); the config refers to it", file=out)
    for route in result.routes:
        print(f"  route {route.match!r:>18} -> {route.to}   ({route.tier})", file=out)
    if result.backup_dir:
        print(f"  backup of the previous files in {result.backup_dir}", file=out)


def print_check(check: CheckResult, out: TextIO) -> None:
    status = "ok  " if check.ok else "FAIL"
    print(f"test {status} {check.message}", file=out)
    if not check.ok and check.finding:
        print(f"     ({check.finding}; {check.url})", file=out)
    if check.tools is not None:
        mark = "ok  " if check.tools == "tool_call" else "warn"
        print(f"tools {mark} {check.tools_message}", file=out)


def report_error(command: str, exc: ConnectError, as_json: bool) -> int:
    """A ConnectError as connect, providers and models print it; the exit status it means."""
    if as_json:
        print(json.dumps({"error": exc.message, "bad_input": exc.bad_input}))
    else:
        print(f"ccgate {command}: error: {exc.message}", file=sys.stderr)
    return EXIT_BAD_INPUT if exc.bad_input else EXIT_FAILED


def _fail(exc: ConnectError, as_json: bool) -> int:
    return report_error("connect", exc, as_json)


__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "configure", "finish", "print_check", "report_error",
           "run", "spec_from_args"]
