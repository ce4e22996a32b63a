"""Who may see what on the operational endpoints.

``/readyz`` answers everyone with its status (what a load balancer needs); its detail (config
path, secret references, key and breaker states) only to a caller holding the admin key.
``/metrics`` follows ``server.metrics.auth``: ``auto`` leaves it open on a loopback listen
address and asks for the admin key or ``server.metrics.token`` on any other; ``required`` always
asks; ``none`` never does. Credentials are checked as the admin API checks them: SHA-256
digest, ``hmac.compare_digest``, ``Authorization: Bearer`` or ``x-api-key``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from ccgate.config.load import LoadedConfig
from ccgate.errors import AuthenticationFailed
from ccgate.server.admin import admin_digest, admin_key_from
from ccgate.server.asgi import Scope
from ccgate.server.auth import presented_token
from ccgate.server.listen import is_loopback


def _presented_digest(scope: Scope) -> bytes | None:
    headers = dict(scope["headers"])
    token = presented_token(headers.get(b"x-api-key"), headers.get(b"authorization"))
    return hashlib.sha256(token).digest() if token else None


def _matches(presented: bytes | None, expected: bytes | None) -> bool:
    return presented is not None and expected is not None and hmac.compare_digest(presented, expected)


class OpsAccess:
    """The credentials of one config (a reload builds a new one with its runtime)."""

    __slots__ = ("admin", "metrics_auth", "metrics_token")

    def __init__(self, loaded: LoadedConfig, env: Mapping[str, str]) -> None:
        # ValueError (a safe message) for an admin key too short to be one, as the admin API.
        self.admin = admin_digest(admin_key_from(loaded.secrets.admin_key, env))
        token = loaded.secrets.metrics_token
        self.metrics_token = hashlib.sha256(token.value.encode()).digest() if token else None
        self.metrics_auth = loaded.config.server.metrics.auth

    def is_admin(self, scope: Scope) -> bool:
        """Does the request carry the admin key? (False when none is configured.)"""
        return _matches(_presented_digest(scope), self.admin)

    def check_metrics(self, scope: Scope, listen_host: str) -> None:
        """Raise ``AuthenticationFailed`` unless this request may read /metrics."""
        if self.metrics_auth == "none" or (self.metrics_auth == "auto" and is_loopback(listen_host)):
            return
        if self.admin is None and self.metrics_token is None:
            raise AuthenticationFailed(
                "/metrics needs a credential on this address, and none is configured: set "
                "server.metrics.token (or server.admin.key), or server.metrics.auth: none to leave it open"
            )
        presented = _presented_digest(scope)
        if presented is None:
            raise AuthenticationFailed(
                "missing credential for /metrics: send server.metrics.token or the admin key as "
                "'Authorization: Bearer' or x-api-key"
            )
        if not (_matches(presented, self.metrics_token) or _matches(presented, self.admin)):
            raise AuthenticationFailed("invalid credential for /metrics")


__all__ = ["OpsAccess"]
