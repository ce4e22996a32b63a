"""A real browser for the console tests: Playwright driving Debian's Chromium (``chromium``,
installed by scripts/install-test-deps from scripts/apt-packages.txt). Playwright's own browser
download is never used. Missing Chromium or Playwright skips locally and fails under CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.lab.fixtures import _missing  # skips locally, fails under CI

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path(os.environ.get("CCGATE_CHROMIUM", "/usr/bin/chromium"))


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium; ``--no-sandbox`` only when running as root (CI), where Chromium's
    sandbox cannot start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (the Python package)")
    executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if executable is None:
        _missing("chromium")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()
