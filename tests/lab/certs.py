"""Test PKI for the lab: a trusted CA, an untrusted "interceptor" CA, and an expired leaf.

All material is generated in memory by trustme once per test session. Nothing here touches
the system trust store; tests hand the CA PEM to the client under test explicitly
(``ssl_context`` / ``--ca-file`` / ``NODE_EXTRA_CA_CERTS``).
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme

#: Names every lab server certificate is valid for.
SERVER_NAMES: tuple[str, ...] = (
    "api.anthropic.com", "platform.claude.com", "localhost", "127.0.0.1",
)


@dataclass(frozen=True)
class CertFiles:
    """Paths of PEM files written to disk for one certificate."""

    ca: Path  # CA certificate that signs the leaf (what a client must trust)
    cert: Path  # leaf certificate chain (leaf first)
    key: Path  # leaf private key (unencrypted)


@dataclass
class LabPKI:
    """The lab's certificate authorities and leaves.

    * ``ca`` — the trusted test CA; ``server`` is its leaf for :data:`SERVER_NAMES`.
    * ``interceptor_ca`` — a second CA a client does *not* trust (models a TLS-inspecting
      corporate proxy); ``interceptor_server`` is its leaf for the same names.
    * ``expired`` — a leaf from the trusted CA whose validity ended yesterday.
    """

    ca: trustme.CA = field(default_factory=trustme.CA)
    interceptor_ca: trustme.CA = field(
        default_factory=lambda: trustme.CA(organization_name="Corp TLS Inspection")
    )

    def __post_init__(self) -> None:
        self.server = self.ca.issue_cert(*SERVER_NAMES)
        self.interceptor_server = self.interceptor_ca.issue_cert(*SERVER_NAMES)
        now = dt.datetime.now(dt.UTC)
        self.expired = self.ca.issue_cert(
            *SERVER_NAMES,
            not_before=now - dt.timedelta(days=30),
            not_after=now - dt.timedelta(days=1),
        )

    # --- SSL contexts -------------------------------------------------------------------
    def server_context(self, leaf: trustme.LeafCert | None = None) -> ssl.SSLContext:
        """A server-side context presenting ``leaf`` (default: the trusted server leaf)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (leaf or self.server).configure_cert(ctx)
        return ctx

    def client_context(self, ca: trustme.CA | None = None) -> ssl.SSLContext:
        """A client-side context trusting only ``ca`` (default: the trusted lab CA)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        (ca or self.ca).configure_trust(ctx)
        return ctx

    # --- files ----------------------------------------------------------------------------
    def write_ca(self, directory: Path, name: str = "lab-ca.pem", *,
                 ca: trustme.CA | None = None) -> Path:
        """Write a CA certificate PEM (default: the trusted CA) and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        (ca or self.ca).cert_pem.write_to_path(str(path))
        return path

    def write_leaf(self, directory: Path, leaf: trustme.LeafCert | None = None,
                   stem: str = "server") -> CertFiles:
        """Write ``leaf`` (default: trusted server leaf) as ``<stem>.crt``/``<stem>.key`` plus
        its issuing CA as ``<stem>-ca.pem``."""
        directory.mkdir(parents=True, exist_ok=True)
        leaf = leaf or self.server
        cert = directory / f"{stem}.crt"
        key = directory / f"{stem}.key"
        ca_path = directory / f"{stem}-ca.pem"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
        issuer = self.interceptor_ca if leaf is self.interceptor_server else self.ca
        issuer.cert_pem.write_to_path(str(ca_path))
        return CertFiles(ca=ca_path, cert=cert, key=key)
