"""Which HTTP client a provider gets, decided once per transport from its proxy decision.

A provider reached directly (no proxy) gets ccgate's own HTTP/1.1 client
(``upstream/h1.py``); one behind an HTTP, HTTPS or SOCKS proxy gets aiohttp
(``upstream/transport.UpstreamTransport``), which does CONNECT (TLS in TLS) and, with
aiohttp-socks, SOCKS5. ``http_client: aiohttp`` on a provider forces aiohttp: the escape hatch
if the own client ever misbehaves with some server.
"""

from __future__ import annotations

from collections.abc import Mapping

from ccgate.config.model import Provider
from ccgate.config.secrets import Secret
from ccgate.proxy_env import resolve_proxy
from ccgate.upstream.h1 import H1Transport
from ccgate.upstream.transport import NetworkTransport, UpstreamTransport


def transport_for(provider: Provider, keys: list[Secret], env: Mapping[str, str]) -> NetworkTransport:
    """The gateway's (and ``connect``'s) transport factory."""
    proxied = resolve_proxy(provider.base_url, provider.proxy, env).proxy is not None
    if proxied or provider.http_client == "aiohttp":
        return UpstreamTransport(provider, keys, env)
    return H1Transport(provider, keys, env)


__all__ = ["transport_for"]
