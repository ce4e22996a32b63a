"""ccgate: make Claude Code work anywhere (doctor, gateway, setup)."""

__version__ = "0.1.0"
