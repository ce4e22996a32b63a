"""Checks on what users type: durations, key names, model globs, limits.

Shared by the CLI (as argparse types, so bad input is refused before the database is even
opened) and the admin API. Every failure is ``InvalidInput`` with a message that names the
field and shows an example of what is accepted.
"""

from __future__ import annotations

import re

from ccgate.store.base import InvalidInput

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = 10 * 366 * 86400  # ten years: anything longer is a typo, and keeps times finite
DURATION_HELP = "a number followed by m, h, d or w (30m, 12h, 90d, 1w)"


def _up_to(limit: int) -> str:
    """A regex for the whole numbers 1..``limit`` without leading zeros (a JSON Schema
    ``pattern`` can bound a number only this way)."""
    digits = str(limit)
    parts = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    for i, d in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(d) > low:
            rest = len(digits) - i - 1
            parts.append(f"{digits[:i]}[{low}-{int(d) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    parts.append(digits)
    return "(?:" + "|".join(parts) + ")"


# The one definition of a duration, used by parse_duration and published as is in the admin
# API's OpenAPI document (server/openapi.py): 1 to ten years' worth of each unit, no zero, no
# leading zeros, nothing around it.
DURATION_PATTERN = "(?:" + "|".join(
    f"{_up_to(MAX_DURATION // seconds)}{unit}" for unit, seconds in _UNITS.items()) + ")"
_DURATION = re.compile(DURATION_PATTERN)

# Key names, likewise shared with the OpenAPI document: ``key_`` is reserved for ids.
_NAME_CHARS = "[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"
NAME_PATTERN = "(?!key_)" + _NAME_CHARS
_NAME = re.compile(_NAME_CHARS)
# A model glob: printable ASCII without spaces (model ids never have them), every '[' closed by
# a ']' before the next '[' (fnmatch would read an unclosed '[' as a literal: a typo). Shared
# with the OpenAPI document too.
GLOB_PATTERN = r"(?:[!-Z\\-~]|\[[!-Z\\-~]*\])+"
MAX_GLOB_LENGTH = 200
_GLOB = re.compile(GLOB_PATTERN)
_GLOB_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: model ids never have them
MAX_GLOBS = 64
MAX_LIMIT = 1_000_000_000


def parse_duration(text: str, what: str = "duration") -> int:
    """``90d`` -> seconds. Only m, h, d, w; zero and anything over ten years are refused."""
    number, unit = text[:-1], text[-1:]
    if number.isascii() and number.isdigit() and len(number) <= 12 and unit in _UNITS:
        # well formed: say what is wrong with the number
        if int(number) == 0:
            raise InvalidInput(f"{what}: {text!r} is zero; use {DURATION_HELP}")
        if int(number) * _UNITS[unit] > MAX_DURATION:
            raise InvalidInput(f"{what}: {text!r} is longer than ten years")
    if not _DURATION.fullmatch(text):
        raise InvalidInput(f"{what}: {text!r} is not a duration; use {DURATION_HELP} (no spaces, "
                           "no leading zeros)")
    return int(number) * _UNITS[unit]


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
    if not glob or not _GLOB_CHARS.fullmatch(glob) or len(glob) > MAX_GLOB_LENGTH:
        raise InvalidInput(f"models: {glob!r} is not a model glob; use e.g. 'claude-*' or 'claude-sonnet-4-5'")
    if not _GLOB.fullmatch(glob):
        raise InvalidInput(f"models: {glob!r} has an unclosed '[' (or a '[' inside a [...] class)")
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
