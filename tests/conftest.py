"""Shared lab fixtures (real Squid, SOCKS5, TLS upstream, Claude Code CLI): tests/lab/."""

pytest_plugins = ["tests.lab.fixtures"]
