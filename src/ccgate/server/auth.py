"""Client authentication against the configured client tokens.

Tokens are kept only as SHA-256 digests and looked up by digest, so checking a request
costs one hash and one dict lookup whatever the number of tokens, and its time does not
depend on how much of a guess matches a real token.
"""

from __future__ import annotations

import hashlib

from ccgate.config.secrets import Secret
from ccgate.errors import AuthenticationFailed


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class ClientAuth:
    def __init__(self, tokens: dict[str, Secret]) -> None:
        self._by_digest = {digest(secret.value): name for name, secret in tokens.items()}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def authenticate(self, x_api_key: bytes | None, authorization: bytes | None) -> str:
        """The client's name, or AuthenticationFailed. Accepts x-api-key or Bearer."""
        token: bytes | None = x_api_key
        if token is None and authorization is not None:
            scheme, _, value = authorization.partition(b" ")
            if scheme.lower() == b"bearer":
                token = value.strip()
        if not token:
            raise AuthenticationFailed(
                "missing gateway credential: send the ccgate client token as x-api-key or "
                "'Authorization: Bearer' (ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN in Claude Code)"
            )
        name = self._by_digest.get(hashlib.sha256(token).digest())
        if name is None:
            raise AuthenticationFailed("invalid gateway credential")
        return name
