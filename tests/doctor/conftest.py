"""Doctor test fixtures: the shared lab (tests/lab/fixtures.py) plus doctor helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ccgate.doctor import DoctorOptions, Report, run_checks_async
from tests.lab import fixtures as _lab

# Re-export every shared lab fixture (public and private, e.g. the squid pool) so this
# directory works whether or not a root conftest loads tests.lab.fixtures as a plugin.
globals().update({name: obj for name, obj in vars(_lab).items()
                  if "fixture" in type(obj).__name__.lower()})

LAB_RESOLVE = {"api.anthropic.com": "127.0.0.1", "platform.claude.com": "127.0.0.1"}


@pytest.fixture
def lab_home(tmp_path: Path) -> Path:
    """A throw-away HOME (never the real ~/.claude*)."""
    home = tmp_path / "home"
    home.mkdir()
    return home


DoctorRun = Callable[..., Any]


@pytest.fixture
def doctor(lab_home: Path, tmp_path: Path) -> DoctorRun:
    """``await doctor(env={...}, **options) -> Report`` with a tmp HOME, loopback
    resolution for the Anthropic names, no real Claude files and no `claude --version`."""

    async def run(env: dict[str, str] | None = None, **kw: Any) -> Report:
        kw.setdefault("resolve", LAB_RESOLVE)
        kw.setdefault("claude_version", "2.1.330")
        kw.setdefault("timeout", 12.0)
        opts = DoctorOptions(env={"HOME": str(lab_home), "PATH": "/usr/bin:/bin", **(env or {})},
                             home=lab_home, cwd=tmp_path,
                             managed_dir=tmp_path / "no-managed", **kw)
        return await run_checks_async(opts)

    return run
