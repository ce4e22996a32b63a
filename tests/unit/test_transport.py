import socket

import aiohttp

from ccgate.config.model import Provider
from ccgate.config.secrets import Secret
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
