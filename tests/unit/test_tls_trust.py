"""Upstream TLS trust (upstream/tls.py): the default is Mozilla's roots only; ``use_system_store``
verifies with the operating system's verifier (truststore), which on Linux is OpenSSL's system
paths and ``SSL_CERT_FILE``, on macOS the Keychain, on Windows the certificate store, with
Mozilla's roots and ``ca_file`` still trusted. Real handshakes against a TLS server on
127.0.0.1 over asyncio (the loop aiohttp uses): marked lab."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import certifi
import pytest
import truststore

from ccgate.config.model import Tls
from ccgate.doctor.tlscheck import trust_context
from ccgate.upstream.tls import build_ssl_context
from tests.lab.certs import LabPKI

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def pki() -> LabPKI:
    return LabPKI()


@pytest.fixture
async def tls_port(pki: LabPKI) -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=pki.server_context())
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def handshake(ctx: ssl.SSLContext, port: int) -> str:
    """"ok", or the verification failure."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 10)
    except ssl.SSLCertVerificationError as exc:
        return f"verify failed: {exc.verify_message}"
    writer.close()
    return "ok"


@pytest.fixture
def lab_ca(pki: LabPKI, tmp_path: Path) -> Path:
    return pki.write_ca(tmp_path)


async def test_the_os_store_is_the_systems_own_verifier(tls_port: int, lab_ca: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # On Linux the OS store is OpenSSL's system paths, which SSL_CERT_FILE replaces: the lab CA
    # stands in for a root the administrator installed system-wide.
    monkeypatch.setenv("SSL_CERT_FILE", str(lab_ca))
    os_store = build_ssl_context(Tls(use_system_store=True))
    assert isinstance(os_store, truststore.SSLContext)  # not ssl.load_default_certs (no Keychain)
    assert await handshake(os_store, tls_port) == "ok"
    assert (await handshake(build_ssl_context(Tls()), tls_port)).startswith("verify failed")


async def test_ca_file_and_mozilla_roots_still_count_with_the_os_store(tls_port: int, lab_ca: Path,
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))  # an OS store that does not know the lab CA
    without = build_ssl_context(Tls(use_system_store=True))
    assert (await handshake(without, tls_port)).startswith("verify failed")
    with_file = build_ssl_context(Tls(use_system_store=True, ca_file=str(lab_ca)))
    assert await handshake(with_file, tls_port) == "ok"
    # the bundled (certifi) roots are anchors of the OS context too: stand the lab CA in for them
    monkeypatch.setattr(certifi, "where", lambda: str(lab_ca))
    assert await handshake(build_ssl_context(Tls(use_system_store=True)), tls_port) == "ok"


async def test_verify_false_skips_verification_even_with_the_os_store(tls_port: int) -> None:
    assert await handshake(build_ssl_context(Tls(use_system_store=True, verify=False)), tls_port) == "ok"


async def test_the_doctor_trusts_what_claude_code_trusts(tls_port: int, lab_ca: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(lab_ca))
    assert isinstance(trust_context([], use_os_store=True), truststore.SSLContext)
    assert await handshake(trust_context([], use_os_store=True), tls_port) == "ok"
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    assert (await handshake(trust_context([], use_os_store=False), tls_port)).startswith("verify failed")
    assert await handshake(trust_context([str(lab_ca)], use_os_store=False), tls_port) == "ok"  # NODE_EXTRA_CA_CERTS
