"""``ccgate setup claude-code``: point Claude Code at the gateway, safely and reversibly.

Exit status: 0 done (or nothing to change), 1 written but verification failed, or undo found
nothing to restore / refused, 2 bad input or a file setup refuses to touch (nothing changed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from ccgate.claude_code.env import CUSTOM_HEADERS, MODEL_VARS, collect_secrets
from ccgate.claude_code.files import ClaudeFiles
from ccgate.config.secrets import mask
from ccgate.setup import build_plan
from ccgate.setup.files import (
    FileRestore,
    SetupFileError,
    apply_writes,
    backup_root,
    latest_backup,
    plan_restore,
    restore_backup,
)
from ccgate.setup.login import check_login_endpoint, plan_login
from ccgate.setup.model import (
    DEFAULT_GATEWAY,
    GATEWAY_KEY_HEADER,
    MISSING,
    PLACEHOLDER_TOKEN,
    Plan,
    SetupError,
    SetupOptions,
    display_path,
    redact,
    unified_diff,
)
from ccgate.setup.plan import choose_token, normalize_gateway, slow_provider_env
from ccgate.setup.shellenv import SHELLS, detect_shell, env_assignments, render
from ccgate.setup.verify import VerifyResult, verify_gateway, verify_with_doctor

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_REFUSED = 0, 1, 2


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="setup_target", metavar="CLIENT")
    cc = sub.add_parser(
        "claude-code",
        help="write Claude Code's settings so it uses the gateway",
        description=(
            "Write ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN (and NO_PROXY when a proxy is set) "
            "into Claude Code's user settings, mark onboarding done so its first-run check of "
            "api.anthropic.com never runs, remove conflicting credentials, then check the path. "
            "Every change is backed up; --undo reverts the keys the last run changed."
        ),
    )
    cc.add_argument(
        "--gateway",
        metavar="URL",
        help=f"the gateway's root URL (default: from the ccgate config, else {DEFAULT_GATEWAY})",
    )
    cc.add_argument("--key", metavar="KEY", help="the gateway key Claude Code sends as Bearer")
    cc.add_argument(
        "--subscription",
        action="store_true",
        help="keep Claude Code's own login (Claude subscription): the gateway key goes in "
        "ANTHROPIC_CUSTOM_HEADERS as x-ccgate-key instead of ANTHROPIC_AUTH_TOKEN",
    )
    cc.add_argument(
        "--login",
        metavar="URL",
        help="instead of a key: make Claude Code's /login sign in to the gateway at URL "
        "(forceLoginMethod/forceLoginGatewayUrl; docs/login.md)",
    )
    cc.add_argument("--managed", action="store_true",
                    help="with --login: write the machine's managed-settings file (admin), not user settings")
    cc.add_argument("--config", metavar="FILE", help="ccgate config to read client tokens from")
    cc.add_argument("--model", metavar="ID", help="ANTHROPIC_MODEL (the main model)")
    cc.add_argument("--haiku-model", metavar="ID", help="ANTHROPIC_DEFAULT_HAIKU_MODEL")
    cc.add_argument("--sonnet-model", metavar="ID", help="ANTHROPIC_DEFAULT_SONNET_MODEL")
    cc.add_argument("--opus-model", metavar="ID", help="ANTHROPIC_DEFAULT_OPUS_MODEL")
    cc.add_argument("--dry-run", action="store_true", help="print the diff of what would change; write nothing")
    cc.add_argument("--undo", action="store_true",
                    help="revert the keys the last run changed (files changed since keep their other changes)")
    cc.add_argument(
        "--print-env",
        nargs="?",
        const="auto",
        choices=[*SHELLS, "auto"],
        metavar="SHELL",
        help="print export lines for bash, zsh, fish or powershell instead of writing files",
    )
    cc.add_argument("-y", "--yes", action="store_true", help="do not ask; undo even files changed since")
    cc.add_argument("--json", action="store_true",
                    help="print one JSON object on stdout (plan, what was written, the check; "
                         "secrets masked) and the prose on stderr; never asks (needs --yes or "
                         "--dry-run on a terminal)")
    cc.add_argument("--no-verify", action="store_true", help="skip the check of the gateway")
    cc.add_argument(
        "--project-dir",
        metavar="DIR",
        help="project whose .claude/settings*.json to check for overrides (default: cwd)",
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "setup_target", None) != "claude-code":
        print("usage: ccgate setup claude-code [options]  (see --help)", file=sys.stderr)
        return EXIT_REFUSED
    env = dict(os.environ)
    home = Path(env.get("HOME") or Path.home())
    if args.json and args.print_env:
        _err("--json and --print-env are two different outputs; choose one")
        return EXIT_REFUSED
    if args.json and not (args.yes or args.dry_run) and sys.stdin.isatty():
        _err("--json never asks: add --yes to apply, or --dry-run to preview")
        return EXIT_REFUSED
    try:
        if args.undo:
            return _undo(args, env, home)
        return _setup(args, env, home)
    except (SetupError, SetupFileError) as exc:
        _err(str(exc))
        return EXIT_REFUSED


def _err(message: str) -> None:
    print(f"ccgate setup: error: {message}", file=sys.stderr)


# -- setup -----------------------------------------------------------------------------------


def _from_config(args: argparse.Namespace,
                 env: dict[str, str]) -> tuple[str | None, list[str], tuple[str, ...]]:
    """(default gateway URL, client tokens, providers marked slow) from the ccgate config, if
    one is found.

    Only the address and the client tokens are read: provider keys are not resolved, since
    the shell setup runs in often lacks them. A config that is found but cannot be read stops
    setup, unless --gateway and --key make it unnecessary: silently using defaults that differ
    from it would point Claude Code at the wrong address or with the wrong key.
    """
    from ccgate.config.load import load_client_view
    from ccgate.errors import ConfigError

    try:
        view = load_client_view(args.config, env)
    except ConfigError as exc:
        if args.gateway and args.key and not args.config:
            print(f"ccgate setup: note: ccgate config not used (--gateway and --key given): {exc}",
                  file=sys.stderr)
            return None, [], ()
        raise SetupError(
            f"cannot read the ccgate config: {exc}. Setup takes the gateway address and client "
            "token from it; fix it, or pass --gateway URL and --key KEY"
        ) from None
    if view.path is None:
        return None, [], ()
    return view.url, [secret.value for secret in view.client_tokens.values()], view.slow_providers


def _options(args: argparse.Namespace, env: dict[str, str], home: Path) -> SetupOptions:
    config_gateway, tokens, slow = _from_config(args, env)
    models = {
        MODEL_VARS[name]: value
        for name, value in (
            ("model", args.model),
            ("haiku", args.haiku_model),
            ("sonnet", args.sonnet_model),
            ("opus", args.opus_model),
        )
        if value
    }
    return SetupOptions(
        gateway=args.gateway or config_gateway or DEFAULT_GATEWAY,
        key=args.key,
        config_tokens=tuple(tokens),
        models=models,
        env=env,
        home=home,
        project_dir=Path(args.project_dir) if args.project_dir else Path.cwd(),
        subscription=bool(getattr(args, "subscription", False)),
        slow_providers=slow,
    )


def _show(value: Any, secret: bool) -> str:
    if value is MISSING:
        return "unset"
    if secret and isinstance(value, str) and value and value != PLACEHOLDER_TOKEN:
        return json.dumps(mask(value), ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def print_plan(plan: Plan, home: Path, out: TextIO) -> None:
    token = plan.token if plan.token == PLACEHOLDER_TOKEN else mask(plan.token)
    print(f"Claude Code -> {plan.gateway}  (token {token}, from {plan.token_source})", file=out)
    if any(c.key == f"env.{CUSTOM_HEADERS}" and GATEWAY_KEY_HEADER in str(c.new) for c in plan.changes):
        print(f"  subscription mode: the gateway key goes as {GATEWAY_KEY_HEADER}; your Claude login "
              "goes to Anthropic as it is", file=out)
    print_plan_changes(plan, home, out)


def print_plan_changes(plan: Plan, home: Path, out: TextIO) -> None:
    if plan.changes:
        print("\nChanges:", file=out)
        current: Path | None = None
        for change in plan.changes:
            if change.file != current:
                current = change.file
                print(f"  {display_path(change.file, home)}", file=out)
            if change.new is MISSING:
                line = f"    - {change.key}  (was {_show(change.old, change.secret)})"
            elif change.old is MISSING:
                line = f"    + {change.key} = {_show(change.new, change.secret)}"
            else:
                line = (
                    f"    ~ {change.key} = {_show(change.new, change.secret)}"
                    f"  (was {_show(change.old, change.secret)})"
                )
            print(plan.redact(line), file=out)
            print(f"        why: {change.why}", file=out)
    for level, title, mark in (("warn", "Warnings", "!"), ("info", "Notes", "i")):
        notes = [n for n in plan.notes if n.level == level]
        if notes:
            print(f"\n{title}:", file=out)
            for note in notes:
                print(plan.redact(f"  {mark} {note.text}"), file=out)
                if note.fix:
                    print(plan.redact(f"      fix: {note.fix}"), file=out)


def _confirm(args: argparse.Namespace, out: TextIO) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        # Nobody to ask (a script, CI): apply, but say so; the summary after writing says what.
        print("\nNo terminal to confirm on: applying the changes above (preview with --dry-run).", file=out)
        return True
    try:
        answer = input("\nApply these changes? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _setup(args: argparse.Namespace, env: dict[str, str], home: Path) -> int:
    if args.login:
        return _setup_login(args, env, home)
    if args.managed:
        raise SetupError("--managed goes with --login URL")
    options = _options(args, env, home)
    if args.print_env:
        return _print_env(args, options)
    plan = build_plan(options)
    out = sys.stderr if args.json else sys.stdout  # --json: stdout carries the JSON alone
    report: dict[str, Any] = {"plan": plan_json(plan, home), "written": False, "backup": None,
                              "verify": None}
    print_plan(plan, home, out)
    if not plan.writes:
        print("\nNothing to change: Claude Code is already set up for this gateway.", file=out)
    elif args.dry_run:
        print("\nDiff (dry run, nothing written):", file=out)
        out.write(plan.diff())
        return _report(args, report, EXIT_OK)
    else:
        if not _confirm(args, out):
            print("Nothing written.", file=out)
            return _report(args, report, EXIT_OK)
        backup = apply_writes(plan.writes, backup_root(plan.files.config_dir))
        report |= {"written": True, "backup": str(backup.directory)}
        print_written(plan, home, out)
        print(
            f"Backup in {display_path(backup.directory, home)}; undo with: ccgate setup claude-code --undo",
            file=out,
        )
    if args.dry_run or args.no_verify:
        return _report(args, report, EXIT_OK)
    result = verify(plan, options)
    print_verify(result, plan, out)
    report["verify"] = {"ok": result.ok, "source": result.source, "steps": [
        {"name": s.name, "ok": s.ok, "warn": s.warn, "detail": plan.redact(s.detail),
         "fix": plan.redact(s.fix) if s.fix else None} for s in result.steps]}
    return _report(args, report, EXIT_OK if result.ok else EXIT_VERIFY_FAILED)


def _report(args: argparse.Namespace, report: dict[str, Any], code: int) -> int:
    if args.json:
        print(json.dumps({**report, "exit_code": code}, indent=2, ensure_ascii=False))
    return code


def plan_json(plan: Plan, home: Path) -> dict[str, Any]:
    """The plan as data for ``--json``: what ``print_plan`` shows, secret values masked."""
    def shown(value: Any, secret: bool) -> Any:
        if value is MISSING:
            return None
        # as print_plan: a secret value masked, and any known secret inside a value redacted
        return json.loads(plan.redact(_show(value, secret)))

    return {
        "gateway": plan.gateway,
        "token": plan.token if plan.token == PLACEHOLDER_TOKEN else mask(plan.token),
        "token_source": plan.token_source,
        "changes": [
            {"file": display_path(c.file, home), "key": c.key,
             "action": "remove" if c.new is MISSING else "add" if c.old is MISSING else "change",
             "old": shown(c.old, c.secret), "new": shown(c.new, c.secret), "why": c.why}
            for c in plan.changes
        ],
        "notes": [{"level": n.level, "text": plan.redact(n.text),
                   "fix": plan.redact(n.fix) if n.fix else None} for n in plan.notes],
    }


def _setup_login(args: argparse.Namespace, env: dict[str, str], home: Path) -> int:
    if args.key or args.gateway or args.subscription or args.print_env:
        raise SetupError("--login replaces --gateway/--key/--subscription/--print-env: the developer signs "
                         "in with /login instead of holding a key")
    project = Path(args.project_dir) if args.project_dir else Path.cwd()
    plan = plan_login(args.login, env, home, project, managed=args.managed)
    out = sys.stdout
    print(f"Claude Code /login -> {plan.gateway}", file=out)
    print_plan_changes(plan, home, out)
    if not plan.writes:
        print("\nNothing to change: /login already offers this gateway.", file=out)
    elif args.dry_run:
        print("\nDiff (dry run, nothing written):", file=out)
        out.write(plan.diff())
        return EXIT_OK
    else:
        if not _confirm(args, out):
            print("Nothing written.", file=out)
            return EXIT_OK
        backup = apply_writes(plan.writes, backup_root(plan.files.config_dir))
        print_written(plan, home, out)
        print(f"Backup in {display_path(backup.directory, home)}; undo with: ccgate setup claude-code --undo",
              file=out)
    if args.no_verify:
        return EXIT_OK
    ok, detail = check_login_endpoint(plan.gateway)
    print(f"\nCheck: {'ok  ' if ok else 'FAIL'} {detail}", file=out)
    if ok:
        print("Run `claude`, then /login (or just start it: the sign-in screen comes first).", file=out)
    return EXIT_OK if ok else EXIT_VERIFY_FAILED


def print_written(plan: Plan, home: Path, out: TextIO) -> None:
    """What was changed, file by file (key names only: values may be secrets)."""
    print("\nChanged:", file=out)
    for state, _ in plan.writes:
        keys = [c.key for c in plan.changes if c.file in (state.path, state.target)]
        print(f"  {display_path(state.path, home)}: {', '.join(keys) or 'formatting only'}", file=out)


def verify(plan: Plan, options: SetupOptions) -> VerifyResult:
    """The doctor's checks on the files as written; a direct check if the doctor fails."""
    if options.subscription:
        # The doctor checks Claude Code's own credential, which here is the user's login and is
        # Anthropic's to check; the direct check tests the gateway key against the gateway.
        result = verify_gateway(plan.gateway, plan.token, plan.effective_env)
        result.source = "direct check of the gateway key (subscription mode)"
        return result
    try:
        return verify_with_doctor(
            options.env,
            options.home,
            options.project_dir,
            plan.files.managed_dir,
        )
    except Exception as exc:  # the doctor is another component; never lose the check
        result = verify_gateway(plan.gateway, plan.token, plan.effective_env)
        result.source = f"direct check; the doctor failed: {type(exc).__name__}: {exc}"[:300]
        return result


def print_verify(result: VerifyResult, plan: Plan, out: TextIO) -> None:
    print(f"\nCheck ({result.source}):", file=out)
    for step in result.steps:
        status = "FAIL" if not step.ok else "warn" if step.warn else "ok  "
        print(plan.redact(f"  {status} {step.name}: {step.detail}"), file=out)
        if step.fix and (not step.ok or step.warn):
            print(plan.redact(f"       fix: {step.fix}"), file=out)
    if result.ok:
        print("Claude Code is ready: run `claude`.", file=out)


def _print_env(args: argparse.Namespace, options: SetupOptions) -> int:
    if options.subscription:
        raise SetupError("--print-env does not support --subscription yet; run without --print-env")
    shell = detect_shell(options.env) if args.print_env == "auto" else str(args.print_env)
    gateway = normalize_gateway(options.gateway)
    token, source = choose_token(options, {}, gateway)  # no files: only --key, config, placeholder
    host = urlsplit(gateway).hostname or ""
    assign, unset = env_assignments(gateway, token, options.models, options.env, host)
    # providers marked slow: the same idle timeouts a settings setup writes (unless the shell
    # already has longer ones)
    slow = slow_provider_env(options.slow_providers, options.env)
    assign.update({var: want.value for var, want in slow.items()})
    sys.stdout.write(render(shell, assign, unset))
    print(
        f"# {shell} lines for Claude Code -> {gateway} (token from {source}); nothing was "
        "written. Add them to your shell profile. ANTHROPIC_AUTH_TOKEN also makes Claude Code "
        "skip its first-run check of api.anthropic.com.",
        file=sys.stderr,
    )
    return EXIT_OK


# -- undo ------------------------------------------------------------------------------------


def _undo(args: argparse.Namespace, env: dict[str, str], home: Path) -> int:
    backups = backup_root(ClaudeFiles.locate(env, home).config_dir)
    backup = latest_backup(backups)
    if backup is None:
        _err(f"no setup backup to restore in {backups}")
        return EXIT_VERIFY_FAILED
    restore = plan_restore(backup, force=args.yes)
    out = sys.stderr if args.json else sys.stdout
    report: dict[str, Any] = {"undo": True, "backup": str(backup.directory),
                              "files": [{"file": display_path(f.current.path, home), "how": f.how}
                                        for f in restore.files],
                              "conflicts": list(restore.conflicts), "restored": False}
    print(f"Undoing setup from {backup.manifest.get('created', backup.directory.name)}:", file=out)
    for f in restore.files:
        print(f"  {display_path(f.current.path, home)}: {f.how}", file=out)
    if restore.conflicts and not args.dry_run:
        keys = "; ".join(restore.conflicts)
        _err(
            f"changed again since setup wrote them: {keys}. Undo would discard those changes; "
            "nothing was restored. See the diff with --undo --dry-run; undo anyway with --undo --yes."
        )
        return _report(args, report, EXIT_VERIFY_FAILED)
    if args.dry_run:
        print("\nDiff (dry run, nothing restored):", file=out)
        out.write(_undo_diff(restore.files))
        return _report(args, report, EXIT_OK)
    restore_backup(restore)
    print(f"Done. The backup stays in {display_path(backup.directory, home)}.", file=out)
    return _report(args, report | {"restored": True}, EXIT_OK)


def _undo_diff(files: list[FileRestore]) -> str:
    secrets: set[str] = set()
    diff: list[str] = []
    for f in files:
        for blob in (f.current.raw, f.new):
            if blob:
                with contextlib.suppress(ValueError):
                    collect_secrets(json.loads(blob), secrets)
        old = (f.current.raw or b"").decode("utf-8", "replace")
        new = (f.new or b"").decode("utf-8", "replace")
        diff.append(unified_diff(old, new, str(f.current.path), str(f.current.path)))
    return redact("".join(diff), secrets)
