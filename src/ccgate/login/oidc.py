"""ccgate as an OpenID Connect client of the company's identity provider.

Pure parts: the authorization URL (code flow, PKCE S256, ``state``, ``nonce``,
``response_mode=query``) and the ``id_token`` checks (signature against the IdP's JWKS,
``iss``, ``aud``, ``exp``, ``nonce``; ``email_verified: false`` refused; the allowed e-mail
domains). I/O: ``OidcClient`` does discovery, JWKS, the code exchange and the refresh grant
with ``client_secret_post`` (a public client sends no secret), each bounded by a timeout
and a size limit, through the proxy the environment names for the issuer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import certifi
import jwt

from ccgate.login.settings import OidcSettings
from ccgate.login.tokens import Identity
from ccgate.proxy_env import ProxyURLError, resolve_proxy

log = logging.getLogger("ccgate.login")

TIMEOUT = 10.0
MAX_REPLY = 1024 * 1024
DISCOVERY_TTL = 3600.0
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class OidcError(Exception):
    """The identity provider could not be used, or said no; the message is safe to show."""


class RefreshRefused(OidcError):
    """The IdP refused the refresh token (invalid_grant): the developer must sign in again."""


class IdentityRefused(OidcError):
    """The id_token does not vouch for a developer we accept (signature, claims, nonce, domain)."""


@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str | None = None


@dataclass(frozen=True)
class TokenSet:
    id_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)


def authorize_url(disc: Discovery, oidc: OidcSettings, redirect_uri: str, state: str, nonce: str,
                  challenge: str) -> str:
    query = urlencode({
        "client_id": oidc.client_id, "scope": " ".join(oidc.scopes), "response_type": "code",
        "redirect_uri": redirect_uri, "state": state, "nonce": nonce, "code_challenge": challenge,
        "code_challenge_method": "S256", "response_mode": "query",
    })
    sep = "&" if "?" in disc.authorization_endpoint else "?"
    return f"{disc.authorization_endpoint}{sep}{query}"


def validate_id_token(id_token: str, jwks: Mapping[str, Any], disc: Discovery, oidc: OidcSettings,
                      nonce: str | None, now: float) -> Identity:
    """The developer the IdP vouches for. OidcError naming what failed (never the token)."""
    try:
        header = jwt.get_unverified_header(id_token)
        keys = jwt.PyJWKSet.from_dict(dict(jwks)).keys
    except jwt.PyJWTError as exc:
        raise IdentityRefused(f"unreadable id_token or JWKS ({type(exc).__name__})") from None
    kid = header.get("kid")
    candidates = [k for k in keys if kid is None or k.key_id == kid]
    if not candidates:
        raise IdentityRefused("id_token signed with a key the identity provider does not publish")
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token, candidates[0], algorithms=_ALGORITHMS, audience=oidc.client_id, issuer=disc.issuer,
            options={"require": ["iss", "aud", "exp", "iat", "sub"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise IdentityRefused(f"id_token refused ({type(exc).__name__})") from None
    if now >= float(claims["exp"]) + 60:  # a minute of clock skew between us and the IdP
        raise IdentityRefused("id_token expired")
    if nonce is not None and claims.get("nonce") != nonce:
        raise IdentityRefused("id_token nonce does not match this sign-in")
    return identity_from_claims(claims, oidc)


def identity_from_claims(claims: Mapping[str, Any], oidc: OidcSettings) -> Identity:
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    if claims.get("email_verified") is False:
        raise IdentityRefused("the identity provider says this e-mail address is not verified")
    if oidc.allowed_email_domains:
        domain = email.rpartition("@")[2].lower() if email else ""
        if domain not in oidc.allowed_email_domains:
            raise IdentityRefused("this account's e-mail domain may not sign in to this gateway")
    raw_groups = claims.get(oidc.groups_claim) or []
    groups = tuple(str(g) for g in raw_groups if isinstance(g, str | int))[:256] if isinstance(
        raw_groups, list) else ()
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    return Identity(sub=str(claims["sub"]), email=email, name=name, groups=groups)


def _discovery(data: Mapping[str, Any], issuer: str) -> Discovery:
    try:
        disc = Discovery(
            issuer=str(data["issuer"]), authorization_endpoint=str(data["authorization_endpoint"]),
            token_endpoint=str(data["token_endpoint"]), jwks_uri=str(data["jwks_uri"]),
            revocation_endpoint=str(data["revocation_endpoint"]) if data.get("revocation_endpoint") else None,
        )
    except KeyError as exc:
        raise OidcError(f"the identity provider's discovery document lacks {exc.args[0]}") from None
    if disc.issuer.rstrip("/") != issuer.rstrip("/"):
        raise OidcError(f"the discovery document names issuer {disc.issuer!r}, not the configured {issuer!r}")
    return disc


class OidcClient:
    """One identity provider; discovery and keys cached (keys re-fetched for an unknown kid)."""

    def __init__(self, oidc: OidcSettings, env: Mapping[str, str]) -> None:
        self.oidc = oidc
        self._env = env
        self._session: aiohttp.ClientSession | None = None
        self._disc: tuple[float, Discovery] | None = None
        self._jwks: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ctx = ssl.create_default_context(cafile=certifi.where())
            if self.oidc.ca_file:
                ctx.load_verify_locations(self.oidc.ca_file)
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT), connector=aiohttp.TCPConnector(ssl=ctx),
                trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    def _proxy(self, url: str) -> str | None:
        try:
            spec = resolve_proxy(url, None, self._env).proxy
        except ProxyURLError:
            return None
        if spec is None or spec.scheme != "http":
            return None
        auth = f"{spec.username}:{spec.password}@" if spec.username else ""
        return f"http://{auth}{spec.host}:{spec.port}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(self, method: str, url: str, form: Mapping[str, str] | None = None) -> tuple[int, Any]:
        try:
            async with self._client().request(method, url, data=form, proxy=self._proxy(url),
                                              headers={"accept": "application/json"}) as reply:
                raw = await reply.content.read(MAX_REPLY + 1)
                if len(raw) > MAX_REPLY:
                    raise OidcError(f"the identity provider's answer from {url} is too large")
                try:
                    return reply.status, json.loads(raw) if raw else {}
                except ValueError:
                    raise OidcError(f"the identity provider answered {reply.status} with non-JSON "
                                    f"from {url}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OidcError(f"cannot reach the identity provider at {url}: {type(exc).__name__}") from None

    async def discovery(self) -> Discovery:
        async with self._lock:
            if self._disc is not None and time.monotonic() - self._disc[0] < DISCOVERY_TTL:
                return self._disc[1]
            url = self.oidc.issuer + "/.well-known/openid-configuration"
            status, data = await self._request("GET", url)
            if status != 200 or not isinstance(data, dict):
                raise OidcError(f"the identity provider's discovery {url} answered {status}")
            disc = _discovery(data, self.oidc.issuer)
            self._disc = (time.monotonic(), disc)
            return disc

    async def jwks(self, *, fresh: bool = False) -> dict[str, Any]:
        if self._jwks is None or fresh:
            disc = await self.discovery()
            status, data = await self._request("GET", disc.jwks_uri)
            if status != 200 or not isinstance(data, dict):
                raise OidcError(f"the identity provider's keys {disc.jwks_uri} answered {status}")
            self._jwks = data
        return self._jwks

    async def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        disc = await self.discovery()
        form["client_id"] = self.oidc.client_id
        if self.oidc.client_secret:
            form["client_secret"] = self.oidc.client_secret
        status, data = await self._request("POST", disc.token_endpoint, form)
        return status, data if isinstance(data, dict) else {}

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> TokenSet:
        status, data = await self._token({"grant_type": "authorization_code", "code": code,
                                          "code_verifier": verifier, "redirect_uri": redirect_uri})
        if status != 200 or not isinstance(data.get("id_token"), str):
            raise OidcError(f"the identity provider refused the sign-in ({status} {_error(data)})")
        return TokenSet(data["id_token"], _str(data.get("refresh_token")))

    async def refresh(self, refresh_token: str) -> TokenSet:
        status, data = await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})
        if status in (400, 401) and _error(data) in ("invalid_grant", "invalid_token", "unauthorized_client"):
            raise RefreshRefused(f"the identity provider refused the refresh ({_error(data)})")
        if status != 200:
            raise OidcError(f"the identity provider's refresh answered {status} {_error(data)}")
        return TokenSet(_str(data.get("id_token")), _str(data.get("refresh_token")))

    async def identity(self, id_token: str, nonce: str | None) -> Identity:
        """Validate with the cached keys, once more with fresh keys for a kid we do not know."""
        disc = await self.discovery()
        try:
            return validate_id_token(id_token, await self.jwks(), disc, self.oidc, nonce, time.time())
        except OidcError as exc:
            if "does not publish" not in str(exc):
                raise
        return validate_id_token(id_token, await self.jwks(fresh=True), disc, self.oidc, nonce, time.time())


def _error(data: Mapping[str, Any]) -> str:
    value = data.get("error")
    return value if isinstance(value, str) and len(value) < 64 else "error"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
