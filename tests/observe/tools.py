"""External tools the observability tests run (Debian's prometheus and systemd packages): a
missing one skips locally and fails under CI, as in tests/lab/fixtures.py."""

from __future__ import annotations

import os
import shutil

import pytest


def need(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not installed: run scripts/install-test-deps"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path
