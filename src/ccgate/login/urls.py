"""The transport rules Claude Code applies to a gateway URL, checked when the config loads.

Claude Code accepts plain ``http://`` only for localhost/127.0.0.1 and otherwise wants
``https://`` to a host whose every address is private (RFC 1918, link-local, CGNAT 100.64/10,
ULA fc00::/7, loopback); see docs/login.md. A name is not resolved here (the gateway's own
resolver is not the developer's), only literal addresses are judged.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
LOOPBACK_NAMES = frozenset({"localhost"})


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    address = host_address(host)
    return address is not None and address.is_loopback


def is_private_address(host: str) -> bool | None:
    """True/False for an IP literal Claude Code would accept/refuse; None for a DNS name."""
    address = host_address(host)
    if address is None:
        return None
    if address.is_loopback or address.is_link_local:
        return True
    if isinstance(address, ipaddress.IPv4Address):
        return (address.is_private and not address.is_unspecified) or address in _CGNAT
    return address in ipaddress.ip_network("fc00::/7")


def check_public_url(url: str, *, allow_public_address: bool = False) -> str:
    """The origin developers type into /login, normalised (no trailing slash). ValueError with
    a message naming the rule otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} must be an absolute http(s) URL such as https://ccgate.corp.internal")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{url!r} must be an origin only (scheme, host, port): Claude Code appends "
                         "/oauth/token, /managed/settings and /v1/messages to it")
    host = parts.hostname
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(f"{url!r}: Claude Code allows plain http only for localhost/127.0.0.1; "
                         "use https:// with a certificate the developers' machines trust")
    if parts.scheme == "https" and is_private_address(host) is False and not allow_public_address:
        raise ValueError(f"{url!r}: {host} is a public address, which Claude Code refuses for a gateway; "
                         "use a private address or internal DNS name (or set allow_public_address "
                         "with the managed setting gatewayInternalNetworks)")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def check_issuer(url: str) -> str:
    """An OIDC issuer: https, or http on loopback (a test or a local IdP)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} must be an absolute https URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{url!r}: the identity provider must be reached over https")
    return url.strip().rstrip("/")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"
