"""The ``login:`` section compiled once when the config loads (``config/load.py``).

Everything a request needs is precomputed here: the normalised public origin, the session
lifetime in seconds, the policies with their reply bytes and checksums. Secrets stay
``Secret`` objects until the token signer takes the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ccgate.login.policy import PolicySet

_DURATION = re.compile(r"(\d{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_TTL = 60
MAX_TTL = 7 * 86400
MIN_JWT_SECRET = 32


def parse_ttl(value: int | str) -> int:
    """Seconds from ``3600`` or ``"1h"``/``"30m"``; ValueError outside 1 minute .. 7 days."""
    if isinstance(value, bool):
        raise ValueError("ttl: give seconds or a duration such as 1h")
    if isinstance(value, int):
        seconds = value
    else:
        m = _DURATION.fullmatch(value.strip())
        if not m:
            raise ValueError(f"ttl: {value!r} is not a duration; use seconds or 30m, 1h, 12h")
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if not MIN_TTL <= seconds <= MAX_TTL:
        raise ValueError(f"ttl: {seconds} s is outside {MIN_TTL} s .. {MAX_TTL // 86400} days")
    return seconds


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str | None = field(repr=False)
    scopes: tuple[str, ...]
    allowed_email_domains: tuple[str, ...]
    groups_claim: str
    ca_file: str | None


@dataclass(frozen=True)
class LoginSettings:
    public_url: str  # origin, no trailing slash
    oidc: OidcSettings
    jwt_secret: str = field(repr=False)
    ttl: int
    policies: PolicySet
    telemetry_forward_to: str | None
    telemetry_max_body: int
    device_rate_limit: int

    def url(self, path: str) -> str:
        return self.public_url + path

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")
