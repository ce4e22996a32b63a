"""Checks on what users type: durations, key names, model globs, limits.

Shared by the CLI (as argparse types, so bad input is refused before the database is even
opened) and the admin API. Every failure is ``InvalidInput`` with a message that names the
field and shows an example of what is accepted.
"""

from __future__ import annotations

import re

from ccgate.store.base import InvalidInput

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
MAX_DURATION = 10 * 366 * 86400  # ten years: anything longer is a typo, and keeps times finite
DURATION_HELP = "a number followed by m, h, d or w (30m, 12h, 90d, 1w)"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_GLOB_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: model ids never have them
MAX_GLOBS = 64
MAX_LIMIT = 1_000_000_000


def parse_duration(text: str, what: str = "duration") -> int:
    """``90d`` -> seconds. Only m, h, d, w; zero and anything over ten years are refused."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise InvalidInput(f"{what}: {text!r} is not a duration; use {DURATION_HELP}")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise InvalidInput(f"{what}: {text!r} is zero; use {DURATION_HELP}")
    if seconds > MAX_DURATION:
        raise InvalidInput(f"{what}: {text!r} is longer than ten years")
    return seconds


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"name: {name!r} is not a valid key name; use 1-64 letters, digits, '.', '_', '@' or '-', "
            f"starting with a letter or digit"
        )
    if name.startswith("key_"):
        # Commands accept an id or a name; a name shaped like an id would be ambiguous.
        raise InvalidInput(f"name: {name!r} starts with 'key_', which is reserved for key ids")
    return name


def check_glob(glob: str) -> str:
    """A model glob (fnmatch: ``*``, ``?``, ``[abc]``). Refuses what would silently never match
    the way the user meant: empty, spaces, an unclosed ``[``."""
    if not glob or not _GLOB_CHARS.fullmatch(glob) or len(glob) > 200:
        raise InvalidInput(f"models: {glob!r} is not a model glob; use e.g. 'claude-*' or 'claude-sonnet-4-5'")
    depth = 0
    for ch in glob:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
    if depth:
        # fnmatch would treat an unclosed '[' as a literal character: almost surely a typo.
        raise InvalidInput(f"models: {glob!r} has an unclosed '['")
    return glob


def check_globs(globs: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if len(globs) > MAX_GLOBS:
        raise InvalidInput(f"models: at most {MAX_GLOBS} globs per key")
    out: list[str] = []
    for glob in globs:
        check_glob(glob)
        if glob not in out:
            out.append(glob)
    return tuple(out)


def check_limit(value: int | None, what: str) -> int | None:
    """rpm / tpm: a positive whole number, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value > MAX_LIMIT:
        raise InvalidInput(f"{what}: must be a whole number from 1 to {MAX_LIMIT}, got {value!r}")
    return value


MAX_BUDGET = 1_000_000_000.0  # USD: anything larger is a typo


def check_budget(value: float | None, what: str) -> float | None:
    """A budget in USD: positive, finite, at most MAX_BUDGET (None: no budget)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value <= MAX_BUDGET):
        raise InvalidInput(f"{what}: must be an amount in USD above 0 and at most {MAX_BUDGET:,.0f}, "
                           f"got {value!r}")
    return float(value)


def parse_budget(text: str, what: str) -> float | None:
    """A budget from the command line: "25", "25.50", "$25", or "none" to remove it."""
    cleaned = text.strip().lstrip("$").replace(",", "")
    if cleaned.lower() in ("none", "off", ""):
        return None
    try:
        value = float(cleaned)
    except ValueError:
        raise InvalidInput(f"{what}: {text!r} is not an amount in USD (e.g. 25 or 12.50), or 'none'") from None
    return check_budget(value, what)
