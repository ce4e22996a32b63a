"""Secret references in config: ``env:NAME``, ``file:PATH`` or a literal value.

References are resolved once at load time; the resolved value is wrapped in ``Secret`` so
that printing a config object, an error or a log line can never show it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path


class Secret:
    """A resolved secret. ``str()`` and ``repr()`` are masked; ``.value`` is the secret."""

    __slots__ = ("reference", "value")

    def __init__(self, value: str, reference: str = "literal") -> None:
        self.value = value
        self.reference = reference

    def __repr__(self) -> str:
        return f"Secret({self.reference}, {mask(self.value)})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def mask(value: str) -> str:
    """Enough of a secret to recognise it, never enough to use it.

    ``sk-ant-api03-...wxyz`` -> ``sk-ant-...wxyz``; short values -> ``***``. The one masker
    used by the gateway, the doctor and setup.
    """
    if not value:
        return ""
    if len(value) < 12:
        return "***"
    m = re.match(r"^((?:sk|ak|rk)-(?:[a-z]+-)?)", value)
    prefix = m.group(1) if m else value[:3]
    return f"{prefix}...{value[-4:]}"


def resolve_secret(ref: str, env: Mapping[str, str], base_dir: Path) -> Secret:
    """Resolve one reference. Raises ValueError with a message safe to show."""
    if ref.startswith("env:"):
        name = ref[4:].strip()
        if not name:
            raise ValueError("'env:' must be followed by a variable name")
        value = env.get(name)
        if value is None or value == "":
            raise ValueError(f"environment variable {name} is not set")
        return Secret(value, f"env:{name}")
    if ref.startswith("file:"):
        path = Path(ref[5:].strip()).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
        if not value:
            raise ValueError(f"secret file {path} is empty")
        return Secret(value, f"file:{path}")
    if not ref:
        raise ValueError("empty secret")
    return Secret(ref, "literal")
