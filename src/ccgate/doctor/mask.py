"""Masking of secrets in everything the doctor prints."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ccgate.config.secrets import mask as mask_secret

__all__ = ["SECRET_HEADERS", "mask_header", "mask_secret", "mask_url_userinfo"]

SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})


def mask_header(name: str, value: str) -> str:
    low = name.lower()
    if low not in SECRET_HEADERS:
        return value
    if low in ("authorization", "proxy-authorization"):
        scheme, _, cred = value.partition(" ")
        if low == "proxy-authorization":
            return f"{scheme} ***"
        return f"{scheme} {mask_secret(cred)}" if cred else mask_secret(scheme)
    return mask_secret(value)


def mask_url_userinfo(url: str) -> str:
    """Mask the password in ``scheme://user:pass@host`` (also an unencoded one)."""
    m = re.match(r"^(\s*[\"']?[A-Za-z][A-Za-z0-9+.-]*://)?(.*)$", url, re.S)
    if not m:
        return url
    scheme, rest = m.group(1) or "", m.group(2)
    if "@" not in rest:
        return url
    userinfo, host = rest.rsplit("@", 1)
    user, sep, _ = userinfo.partition(":")
    return f"{scheme}{user}:***@{host}" if sep else f"{scheme}{user}@{host}"


def format_headers(headers: Iterable[tuple[str, str]], prefix: str) -> list[str]:
    return [f"{prefix}{k}: {mask_header(k, v)}" for k, v in headers]
