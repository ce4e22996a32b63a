"""``ccgate setup``: wire a client to the gateway, safely and reversibly.

Layers, each usable alone: ``jsonedit`` (format-preserving JSON edits), ``paths`` (where
Claude Code keeps its files), ``plan`` (what to change and why; pure, writes nothing),
``files`` (backup, atomic write, undo), ``shellenv`` (``--print-env``) and ``verify`` (check
the path afterwards). ``ccgate.cli.setup`` is the command line on top.
"""

from ccgate.setup.plan import (
    DEFAULT_GATEWAY,
    PLACEHOLDER_TOKEN,
    Change,
    Note,
    Plan,
    SetupError,
    SetupOptions,
    build_plan,
)

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
