"""Which proxy a request to a given URL uses, from explicit config or the environment.

Precedence (documented in docs/proxies.md), matching Claude Code's own rules so that an
environment written for Claude Code means the same thing to ccgate:

1. the provider's ``proxy:`` setting (``none`` or ``direct`` disables proxying);
2. ``https_proxy``, ``HTTPS_PROXY``, ``http_proxy``, ``HTTP_PROXY``, ``all_proxy``,
   ``ALL_PROXY``: the first one set and non-empty wins, for http and https targets alike;
3. ``no_proxy`` (else ``NO_PROXY``) exempts a host from 2.

NO_PROXY entries are comma or space separated. An entry matches when it is ``*``; equal to
the host (``example.com`` is that host only, as in Claude Code); ``.example.com`` or
``*.example.com`` for the domain and its subdomains; ``host:port`` for that port only; or a
CIDR / IP literal that contains the host's IP literal. ``localhost`` does not match
``127.0.0.1``: names are not resolved.

Pure and stdlib-only, so every layer can share it: config validates proxy URLs with it,
upstream applies it, doctor, setup and claude_code explain it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

# What Claude Code reads, in its order; ccgate also falls back to ALL_PROXY (curl's name).
CLAUDE_CODE_PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")
PROXY_VARS = (*CLAUDE_CODE_PROXY_VARS, "all_proxy", "ALL_PROXY")
NO_PROXY_VARS = ("no_proxy", "NO_PROXY")
SUPPORTED_SCHEMES = ("http", "https", "socks5", "socks5h")
DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}
DIRECT = ("none", "direct", "off", "")


class ProxyURLError(ValueError):
    """A proxy URL that cannot be used; the message says what is wrong and never the password."""


@dataclass(frozen=True)
class ProxySpec:
    """A parsed proxy URL. ``password`` is never part of ``repr`` or ``display``."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    source: str = "config"  # "config" or the environment variable's name

    def __repr__(self) -> str:
        return f"ProxySpec({self.display!r}, source={self.source!r})"

    @property
    def display(self) -> str:
        """The URL with the password masked, safe for logs and errors."""
        cred = f"{self.username}:***@" if self.username is not None else ""
        return f"{self.scheme}://{cred}{_host_for_url(self.host)}:{self.port}"

    @property
    def url_without_credentials(self) -> str:
        return f"{self.scheme}://{_host_for_url(self.host)}:{self.port}"

    @property
    def is_socks(self) -> bool:
        return self.scheme.startswith("socks")


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_proxy_url(raw: str, *, source: str = "config") -> ProxySpec:
    """Parse ``raw`` strictly: scheme required, credentials percent-decoded."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        raise ProxyURLError(f"{source}: the proxy URL is wrapped in quotes; remove them")
    if "://" not in text:
        raise ProxyURLError(
            f"{source}: the proxy URL has no scheme; write http://{_mask_userinfo(text)}"
        )
    scheme = text.split("://", 1)[0].lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise ProxyURLError(
            f"{source}: proxy scheme {scheme!r} is not supported "
            f"(use one of {', '.join(SUPPORTED_SCHEMES)})"
        )
    # An unencoded '@' or '/' in the password makes urlsplit pick the wrong host; split by
    # the last '@' so the common mistake still parses, and the doctor reports it separately.
    rest = text.split("://", 1)[1]
    authority = rest.split("/", 1)[0] if "@" not in rest else rest.rsplit("@", 1)[1].split("/")[0]
    userinfo = rest.rsplit("@", 1)[0] if "@" in rest else None
    parts: SplitResult = urlsplit(f"{scheme}://{authority}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ProxyURLError(f"{source}: invalid proxy port ({exc})") from None
    if not parts.hostname:
        raise ProxyURLError(f"{source}: the proxy URL has no host")
    username = password = None
    if userinfo is not None:
        user, sep, pw = userinfo.partition(":")
        username = unquote(user)
        password = unquote(pw) if sep else None
    return ProxySpec(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=username,
        password=password,
        source=source,
    )


def _mask_userinfo(text: str) -> str:
    if "@" not in text:
        return text
    userinfo, host = text.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"


def env_proxy_value(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The (variable, value) that supplies the proxy, following the precedence above."""
    for name in PROXY_VARS:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def split_no_proxy(value: str) -> list[str]:
    """NO_PROXY entries: separated by commas and/or whitespace."""
    return [e for e in re.split(r"[\s,]+", value.strip()) if e]


def no_proxy_entries(env: Mapping[str, str]) -> tuple[str, list[str]] | None:
    for name in NO_PROXY_VARS:
        value = env.get(name)
        if value is not None and value.strip():
            return name, split_no_proxy(value)
    return None


def no_proxy_matches(
    entries: list[str], host: str, port: int | None = None, *, bare_covers_subdomains: bool = False
) -> str | None:
    """The first NO_PROXY entry that exempts ``host[:port]``, else None.

    Claude Code's rules by default: a bare ``example.com`` is that host only; ``.example.com``
    and ``*.example.com`` cover the domain and its subdomains. curl, Python and Go treat a
    bare entry as a suffix too; ``bare_covers_subdomains=True`` gives that reading (the
    doctor uses it to explain what other clients will do). With ``port`` None, ``host:port``
    entries match on the host alone.
    """
    host = host.lower().strip("[]").rstrip(".")
    try:
        host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        host_ip = None
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return raw
        entry_port: int | None = None
        bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", entry)
        with_port = re.fullmatch(r"([^:]+):(\d+)", entry)
        if bracketed or with_port:
            match = bracketed or with_port
            assert match is not None
            entry = match.group(1)
            entry_port = int(match.group(2)) if match.group(2) else None
        entry = entry.rstrip(".")
        if entry_port is not None and port is not None and entry_port != port:
            continue
        if host_ip is not None:
            try:
                if host_ip in ipaddress.ip_network(entry, strict=False):
                    return raw
            except ValueError:
                pass
            continue
        if entry.startswith(("*.", ".")):
            domain = entry.lstrip("*").lstrip(".")
            if host == domain or host.endswith("." + domain):
                return raw
        elif host == entry or (bare_covers_subdomains and host.endswith("." + entry)):
            return raw
    return None


@dataclass(frozen=True)
class ProxyDecision:
    """What a request to ``target`` will do, and why (for logs, readyz and the doctor)."""

    proxy: ProxySpec | None
    reason: str


def resolve_proxy(
    target_url: str, explicit: str | None, env: Mapping[str, str]
) -> ProxyDecision:
    """Decide the proxy for ``target_url``. Raises ProxyURLError for an unusable URL."""
    if explicit is not None:
        if explicit.strip().lower() in DIRECT:
            return ProxyDecision(None, "proxy disabled in config")
        return ProxyDecision(parse_proxy_url(explicit, source="config"), "proxy from config")
    found = env_proxy_value(env)
    if found is None:
        return ProxyDecision(None, "no proxy variable set")
    target = urlsplit(target_url)
    host = target.hostname or ""
    port = target.port or (443 if target.scheme == "https" else 80)
    exempt = no_proxy_entries(env)
    if exempt is not None:
        hit = no_proxy_matches(exempt[1], host, port)
        if hit is not None:
            return ProxyDecision(None, f"{host} matches {exempt[0]} entry {hit!r}")
    name, value = found
    return ProxyDecision(parse_proxy_url(value, source=name), f"proxy from {name}")
