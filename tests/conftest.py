"""Shared lab fixtures (real Squid, SOCKS5, TLS upstream, Claude Code CLI): tests/lab/."""

import os
import tempfile

# Nothing a test starts may touch the user's own data dir (issued keys, usage): point the
# default store location at a throwaway directory for the whole session.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="ccgate-test-data-")

pytest_plugins = ["tests.lab.fixtures"]
