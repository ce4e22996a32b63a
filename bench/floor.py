"""The floor relay (bench/relay_floor.py) as a subprocess of the bench."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.procs import LoopbackServer

SCRIPT = Path(__file__).resolve().parent / "relay_floor.py"


class Floor(LoopbackServer):
    """A bare relay to `upstream` on one server library ("uvicorn" or "aiohttp")."""

    def __init__(self, server: str, upstream: str, workdir: Path, name: str = "",
                 pool_limit: int = 256) -> None:
        super().__init__()
        self.pool_limit = pool_limit
        self.server = server
        self.what = f"floor relay ({server})"
        self.upstream = upstream
        self.log = workdir / f"floor-{name or server}.log"

    def start(self) -> Floor:
        self.launch([sys.executable, str(SCRIPT), "--server", self.server, "--port",
                     str(self.port), "--upstream", self.upstream,
                     "--pool-limit", str(self.pool_limit)],
                    stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))
        return self
