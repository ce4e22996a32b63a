"""The corporate network between ccgate and the provider: real Squid, real SOCKS5 servers,
real TLS failures. Each failure must come back as a 502/504 envelope naming the hop."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory, authed_config
from tests.gateway.harness import free_port
from tests.lab.certs import LabPKI
from tests.lab.fake_anthropic import FakeAnthropic
from tests.lab.socks import DanteSocks, MicroSocks
from tests.lab.squid import SquidProxy

pytestmark = [pytest.mark.lab, pytest.mark.slow]

MSG = {"model": "claude-opus-4-8", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"}


def post(url: str, **kw: object) -> httpx.Response:
    return httpx.post(url + "/v1/messages", json=MSG, headers=HEADERS, timeout=30, **kw)  # type: ignore[arg-type]


def assert_gateway_error(r: httpx.Response, status: int, *fragments: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["request_id"].startswith("req_ccgate_")
    message: str = body["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture(scope="module")
def squid_open() -> Iterator[SquidProxy]:
    with SquidProxy(mode="open") as proxy:
        yield proxy


@pytest.fixture(scope="module")
def squid_basic() -> Iterator[SquidProxy]:
    with SquidProxy(mode="basic") as proxy:
        yield proxy


def test_through_open_squid_by_hostname(
    upstream: FakeAnthropic, squid_open: SquidProxy, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    gw = gateway(authed_config(upstream.host_url("api.anthropic.com"), gw_ca_file,
                               proxy=squid_open.url))
    r = post(gw.url)
    assert r.status_code == 200, r.text
    gw.stop()  # Squid logs a CONNECT tunnel when it closes; pooled tunnels stay open
    assert "CONNECT api.anthropic.com" in squid_open.wait_access("api.anthropic.com")


def test_keep_alive_reuses_one_tunnel(
    upstream: FakeAnthropic, gw_ca_file: Path, gateway: GatewayFactory
) -> None:
    with SquidProxy(mode="open") as proxy:
        gw = gateway(authed_config(upstream.host_url(), gw_ca_file, proxy=proxy.url))
        for _ in range(5):
            assert post(gw.url).status_code == 200
        gw.stop()
        proxy.wait_access("CONNECT")
        connects = [line for line in proxy.access_lines() if "CONNECT" in line]
        assert len(connects) == 1, connects  # five requests, one pooled TLS connection


def test_proxy_from_environment_and_no_proxy(
    upstream: FakeAnthropic, squid_open: SquidProxy, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    config = authed_config(upstream.host_url("api.anthropic.com"), gw_ca_file)
    gw = gateway(config, env={"HTTPS_PROXY": squid_open.url})
    assert post(gw.url).status_code == 200
    assert "via http://127.0.0.1" in gw.log and "HTTPS_PROXY" in gw.log
    # NO_PROXY naming the upstream bypasses the proxy: the name then fails to resolve here
    # (api.anthropic.com is only mapped inside Squid), which proves the proxy was skipped.
    direct = gateway(authed_config("https://api.anthropic.invalid", gw_ca_file),
                     env={"HTTPS_PROXY": squid_open.url, "NO_PROXY": ".invalid"})
    assert_gateway_error(post(direct.url), 502, "DNS lookup failed")


def test_squid_basic_auth_with_special_characters(
    upstream: FakeAnthropic, squid_basic: SquidProxy, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    gw = gateway(authed_config(upstream.host_url(), gw_ca_file,
                               proxy=squid_basic.url_with_auth()))
    assert post(gw.url).status_code == 200
    assert squid_basic.password not in gw.log


def test_squid_wants_credentials(
    upstream: FakeAnthropic, squid_basic: SquidProxy, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    gw = gateway(authed_config(upstream.host_url(), gw_ca_file, proxy=squid_basic.url))
    assert_gateway_error(post(gw.url), 502, "wants credentials", "407", "Basic")


def test_squid_rejects_wrong_password_without_leaking_it(
    upstream: FakeAnthropic, squid_basic: SquidProxy, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    wrong = "wr0ng-s3cret-pass"
    gw = gateway(authed_config(upstream.host_url(), gw_ca_file,
                               proxy=squid_basic.url_with_auth(password=wrong)))
    message = assert_gateway_error(post(gw.url), 502, "rejected the credentials", "ccgate")
    assert wrong not in message and wrong not in gw.log


def test_squid_denies_connect(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    with SquidProxy(mode="deny") as proxy:
        gw = gateway(authed_config(upstream.host_url(), gw_ca_file, proxy=proxy.url))
        assert_gateway_error(post(gw.url), 502, "refused", "403", "ERR_ACCESS_DENIED")


def test_squid_offering_only_ntlm(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path
) -> None:
    with SquidProxy(mode="ntlm") as proxy:
        gw = gateway(authed_config(upstream.host_url(), gw_ca_file, proxy=proxy.url))
        assert_gateway_error(post(gw.url), 502, "407", "NTLM")


def test_https_proxy_tls_to_the_proxy(
    upstream: FakeAnthropic, gw_pki: LabPKI, gateway: GatewayFactory, gw_ca_file: Path, tmp_path: Path
) -> None:
    files = gw_pki.write_leaf(tmp_path / "proxy-tls")
    (tmp_path / "proxy-tls").chmod(0o755)
    with SquidProxy(mode="open", tls_cert=files.cert, tls_key=files.key) as proxy:
        gw = gateway(authed_config(upstream.host_url(), gw_ca_file, proxy=proxy.tls_url))
        assert post(gw.url).status_code == 200
        # The proxy's own certificate is verified with the same trust settings.
        other = LabPKI().write_ca(tmp_path, "other.pem")
        bad = gateway(authed_config(upstream.host_url(), other, proxy=proxy.tls_url))
        assert post(bad.url).status_code == 502


def test_closed_proxy_port(upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path) -> None:
    port = free_port()
    gw = gateway(authed_config(upstream.host_url(), gw_ca_file, proxy=f"http://127.0.0.1:{port}"))
    assert_gateway_error(post(gw.url), 502, "cannot connect to the proxy", f"127.0.0.1:{port}")


def test_socks5_dante(upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path) -> None:
    with DanteSocks() as socks:
        gw = gateway(authed_config(upstream.url, gw_ca_file, proxy=socks.url))
        assert post(gw.url).status_code == 200
        if socks.resolves_lab_hosts:
            remote = gateway(authed_config(upstream.host_url(), gw_ca_file,
                                           proxy=socks.url_remote_dns))
            assert post(remote.url).status_code == 200


def test_socks5_with_password(upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path) -> None:
    with MicroSocks() as socks:
        gw = gateway(authed_config(upstream.url, gw_ca_file, proxy=socks.url_with_auth()))
        assert post(gw.url).status_code == 200
        bad = gateway(authed_config(upstream.url, gw_ca_file, proxy=socks.url))
        assert_gateway_error(post(bad.url), 502, "SOCKS proxy")


def test_untrusted_certificate_names_tls(upstream: FakeAnthropic, gateway: GatewayFactory, tmp_path: Path) -> None:
    other_ca = LabPKI().write_ca(tmp_path)  # a CA that did not sign the upstream
    gw = gateway(authed_config(upstream.url, other_ca))
    assert_gateway_error(post(gw.url), 502, "TLS verification failed", "tls.ca_file")


def test_intercepting_proxy_needs_its_ca(
    gw_pki: LabPKI, gateway: GatewayFactory, gw_ca_file: Path, tmp_path: Path
) -> None:
    """A TLS-inspecting middlebox presents its own CA; adding it with ca_file fixes it."""
    with FakeAnthropic(gw_pki.server_context(gw_pki.interceptor_server)) as mitm:
        gw = gateway(authed_config(mitm.url, gw_ca_file))
        assert_gateway_error(post(gw.url), 502, "TLS verification failed",
                             "unable to get local issuer certificate")
        corp = gw_pki.write_ca(tmp_path, "corp.pem", ca=gw_pki.interceptor_ca)
        fixed = gateway(authed_config(mitm.url, corp))
        assert post(fixed.url).status_code == 200


def test_expired_certificate(gw_pki: LabPKI, gateway: GatewayFactory, gw_ca_file: Path) -> None:
    with FakeAnthropic(gw_pki.server_context(gw_pki.expired)) as expired:
        gw = gateway(authed_config(expired.url, gw_ca_file))
        assert_gateway_error(post(gw.url), 502, "certificate has expired")


def test_dns_failure(gateway: GatewayFactory, gw_ca_file: Path) -> None:
    gw = gateway(authed_config("https://api.ccgate-test.invalid", gw_ca_file))
    assert_gateway_error(post(gw.url), 502, "DNS lookup failed", "api.ccgate-test.invalid")


def test_refused_connection(gateway: GatewayFactory, gw_ca_file: Path) -> None:
    port = free_port()
    gw = gateway(authed_config(f"https://127.0.0.1:{port}", gw_ca_file))
    assert_gateway_error(post(gw.url), 502, "cannot connect", f"127.0.0.1:{port}")


def test_slow_headers_time_out(upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path) -> None:
    upstream.headers_delay = 3.0
    gw = gateway(authed_config(upstream.url, gw_ca_file, timeouts={"read": 0.5}))
    r = post(gw.url)
    assert_gateway_error(r, 504, "timed out waiting")
    assert r.headers["x-should-retry"] == "true"


def test_client_certificate_mtls(gw_pki: LabPKI, gateway: GatewayFactory, gw_ca_file: Path, tmp_path: Path) -> None:
    server_ctx = gw_pki.server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    gw_pki.ca.configure_trust(server_ctx)
    client = gw_pki.ca.issue_cert("ccgate-client@example.test")
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(b"".join(b.bytes() for b in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(key))
    with FakeAnthropic(server_ctx) as strict:
        without = gateway(authed_config(strict.url, gw_ca_file))
        assert post(without.url).status_code == 502
        with_cert = gateway(authed_config(strict.url, gw_ca_file, tls={
            "ca_file": str(gw_ca_file), "client_cert": str(cert), "client_key": str(key)}))
        assert post(with_cert.url).status_code == 200
