"""Shared lab fixtures (real Squid, SOCKS5, TLS upstream, Claude Code CLI): tests/lab/.

Markers (registered in pyproject.toml): ``lab`` for tests that start real servers or
processes (the lab, ``ccgate serve``, the Claude Code CLI, network namespaces), ``slow`` for
the longest of them. ``pytest -m "not lab"`` is the fast in-process suite; CI runs all.
"""

import os
import tempfile

import pytest

# Nothing a test starts may touch the user's own data dir (issued keys, usage): point the
# default store location at a throwaway directory for the whole session.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="ccgate-test-data-")

pytest_plugins = ["tests.lab.fixtures"]

# Fixtures that start real servers or processes: a test using one must be marked ``lab``.
_LAB_FIXTURE_MODULES = frozenset({"tests.lab.fixtures"})
_LAB_FIXTURES = frozenset({"upstream", "gateway"})  # tests/gateway/conftest.py


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the ``lab`` marker honest: the fast suite must not start the lab by accident."""
    unmarked = [item.nodeid for item in items
                if _uses_lab(item) and item.get_closest_marker("lab") is None]
    if unmarked:
        raise pytest.UsageError(
            "tests using lab fixtures must be marked lab (module: pytestmark = pytest.mark.lab): "
            + ", ".join(unmarked[:5]))


def _uses_lab(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for name, defs in info.name2fixturedefs.items():
        for definition in defs:
            module = getattr(definition.func, "__module__", "")
            if module in _LAB_FIXTURE_MODULES or (name in _LAB_FIXTURES and module.startswith("tests.gateway")):
                return True
    return False
