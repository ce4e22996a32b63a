"""Layer 3: TLS. Trust contexts that mirror Claude Code, chain description and the pure
classifier that turns a verification failure into one finding.

Verification is done by OpenSSL itself during a real handshake (the same library family
Node uses), not by re-implementing path building: a verifying handshake with Claude Code's
trust (Mozilla bundle + OS store + NODE_EXTRA_CA_CERTS / --ca-file) decides; only when it
fails does the doctor reconnect with verification off to capture the chain as evidence.
``cryptography`` (when installed) is used only to read names and dates from the chain.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import certifi

from ccgate.doctor.inputs import is_anthropic_host
from ccgate.doctor.model import Finding, finding
from ccgate.upstream.tls import os_trust_context

# Issuer patterns of TLS-inspecting products (after Chromium's ssl_error_assistant list,
# plus a few common tools). Matched against the issuer/subject CN and O of the chain.
INTERCEPTORS: tuple[tuple[str, str], ...] = (
    ("Zscaler", r"zscaler"),
    ("Netskope", r"netskope|goskope\.com"),
    ("Palo Alto Networks", r"palo ?alto"),
    ("Fortinet FortiGate", r"fortigate|fortinet"),
    ("Blue Coat / Symantec ProxySG", r"blue ?coat"),
    ("Cisco Umbrella", r"cisco umbrella"),
    ("Forcepoint", r"forcepoint|websense"),
    ("Sophos", r"sophos"),
    ("McAfee / Skyhigh Web Gateway", r"mcafee web gateway|skyhigh"),
    ("Trend Micro IWSS", r"iwss\.trend"),
    ("Check Point", r"check ?point"),
    ("SonicWall", r"sonicwall"),
    ("Kaspersky", r"kaspersky"),
    ("Avast", r"avast"),
    ("Bitdefender", r"bitdefender"),
    ("ContentKeeper", r"contentkeeper"),
    ("Smoothwall", r"smoothwall"),
    ("Cyberoam", r"cyberoam"),
    ("mitmproxy", r"mitmproxy"),
    ("Charles Proxy", r"charles proxy"),
    ("Fiddler", r"fiddler"),
    ("Squid ssl-bump", r"squid"),
)

VERIFY_CODES = {
    2: "UNABLE_TO_GET_ISSUER_CERT",
    9: "CERT_NOT_YET_VALID",
    10: "CERT_HAS_EXPIRED",
    18: "DEPTH_ZERO_SELF_SIGNED_CERT",
    19: "SELF_SIGNED_CERT_IN_CHAIN",
    20: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    21: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    62: "ERR_TLS_CERT_ALTNAME_INVALID",
}


@dataclass
class CertInfo:
    subject: str
    issuer: str
    not_before: datetime | None
    not_after: datetime | None
    sans: list[str]

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def describe_chain(chain: list[bytes]) -> list[CertInfo]:
    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - cryptography ships with the test extras
        return []
    out: list[CertInfo] = []
    for der in chain:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        sans: list[str] = []
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            sans = [str(v) for v in ext.value.get_values_for_type(x509.DNSName)]
            sans += [str(v) for v in ext.value.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
        out.append(CertInfo(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                            cert.not_valid_before_utc, cert.not_valid_after_utc, sans))
    return out


def trust_context(extra_ca_files: list[str], use_os_store: bool) -> ssl.SSLContext:
    """Claude Code's trust: bundled Mozilla roots, the OS store (default since 2.1.x,
    ``CLAUDE_CODE_CERT_STORE``), and ``NODE_EXTRA_CA_CERTS``. The OS store is the OS's own
    verifier (truststore: the macOS Keychain and the Windows store, which Claude Code reads
    and ``ssl.load_default_certs`` does not), with the Mozilla roots and the CA files added."""
    ctx = os_trust_context() if use_os_store else ssl.create_default_context(cafile=certifi.where())
    for path in extra_ca_files:
        with contextlib.suppress(OSError, ssl.SSLError):  # lint reports env.ca_file_invalid
            ctx.load_verify_locations(cafile=path)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def interceptor_name(chain: list[CertInfo]) -> str | None:
    names = " | ".join(c.issuer + " " + c.subject for c in chain)
    for product, pattern in INTERCEPTORS:
        if re.search(pattern, names, re.I):
            return product
    return None


def parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _cn(name: str) -> str:
    m = re.search(r"CN=([^,]+)", name)
    if m:
        return m.group(1)
    m = re.search(r"O=([^,]+)", name)
    return m.group(1) if m else name


def chain_evidence(chain: list[CertInfo]) -> list[str]:
    out = []
    for i, c in enumerate(chain):
        validity = ""
        if c.not_before and c.not_after:
            validity = f" valid {c.not_before:%Y-%m-%d} .. {c.not_after:%Y-%m-%d}"
        out.append(f"chain[{i}] subject={c.subject} issuer={c.issuer}{validity}")
    return out


def _validity_finding(host: str, subject: str, leaf: CertInfo | None, verify_code: int | None,
                      now: datetime, reference_date: datetime | None, reference_source: str,
                      ev: list[str]) -> Finding:
    """An expired or not-yet-valid certificate; the server's Date header tells a wrong clock
    here from a certificate that really is out of date."""
    problem = "expired" if verify_code == 10 or (
        leaf and leaf.not_after and now > leaf.not_after) else "not yet valid"
    if leaf and leaf.not_after and leaf.not_before:
        problem += (f": valid {leaf.not_before:%Y-%m-%d %H:%M} .. "
                    f"{leaf.not_after:%Y-%m-%d %H:%M} UTC")
    problem += f", this machine's clock says {now:%Y-%m-%d %H:%M} UTC"
    if reference_date is not None and leaf and leaf.not_before and leaf.not_after:
        skew = (now - reference_date).total_seconds()
        ev.append(f"{reference_source} Date header: {reference_date:%Y-%m-%d %H:%M:%S} UTC "
                  f"(local clock differs by {skew:+.0f} s)")
        if leaf.not_before <= reference_date <= leaf.not_after and abs(skew) > 300:
            problem += "; the server's clock says the certificate is valid: CLOCK SKEW here"
            return finding("tls.expired_or_clock_skew", subject=subject, host=host,
                           problem=problem, evidence=ev,
                           fix=["This machine's clock is wrong: enable NTP "
                                "(sudo timedatectl set-ntp true) or set the time."])
    return finding("tls.expired_or_clock_skew", subject=subject, host=host, problem=problem,
                   evidence=ev,
                   fix=[f"The certificate presented for {host} has expired or is not valid "
                        "yet: if the clock here is right, the server (or the intercepting "
                        "proxy) must renew it."])


def classify_tls_failure(
    host: str,
    port: int,
    *,
    verify_code: int | None,
    verify_message: str,
    chain: list[CertInfo],
    now: datetime,
    reference_date: datetime | None,
    reference_source: str = "",
    via_proxy: str | None = None,
    ca_sources: list[str] | None = None,
) -> Finding:
    """One TLS finding from OpenSSL's verdict and the captured chain (pure)."""
    node_code = VERIFY_CODES.get(verify_code or -1, "")
    ev = [f"OpenSSL verify error {verify_code}: {verify_message}"
          + (f" (Node: {node_code})" if node_code else "")]
    if via_proxy:
        ev.append(f"through proxy {via_proxy}")
    ev.append("trusted roots: Mozilla bundle (certifi), OS store"
              + (", " + ", ".join(ca_sources) if ca_sources else ""))
    ev += chain_evidence(chain)
    leaf = chain[0] if chain else None
    subject = f"{host}:{port}"

    if verify_code in (9, 10) or (
        leaf and leaf.not_after and leaf.not_before and not leaf.not_before <= now <= leaf.not_after
    ):
        return _validity_finding(host, subject, leaf, verify_code, now, reference_date,
                                 reference_source, ev)
    if verify_code == 62 or "hostname mismatch" in verify_message.lower() or (
        "doesn't match" in verify_message
    ):
        names = ", ".join(leaf.sans) if leaf and leaf.sans else "other names"
        return finding("tls.untrusted", subject=subject, host=host,
                       problem=f"the certificate is for {names}, not {host} (captive portal, "
                               "wrong DNS or wrong port?)", evidence=ev)
    product = interceptor_name(chain)
    top = chain[-1].issuer if chain else ""
    intercepted = product is not None or is_anthropic_host(host) or (
        via_proxy is not None and verify_code in (19, 20, 2)
    )
    if intercepted:
        who = product or (f"'{_cn(top)}'" if top else "an unknown TLS inspector")
        if via_proxy and not product:
            who += f" (at or behind proxy {via_proxy})"
        fix = [
            f"Export the root CA '{_cn(top) or 'of your TLS inspection'}' as PEM (ask IT, or: "
            f"openssl s_client -showcerts -connect {host}:{port}"
            + (f" -proxy {via_proxy.split('://')[-1].split('@')[-1]}" if via_proxy else "")
            + " </dev/null), then: export NODE_EXTRA_CA_CERTS=/path/to/corp-root.pem",
            "For ccgate serve: put the same file in the provider's ca_file.",
            "Never use NODE_TLS_REJECT_UNAUTHORIZED=0.",
        ]
        return finding("tls.intercepted_untrusted", subject=subject, host=host, interceptor=who,
                       evidence=ev, fix=fix)
    problem = verify_message or "unknown issuer"
    if verify_code == 18:
        problem = "self-signed certificate"
    elif verify_code == 2:
        problem = "incomplete chain: the server does not send its intermediate certificate"
    return finding("tls.untrusted", subject=subject, host=host, problem=problem, evidence=ev)
