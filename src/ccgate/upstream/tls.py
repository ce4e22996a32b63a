"""The TLS context ccgate uses toward a provider (and toward an https:// proxy)."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi

from ccgate.config.model import Tls


def build_ssl_context(tls: Tls) -> ssl.SSLContext:
    """Mozilla's roots (certifi), plus the OS store and a CA file when asked.

    The Mozilla bundle is the default so verification behaves the same on every machine,
    as Node's bundled roots do for Claude Code; corporate roots are added, never swapped in.
    """
    ctx = ssl.create_default_context(cafile=certifi.where())
    if tls.use_system_store:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if tls.ca_file:
        ctx.load_verify_locations(cafile=str(Path(tls.ca_file).expanduser()))
    if tls.client_cert:
        ctx.load_cert_chain(
            str(Path(tls.client_cert).expanduser()),
            str(Path(tls.client_key).expanduser()) if tls.client_key else None,
        )
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
