"""`python -m bench.app_cost`: ccgate's own CPU per request, in-process. Runs it for a few
hundred requests (no sockets, no servers) and checks it reports figures for each tree and
that every request was answered 200 with the full config (the tool exits non-zero
otherwise). No assertion about speed: that is the tool's output, not a test's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_app_cost_runs_both_key_kinds_and_the_translated_path_on_this_tree() -> None:
    for extra in ([], ["--issued"], ["--translated"]):
        out = subprocess.run([sys.executable, "-m", "bench.app_cost", "--requests", "300", "--rounds", "1",
                              *extra, "a=.", "b=."], cwd=REPO, capture_output=True, text=True, timeout=300,
                             check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        kind = {"--issued": "issued key", "--translated": "translated Claude Code request"}
        assert kind.get(extra[0] if extra else "", "config token") in out.stdout
        for label in ("a", "b"):
            match = re.search(rf"^  {label}\s+process\s+([0-9.]+) us .* event loop\s+([0-9.]+) us", out.stdout, re.M)
            assert match is not None, out.stdout
            assert 0 < float(match[2]) <= float(match[1])
