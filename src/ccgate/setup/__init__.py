"""``ccgate setup``: wire a client to the gateway, safely and reversibly.

Layers, each usable alone: ``jsonedit`` (format-preserving JSON edits), ``gather`` (read
Claude Code's files, located by ``ccgate.claude_code``), ``plan`` (what to change and why;
pure, writes nothing), ``files`` (backup, atomic write, undo), ``shellenv`` (``--print-env``)
and ``verify`` (check the path afterwards). ``ccgate.cli.setup`` is the command line on top.
"""

from ccgate.setup.gather import gather
from ccgate.setup.model import DEFAULT_GATEWAY, PLACEHOLDER_TOKEN, Change, Note, Plan, SetupError, SetupOptions
from ccgate.setup.plan import normalize_gateway, plan_changes

# The library API: options in, a plan out, and what a plan is made of.
__all__ = [
    "DEFAULT_GATEWAY",
    "PLACEHOLDER_TOKEN",
    "Change",
    "Note",
    "Plan",
    "SetupError",
    "SetupOptions",
    "build_plan",
]


def build_plan(options: SetupOptions) -> Plan:
    """Read Claude Code's files and compute every change; writes nothing."""
    normalize_gateway(options.gateway)  # a bad URL is refused before any file is read
    return plan_changes(options, gather(options))
