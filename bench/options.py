"""What a bench run was asked to do: the options every lane reads, and the command line."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import RESULTS


@dataclass
class Options:
    seconds: int = 1
    rounds: int = 5
    warmup: int = 1
    threads: int = 1
    concurrency: int = 32
    floor: tuple[str, ...] = ("uvicorn", "aiohttp")
    large_body: str = "auto"  # auto | capture | synthetic
    capture_mode: str = "interactive"
    out: Path = RESULTS / "latest.json"
    docs: bool = True
    quick: bool = False
    wait_quiet: int = 0  # seconds to wait for other processes to leave the CPUs idle
    translated: bool = True  # the translation lanes (issue 4)
    command: str = ""
    log: Callable[[str], None] = field(default=print)


def command_line(argv: list[str]) -> str:
    """The command as a reader would type it again (recorded in the results and the docs)."""
    exe = sys.executable
    if Path(exe).is_relative_to(Path.cwd()):
        exe = os.path.relpath(exe, Path.cwd())
    return " ".join(shlex.quote(a) for a in [exe, "-m", "bench", *argv])
