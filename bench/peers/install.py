"""Installing the peers, pinned, each in its own throwaway environment under bench/.peers/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.common import REPO, BenchError

PEERS_DIR = REPO / "bench" / ".peers"
# What the bench installs, each in its own environment under bench/.peers/.
PINS = {
    "litellm": "1.106.2",  # PyPI litellm[proxy]
    "claude-code-router": "2.0.0",  # npm @musistudio/claude-code-router (3.1.1 needs a
    # dependency the registry does not have: @the-next-ai/ai-gateway -> 404)
    "claude-code-proxy": "0.1.5",  # PyPI claude-code-proxy (a fork of 1rgs/claude-code-proxy)
    "matplotlib": "3.10.7",  # the plot, in bench/.peers/tools
}


def _check_call(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:4])} ... failed: {(out.stderr or out.stdout)[-500:]}")


def install_venv(path: Path, reqs: list[str], log: Callable[[str], None]) -> None:
    """pip install `reqs` into the venv at `path` (created first if need be)."""
    if not (path / "bin" / "pip").exists():
        # The system Python, not the project's venv: the peer must not see ccgate's packages.
        _check_call(["/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable,
                     "-m", "venv", str(path)])
    log(f"pip install {' '.join(reqs)} into {path.relative_to(REPO)} ...")
    _check_call([str(path / "bin" / "pip"), "install", "-q", *reqs])


def install_npm(prefix: Path, package: str, log: Callable[[str], None]) -> None:
    if shutil.which("npm") is None:
        raise BenchError("npm not found (Debian package npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    log(f"npm install {package} ...")
    _check_call(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", package])


def pip_version(venv: Path, dist: str) -> str:
    try:
        out = subprocess.run([str(venv / "bin" / "python"), "-c",
                              f"import importlib.metadata as m; print(m.version({dist!r}))"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def tools_python(log: Callable[[str], None]) -> Path:
    """bench/.peers/tools: matplotlib for the plot (never a project dependency)."""
    path = PEERS_DIR / "tools"
    py = path / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import matplotlib"],
                                        capture_output=True).returncode == 0
    if not ok:
        install_venv(path, [f"matplotlib=={PINS['matplotlib']}"], log)
    return py
