"""Facts about a listen address, shared by ``ccgate serve`` (exposure check) and the gateway
(/metrics access). Kept import-light: the CLI loads it before the server."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = ["is_loopback"]
