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
        assert connector.limit == provider.pool.max_connections
    finally:
        await transport.close()


def test_keys_rotate_and_header_follows_config() -> None:
    keys = [Secret("key-one"), Secret("key-two")]
    transport = UpstreamTransport(Provider(name="p"), keys, {})
    assert [transport.credential_headers() for _ in range(3)] == [
        {"x-api-key": "key-one"}, {"x-api-key": "key-two"}, {"x-api-key": "key-one"}]
    bearer = UpstreamTransport(Provider(name="p", auth_header="bearer"), keys[:1], {})
    assert bearer.credential_headers() == {"authorization": "Bearer key-one"}
    assert UpstreamTransport(Provider(name="p"), [], {}).byok


def test_env_proxy_decision_made_once() -> None:
    transport = UpstreamTransport(Provider(name="p"), [], {"HTTPS_PROXY": "http://u:pw@proxy.test:3128"})
    assert transport.decision.proxy is not None
    assert transport.decision.proxy.display == "http://u:***@proxy.test:3128"
