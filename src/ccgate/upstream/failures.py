"""Name the hop that failed: turn a transport exception into a GatewayError that says
whether it was DNS, TCP, the proxy (refused, wants credentials, unreachable), TLS (and why)
or a timeout. The message never contains a secret: proxies are shown with a masked password.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
from aiohttp_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

from ccgate.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from ccgate.proxy_env import ProxySpec
from ccgate.upstream.h1wire import ConnectError, ProtocolError, ServerClosed


def classify_failure(
    exc: BaseException, *, provider: str, target: str, proxy: ProxySpec | None, phase: str
) -> UpstreamError:
    """``target`` is host:port of the provider; ``phase`` is 'connect' or 'read'. Takes
    aiohttp's exceptions and those of ccgate's own HTTP/1.1 client (``upstream/h1wire.py``),
    and words the same failure the same way whichever client saw it."""
    where = f"provider {provider!r} ({target})"
    via = f" via proxy {proxy.display}" if proxy else ""
    if isinstance(exc, ConnectError):
        return _connect_failed(exc.os_error, where, via)
    if isinstance(exc, ServerClosed):
        return UpstreamUnreachable(f"{where} closed the connection: {_reason(exc)}", hop="upstream")
    if isinstance(exc, ProtocolError):
        return UpstreamUnreachable(f"request to {where}{via} failed: {_reason(exc)}", hop="upstream")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return _proxy_status(exc, where, proxy)
    if isinstance(exc, ProxyTimeoutError):
        return UpstreamTimeout(f"SOCKS proxy{_name(proxy)} timed out reaching {where}", hop="proxy")
    if isinstance(exc, ProxyConnectionError):
        return UpstreamUnreachable(
            f"cannot connect to the SOCKS proxy{_name(proxy)}: {_reason(exc)}", hop="proxy"
        )
    if isinstance(exc, ProxyError):
        return UpstreamUnreachable(
            f"SOCKS proxy{_name(proxy)} refused to reach {where}: {_reason(exc)}", hop="proxy"
        )
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return UpstreamUnreachable(
            f"cannot connect to the proxy{_name(proxy)}: {_os_reason(exc)}", hop="proxy"
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _certificate_failed(exc.certificate_error, where, via)
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return UpstreamUnreachable(f"TLS handshake with {where}{via} failed: {_reason(exc)}", hop="tls")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return UpstreamUnreachable(
            f"DNS lookup failed for {where}: {_os_reason(exc)}", hop="dns"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnreachable(f"cannot connect to {where}{via}: {_os_reason(exc)}", hop="tcp")
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError | TimeoutError):
        if phase == "connect":
            return UpstreamTimeout(f"timed out connecting to {where}{via}", hop="connect")
        return UpstreamTimeout(f"timed out waiting for {where} to answer", hop="read")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return UpstreamUnreachable(f"{where} closed the connection: {_reason(exc)}", hop="upstream")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamUnreachable(f"request to {where}{via} failed: {_reason(exc)}", hop="upstream")
    raise exc


def _connect_failed(os_error: OSError, where: str, via: str) -> UpstreamError:
    """A new direct connection failed (ccgate's own client): DNS, TCP, TLS or the timeout."""
    if isinstance(os_error, ssl.SSLCertVerificationError):
        return _certificate_failed(os_error, where, via)
    if isinstance(os_error, ssl.SSLError):
        return UpstreamUnreachable(f"TLS handshake with {where}{via} failed: {_reason(os_error)}", hop="tls")
    if isinstance(os_error, socket.gaierror):
        return UpstreamUnreachable(f"DNS lookup failed for {where}: {_strerror(os_error)}", hop="dns")
    if isinstance(os_error, TimeoutError):
        return UpstreamTimeout(f"timed out connecting to {where}{via}", hop="connect")
    return UpstreamUnreachable(f"cannot connect to {where}{via}: {_strerror(os_error)}", hop="tcp")


def _certificate_failed(cert_err: BaseException, where: str, via: str) -> UpstreamError:
    why = getattr(cert_err, "verify_message", None) or _reason(cert_err)
    return UpstreamUnreachable(
        f"TLS verification failed for {where}{via}: {why}. If a corporate proxy inspects "
        "TLS, add its root CA with tls.ca_file (or tls.use_system_store: true)",
        hop="tls",
    )


def _proxy_status(exc: aiohttp.ClientHttpProxyError, where: str, proxy: ProxySpec | None) -> UpstreamError:
    headers = exc.headers
    squid = headers.get("X-Squid-Error") if headers else None
    vendor = f" [{squid}]" if squid else ""
    name = _name(proxy)
    if exc.status == 407:
        offers = headers.getall("Proxy-Authenticate", []) if headers else []
        schemes = ", ".join(v.split(" ", 1)[0] for v in offers)
        offered = f" (it offers: {schemes})" if schemes else ""
        if proxy is not None and proxy.username is not None:
            text = (
                f"proxy{name} rejected the credentials for user {proxy.username!r} "
                f"(407 Proxy Authentication Required){offered}"
            )
        else:
            text = (
                f"proxy{name} wants credentials (407 Proxy Authentication Required){offered}; "
                "put them in the proxy URL as http://user:password@host:port, percent-encoding "
                "special characters"
            )
        return UpstreamUnreachable(text, hop="proxy")
    if exc.status in (502, 503, 504):
        return UpstreamUnreachable(
            f"proxy{name} could not reach {where} ({exc.status} {exc.message}){vendor}", hop="proxy"
        )
    return UpstreamUnreachable(
        f"proxy{name} refused the connection to {where} ({exc.status} {exc.message}){vendor}; "
        "ask for the host to be allowed",
        hop="proxy",
    )


def _name(proxy: ProxySpec | None) -> str:
    return f" {proxy.display}" if proxy else ""


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    return _strerror(os_error) if os_error else str(exc)


def _strerror(os_error: OSError) -> str:
    return os_error.strerror or str(os_error)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")
