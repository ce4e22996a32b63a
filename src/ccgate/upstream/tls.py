"""The TLS context ccgate uses toward a provider (and toward an https:// proxy)."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import truststore

from ccgate.config.model import Tls


def build_ssl_context(tls: Tls) -> ssl.SSLContext:
    """Mozilla's roots (certifi), plus the OS store and a CA file when asked.

    The Mozilla bundle is the default so verification behaves the same on every machine,
    as Node's bundled roots do for Claude Code; corporate roots are added, never swapped in.
    ``use_system_store`` verifies with the operating system's own verifier (truststore: the
    macOS Keychain, the Windows certificate store with its group-policy roots, OpenSSL's
    system paths and ``SSL_CERT_FILE`` on Linux), which ``ssl.load_default_certs`` cannot
    read on macOS and reads only partly on Windows. The Mozilla roots and ``ca_file`` are
    loaded into that context too: truststore (0.10+) trusts them as extra anchors on every
    system, so the option still only adds.
    """
    if not tls.verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif tls.use_system_store:
        ctx = os_trust_context()
    else:
        ctx = ssl.create_default_context(cafile=certifi.where())
    if tls.ca_file:
        ctx.load_verify_locations(cafile=str(Path(tls.ca_file).expanduser()))
    if tls.client_cert:
        ctx.load_cert_chain(
            str(Path(tls.client_cert).expanduser()),
            str(Path(tls.client_key).expanduser()) if tls.client_key else None,
        )
    return ctx


def os_trust_context() -> ssl.SSLContext:
    """The OS verifier (truststore) with Mozilla's roots added; the doctor's trust as well."""
    ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=certifi.where())
    return ctx


__all__ = ["build_ssl_context", "os_trust_context"]
