"""Session tokens: the HS256 JWT Claude Code sends as its Bearer, and the refresh token.

The access token carries what the CLI reads (``sub``, ``email``, ``name``, ``groups``, which
it stamps on its OTLP exports) plus ``exp``/``iat``/``jti``, ``iss`` = the public URL, ``aud``
= ``claude-gateway`` (as Anthropic's gateway), and ``ccgate_key``: the issued key this
developer's usage is recorded under. The header's ``kid`` is the first 16 hex digits of
sha256(jwt_secret), as on Anthropic's gateway.

The refresh token is also a JWT signed with the same secret but another audience (one can
never be used as the other). It wraps the identity provider's refresh token so that a refresh
can check that the developer's key is still active before asking the IdP. Claude Code keeps
it opaque (``idpRefreshToken``).

Expiry is checked against the injected clock, not PyJWT's, so tests can move time.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

ACCESS_AUDIENCE = "claude-gateway"
REFRESH_AUDIENCE = "ccgate-refresh"
REFRESH_LIFETIME = 90 * 86400  # bounded even if the IdP's refresh token lives forever
VERIFIED_CACHE = 4096  # access tokens verified once and remembered (a CLI reuses its token for an hour)
_REQUIRED = ["iat", "sub", "jti", "aud", "iss"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A developer as the identity provider vouched for them."""

    sub: str
    email: str | None
    name: str | None
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Session:
    """A verified access token."""

    identity: Identity
    key_id: str
    jti: str
    exp: float


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    identity: Identity
    key_id: str
    jti: str
    exp: float
    idp_refresh_token: str
    family: str  # one per sign-in: every refresh token of that sign-in shares it
    seq: int = 0  # its place in the family: 1 at sign-in, +1 per refresh (0: minted before this claim)


class TokenInvalid(Exception):
    """Not ours, tampered with, signed with another secret, or malformed."""


class TokenExpired(TokenInvalid):
    pass


class SessionTokens:
    def __init__(self, secret: str, issuer: str, ttl: int, clock: Callable[[], float]) -> None:
        self._secret = secret
        self._issuer = issuer
        self.ttl = ttl
        self._clock = clock
        self._headers = {"kid": hashlib.sha256(secret.encode()).hexdigest()[:16]}
        # token -> its verified session. Signature and claims are checked once per token (about
        # 120 us with PyJWT, as much as the rest of a request); expiry is checked every time.
        self._verified: dict[bytes, Session] = {}

    def now(self) -> float:
        return self._clock()

    def mint_access(self, identity: Identity, key_id: str) -> tuple[str, int]:
        """The JWT and its lifetime in seconds (``expires_in``)."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": identity.sub, "name": identity.name, "email": identity.email,
            "groups": list(identity.groups), "aud": ACCESS_AUDIENCE, "iss": self._issuer,
            "iat": now, "exp": now + self.ttl, "jti": secrets.token_urlsafe(12), "ccgate_key": key_id,
        }
        return jwt.encode({k: v for k, v in claims.items() if v is not None}, self._secret,
                          algorithm="HS256", headers=self._headers), self.ttl

    def mint_refresh(self, identity: Identity, key_id: str, idp_refresh_token: str,
                     family: str, seq: int) -> tuple[str, str, int]:
        """The refresh token, its id and expiry; ``family`` names the sign-in it belongs to and
        ``seq`` its place in it (``RefreshFamilies``)."""
        now = int(self._clock())
        jti = secrets.token_urlsafe(12)
        claims = {
            "sub": identity.sub, "name": identity.name, "email": identity.email,
            "groups": list(identity.groups), "aud": REFRESH_AUDIENCE, "iss": self._issuer,
            "iat": now, "exp": now + REFRESH_LIFETIME, "jti": jti, "ccgate_key": key_id,
            "rt": idp_refresh_token, "fam": family, "seq": seq,
        }
        token = jwt.encode({k: v for k, v in claims.items() if v is not None}, self._secret,
                           algorithm="HS256", headers=self._headers)
        return token, jti, now + REFRESH_LIFETIME

    def verify_access(self, token: str | bytes, *, check_exp: bool = True) -> Session:
        claims = self._decode(token, ACCESS_AUDIENCE, check_exp)
        return Session(_identity(claims), claims["ccgate_key"], claims["jti"], float(claims["exp"]))

    def session(self, token: bytes) -> Session:
        """``verify_access`` for the hot path: a token seen before costs one dict lookup."""
        session = self._verified.get(token)
        if session is None:
            session = self.verify_access(token)
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()  # tokens turn over hourly: no LRU bookkeeping needed
            self._verified[token] = session
        elif self._clock() >= session.exp:
            del self._verified[token]
            raise TokenExpired("expired")
        return session

    def verify_refresh(self, token: str | bytes, *, check_exp: bool = True) -> RefreshGrant:
        claims = self._decode(token, REFRESH_AUDIENCE, check_exp)
        rt, family, seq = claims.get("rt"), claims.get("fam"), claims.get("seq", 0)
        if not isinstance(rt, str) or not rt or not isinstance(family, str):
            raise TokenInvalid("refresh token without an identity-provider token")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise TokenInvalid("malformed refresh token sequence")
        return RefreshGrant(_identity(claims), claims["ccgate_key"], claims["jti"], float(claims["exp"]), rt,
                            family, seq)

    def _decode(self, token: str | bytes, audience: str, check_exp: bool) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=["HS256"], audience=audience, issuer=self._issuer,
                options={"require": [*_REQUIRED, "exp"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(type(exc).__name__) from None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or not isinstance(claims.get("ccgate_key"), str):
            raise TokenInvalid("missing claims")
        if check_exp and self._clock() >= exp:
            raise TokenExpired("expired")
        return claims


def _identity(claims: dict[str, Any]) -> Identity:
    groups = claims.get("groups") or []
    return Identity(
        sub=str(claims["sub"]),
        email=claims.get("email") if isinstance(claims.get("email"), str) else None,
        name=claims.get("name") if isinstance(claims.get("name"), str) else None,
        groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else (),
    )


class Revocations:
    """Token ids revoked through the revocation endpoint (``claude auth logout``), until they
    would have expired anyway. In memory: a durable, every-device revocation is revoking the
    developer's key (``ccgate keys revoke``), which the hot path sees through ``KeyCache``."""

    def __init__(self, clock: Callable[[], float], max_entries: int = 100_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._until: dict[str, float] = {}
        # Told of each revocation made here, for the other gateway processes (ccgate.shared).
        self.on_revoke: Callable[[str, float], None] | None = None

    def revoke(self, jti: str, exp: float) -> None:
        self.apply_shared(jti, exp)
        if self.on_revoke is not None:
            self.on_revoke(jti, exp)

    def apply_shared(self, jti: str, exp: float) -> None:
        """Record a revocation (made here, or in another process: then not passed on again)."""
        if len(self._until) >= self._max:
            now = self._clock()
            self._until = {j: e for j, e in self._until.items() if e > now}
        if len(self._until) < self._max:
            self._until[jti] = exp

    def __contains__(self, jti: str) -> bool:
        return jti in self._until


class RefreshFamilies:
    """Which refresh token of a sign-in ("family") may be used, without I/O.

    Refresh tokens are single use, with a one-step grace: every token carries its place in the
    family (``seq``: 1 at sign-in, then one more per refresh) and the family's record holds the
    newest number issued (``newest``). A token is accepted when it is the newest or the one
    before it: several Claude Code processes share one credentials file, and one may present the
    token another has just refreshed. An older token is refused (``invalid_grant``); the family
    goes on, so a stale copy cannot end a developer's live session. The revocation endpoint ends
    a family (``ended``), which nothing undoes.

    Numbers are handed out by an atomic counter (``kv_incr``, server/login_state.py), so two
    processes refreshing the same token at once get consecutive numbers, never the same one and
    never a lost update: both new tokens stay acceptable. The newest number is remembered as
    long as the newest token lives (``REFRESH_LIFETIME`` from the last refresh); a family
    forgotten (a one-process gateway restarted) is unknown and its token accepted, and the next
    refresh starts counting again above the number presented (``catch_up``).
    """

    @staticmethod
    def accepts(newest: int | None, ended: bool, seq: int) -> bool:
        if ended:
            return False
        return newest is None or seq >= newest - 1

    @staticmethod
    def catch_up(issued: int, presented: int) -> int:
        """How much to add to a counter that just said ``issued`` so the new token's number is
        above the one presented (0 unless the counter had been lost)."""
        return presented + 1 - issued if issued <= presented else 0
