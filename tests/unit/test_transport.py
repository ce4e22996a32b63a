import socket

import aiohttp
import msgspec
import pytest

from ccgate.config.model import Provider
from ccgate.config.secrets import Secret
from ccgate.upstream.choose import transport_for
from ccgate.upstream.h1 import H1Transport
from ccgate.upstream.transport import UpstreamTransport


async def test_ipv4_only_and_pool_settings() -> None:
    provider = Provider(name="p", ipv4_only=True)
    transport = UpstreamTransport(provider, [], {})
    await transport.start()
    try:
        connector = transport._session.connector  # type: ignore[union-attr]
        assert isinstance(connector, aiohttp.TCPConnector)
        assert connector._family == socket.AF_INET
        assert connector.limit == 0  # aiohttp's own limit queues silently; ours is pool.max_connections
    finally:
        await transport.close()


def test_byok_follows_keys_and_auth_header() -> None:
    keys = [Secret("key-one"), Secret("key-two")]
    assert not UpstreamTransport(Provider(name="p"), keys, {}).byok
    assert UpstreamTransport(Provider(name="p"), [], {}).byok
    # auth_header none: no credential at all, and the client's is not forwarded either.
    none = Provider(name="p", kind="openai-compatible", base_url="http://h/v1", auth_header="none")
    assert not UpstreamTransport(none, [], {}).byok


def test_env_proxy_decision_made_once() -> None:
    transport = UpstreamTransport(Provider(name="p"), [], {"HTTPS_PROXY": "http://u:pw@proxy.test:3128"})
    assert transport.decision.proxy is not None
    assert transport.decision.proxy.display == "http://u:***@proxy.test:3128"


def test_direct_providers_get_the_own_client_proxied_ones_and_the_switch_aiohttp() -> None:
    direct = Provider(name="p", base_url="https://api.example.test")
    assert isinstance(transport_for(direct, [], {}), H1Transport)
    assert isinstance(transport_for(direct, [], {"HTTPS_PROXY": "http://proxy.test:3128"}), UpstreamTransport)
    assert isinstance(transport_for(direct, [], {"HTTPS_PROXY": "http://proxy.test:3128",
                                                 "NO_PROXY": "api.example.test"}), H1Transport)
    socks = Provider(name="p", base_url="https://api.example.test", proxy="socks5h://127.0.0.1:1080")
    assert isinstance(transport_for(socks, [], {}), UpstreamTransport)
    forced = Provider(name="p", base_url="https://api.example.test", http_client="aiohttp")
    assert isinstance(transport_for(forced, [], {}), UpstreamTransport)


def test_http_client_accepts_only_auto_and_aiohttp() -> None:
    assert msgspec.convert({"name": "p"}, Provider).http_client == "auto"
    assert msgspec.convert({"name": "p", "http_client": "aiohttp"}, Provider).http_client == "aiohttp"
    with pytest.raises(msgspec.ValidationError, match="http_client"):
        msgspec.convert({"name": "p", "http_client": "httpx"}, Provider)
