"""``ccgate doctor``: argparse wiring for ccgate.doctor (called by ccgate.cli.main)."""

from __future__ import annotations

import argparse
import sys
import traceback

from ccgate.doctor import DoctorOptions, run_checks
from ccgate.doctor.render import Progress, render, wants_color

EXIT_OK, EXIT_FAIL, EXIT_CANNOT_RUN = 0, 1, 2


def _resolve_arg(text: str) -> tuple[str, str]:
    host, sep, ip = text.rpartition(":") if text.count(":") == 1 else text.partition("=")
    if not sep or not host or not ip:
        raise argparse.ArgumentTypeError("use HOST:IP or HOST=IP (IPv6: HOST=IP)")
    return host.lower(), ip.strip("[]")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Find the one root cause of a failing Claude Code / Anthropic API connection, "
        "layer by layer, with the evidence and the fix.")
    parser.add_argument("--json", action="store_true", help="machine-readable findings")
    parser.add_argument("--base-url", help="endpoint to check (default: ANTHROPIC_BASE_URL, "
                                           "else https://api.anthropic.com)")
    parser.add_argument("--proxy", help="proxy URL to use instead of HTTPS_PROXY etc. "
                                        "('none' for direct)")
    parser.add_argument("--ca-file", help="extra PEM CA bundle to trust (like NODE_EXTRA_CA_CERTS)")
    parser.add_argument("--key", help="credential to test (default: what Claude Code would send)")
    parser.add_argument("--key-header", choices=("x-api-key", "authorization"),
                        help="header for --key (default x-api-key)")
    parser.add_argument("--model", help="model for the test call (default: ANTHROPIC_MODEL)")
    parser.add_argument("--explain", metavar="TEXT",
                        help="the error message you saw; the doctor says what it means")
    parser.add_argument("--timeout", type=float, default=12.0,
                        help="total time budget in seconds (default 12)")
    parser.add_argument("--connect-timeout", type=float, default=3.0,
                        help="per-connection timeout in seconds (default 3)")
    parser.add_argument("--resolve", action="append", type=_resolve_arg, default=[],
                        metavar="HOST:IP", help="skip DNS for HOST (like curl --resolve); repeat")
    parser.add_argument("--preflight", choices=("auto", "always", "never"), default="auto",
                        help="replay Claude Code's first-run check (default: when it would run)")
    parser.add_argument("--preflight-url", action="append", default=[], metavar="URL",
                        help=argparse.SUPPRESS)  # test hook: replaces Claude Code's two URLs
    parser.add_argument("--no-api", action="store_true", help="skip the authenticated API call")
    parser.add_argument("--no-claude-files", action="store_true",
                        help="ignore ~/.claude settings and ~/.claude.json")


def options_from_args(args: argparse.Namespace) -> DoctorOptions:
    return DoctorOptions(
        base_url=args.base_url, proxy=args.proxy, ca_file=args.ca_file, key=args.key,
        key_header=args.key_header, model=args.model, explain=args.explain,
        timeout=max(1.0, args.timeout), connect_timeout=max(0.2, args.connect_timeout),
        resolve=dict(args.resolve), preflight=args.preflight,
        preflight_urls=tuple(args.preflight_url) or None, api_check=not args.no_api,
        read_claude_files=not args.no_claude_files,
    )


def run(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
        if args.json:
            report = run_checks(options)
        else:
            with Progress() as progress:
                options.progress = progress
                report = run_checks(options)
    except KeyboardInterrupt:
        return EXIT_CANNOT_RUN
    except Exception as exc:  # the doctor itself failed: say so, exit 2
        print(f"ccgate doctor could not run: {exc}", file=sys.stderr)
        if getattr(args, "debug", False):
            traceback.print_exc()
        return EXIT_CANNOT_RUN
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        sys.stdout.write(render(report, color=wants_color(sys.stdout)))
    return report.exit_code
