"""Client authentication: tokens from the config file and keys issued by ``ccgate keys``.

Both are kept only as SHA-256 digests and looked up by digest, so checking a request
costs one hash and one dict lookup whatever the number of tokens, and its time does not
depend on how much of a guess matches a real token. Issued keys come from the store's
in-memory ``KeyCache`` (no disk I/O per request).

Authentication is on as soon as either kind exists. Once a key has been issued it stays
on, even if every key is later revoked: revoking access must never open the gateway.

The gateway credential comes in ``x-api-key`` or ``Authorization: Bearer``, or in its own
header ``x-ccgate-key`` (``CCGATE_KEY_HEADER``). The own header is for clients that bring
their own Anthropic credential, such as Claude Code logged in with a Claude subscription
(``Authorization: Bearer sk-ant-oat...``): when it is present it is the only credential
checked, and the request's ``Authorization``/``x-api-key`` are the client's own, to be
passed to Anthropic (``Client.own_credential``; docs/keys.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from ccgate.config.secrets import Secret
from ccgate.errors import AuthenticationFailed
from ccgate.login.tokens import Revocations, Session, SessionTokens, TokenExpired, TokenInvalid
from ccgate.store import IssuedKey, KeyCache

# The gateway credential's own header; never sent upstream (server/forward.py drops it).
CCGATE_KEY_HEADER = b"x-ccgate-key"


def presented_token(
    x_api_key: bytes | None, authorization: bytes | None, ccgate_key: bytes | None = None,
) -> bytes | None:
    """The gateway credential a request carries: ``x-ccgate-key``, else ``x-api-key``, else an
    ``Authorization: Bearer`` token."""
    if ccgate_key is not None:
        return ccgate_key.strip()
    if x_api_key is not None:
        return x_api_key
    if authorization is not None:
        scheme, _, value = authorization.partition(b" ")
        if scheme.lower() == b"bearer":
            return value.strip()
    return None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Client:
    """Who is calling: a name for logs, a stable id for usage, and the issued key if any.

    ``own_credential``: the gateway credential came in ``x-ccgate-key``, so the request's
    ``Authorization``/``x-api-key`` are the client's own Anthropic credential, not ours.
    """

    name: str
    key_id: str
    issued: IssuedKey | None = None
    own_credential: bool = False
    session: Session | None = None  # signed in through Claude Code's /login (login/)


_WHY = {
    "revoked": "this gateway key was revoked",
    "expired": "this gateway key has expired",
    "grace_over": "this gateway key was rotated and its grace period is over; use the new key",
}


_REVOKED_SESSION = "token revoked: run /login in Claude Code to sign in again"
# Issued keys whose Client is kept (one per key id, replaced when the key changes); past it,
# a new key's Client is made per request.
_CLIENTS_KEPT = 10_000


class ClientAuth:
    def __init__(self, tokens: dict[str, Secret], issued: KeyCache | None = None, *,
                 sessions: SessionTokens | None = None, revoked: Revocations | None = None) -> None:
        self._by_digest = {
            digest(secret.value): Client(name, f"config:{name}") for name, secret in tokens.items()
        }
        self._issued = issued
        self._clients: dict[str, Client] = {}  # issued key id -> its Client (_issued_client)
        # Claude Code /login sessions: a JWT checked by signature, expiry, the in-memory
        # revocation set and its key's state in KeyCache; no store read (login/tokens.py).
        self._sessions = sessions
        self._revoked = revoked

    @property
    def enabled(self) -> bool:
        if self._by_digest or self._sessions is not None:
            return True
        if self._issued is None:
            return False
        # A key issued by another process (`ccgate keys create`) must switch auth on within a
        # poll interval; poll() costs nothing between polls.
        self._issued.poll()
        return len(self._issued) > 0

    def authenticate(
        self, x_api_key: bytes | None, authorization: bytes | None, ccgate_key: bytes | None = None,
    ) -> Client:
        """The calling client, or AuthenticationFailed. Accepts x-ccgate-key, x-api-key or Bearer."""
        token = presented_token(x_api_key, authorization, ccgate_key)
        if not token:
            raise AuthenticationFailed(
                "missing gateway credential: send the ccgate client token as x-api-key, "
                "'Authorization: Bearer' (ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN in Claude Code) "
                "or x-ccgate-key (ANTHROPIC_CUSTOM_HEADERS, with a Claude subscription)"
            )
        client = self._lookup(token)
        # Usage stays attributed to the gateway key; only where the upstream credential comes from changes.
        return replace(client, own_credential=True) if ccgate_key is not None else client

    def _lookup(self, token: bytes) -> Client:
        token_digest = hashlib.sha256(token).digest()
        client = self._by_digest.get(token_digest)
        if client is not None:
            return client
        if self._sessions is not None and token.startswith(b"eyJ"):
            return self._session_client(token)
        if self._issued is not None:
            check = self._issued.check(token, token_digest)  # the same SHA-256: not hashed again
            key = check.key
            if key is not None:
                if check.verdict != "ok":
                    raise AuthenticationFailed(_WHY.get(check.verdict, "invalid gateway credential"))
                return self._issued_client(key)
        raise AuthenticationFailed("invalid gateway credential")

    def _issued_client(self, key: IssuedKey) -> Client:
        """The ``Client`` of an issued key, made once per version of the key: the cache hands
        out a new ``IssuedKey`` object whenever the key changes, so identity says it is current."""
        known = self._clients.get(key.id)
        if known is not None and known.issued is key:
            return known
        client = Client(key.name, key.id, key)
        if len(self._clients) < _CLIENTS_KEPT or known is not None:
            self._clients[key.id] = client
        return client

    def _session_client(self, token: bytes) -> Client:
        assert self._sessions is not None
        try:
            session = self._sessions.session(token)
        except TokenExpired:
            raise AuthenticationFailed("session expired: run /login in Claude Code") from None
        except TokenInvalid:
            raise AuthenticationFailed("invalid token") from None
        if self._revoked is not None and session.jti in self._revoked:
            raise AuthenticationFailed(_REVOKED_SESSION)
        key = self._issued.by_id(session.key_id) if self._issued is not None else None
        if key is None or key.revoked_at is not None or (
                key.expires_at is not None and self._sessions.now() >= key.expires_at):
            raise AuthenticationFailed(_REVOKED_SESSION)
        return Client(key.name, key.id, key, session=session)
