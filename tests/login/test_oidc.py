"""The id_token checks, the refresh-token family rule and the device grant, without HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ccgate.login.devicecode import DeviceGrants, normalize_user_code
from ccgate.login.oidc import Discovery, IdentityRefused, validate_id_token
from ccgate.login.settings import OidcSettings
from ccgate.login.tokens import RefreshFamilies
from ccgate.routing import ManualClock
from tests.lab.oidc_idp import CLIENT_ID, TestIdP

ISSUER = "http://127.0.0.1:9"
DISC = Discovery(ISSUER, f"{ISSUER}/authorize", f"{ISSUER}/token", f"{ISSUER}/jwks")


def oidc(**kw: Any) -> OidcSettings:
    base: dict[str, Any] = {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": None, "scopes": ("openid",),
                            "allowed_email_domains": (), "groups_claim": "groups", "ca_file": None}
    return OidcSettings(**{**base, **kw})


def claims(**kw: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": CLIENT_ID, "sub": "u1", "email": "a@corp.example", "name": "A",
            "groups": ["eng", 7, {"x": 1}], "iat": now, "exp": now + 300, "nonce": "n1", **kw}


def test_a_good_id_token_gives_the_identity() -> None:
    idp = TestIdP(ISSUER)
    identity = validate_id_token(idp.sign(claims()), idp.jwks(), DISC, oidc(), "n1", time.time())
    assert (identity.sub, identity.email, identity.name, identity.groups) == ("u1", "a@corp.example", "A", ("eng", "7"))


@pytest.mark.parametrize(("changed", "settings", "nonce", "why"), [
    ({"nonce": "other"}, {}, "n1", "nonce"),
    ({"aud": "someone-else"}, {}, "n1", "InvalidAudience"),
    ({"iss": "http://evil"}, {}, "n1", "InvalidIssuer"),
    ({"exp": int(time.time()) - 120}, {}, "n1", "expired"),
    ({"email_verified": False}, {}, "n1", "not verified"),
    ({}, {"allowed_email_domains": ("other.example",)}, "n1", "domain"),
])
def test_bad_id_tokens_are_refused(changed: dict[str, Any], settings: dict[str, Any], nonce: str, why: str) -> None:
    idp = TestIdP(ISSUER)
    with pytest.raises(IdentityRefused, match=why):
        validate_id_token(idp.sign(claims(**changed)), idp.jwks(), DISC, oidc(**settings), nonce, time.time())


def test_an_id_token_signed_by_another_key_is_refused() -> None:
    idp, impostor = TestIdP(ISSUER), TestIdP(ISSUER)
    impostor.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    impostor.kid = idp.kid  # same key id, different key
    with pytest.raises(IdentityRefused, match="InvalidSignature"):
        validate_id_token(impostor.sign(claims()), idp.jwks(), DISC, oidc(), "n1", time.time())


def test_refresh_families_accept_the_newest_and_the_one_before() -> None:
    families = RefreshFamilies(time.time)
    assert families.accepts("f", "any")  # unknown after a restart
    for jti in ("j1", "j2", "j3"):
        families.issue("f", jti, time.time() + 60)
    assert families.accepts("f", "j3") and families.accepts("f", "j2")  # another process's copy
    assert not families.accepts("f", "j1")
    assert families.accepts("f", "j3")  # an old copy does not end the live session
    families.end("f", time.time() + 60)
    assert not families.accepts("f", "j3")
    families.issue("f", "j4", time.time() + 60)  # a refresh that was in flight
    assert not families.accepts("f", "j4")


def test_device_grant_codes_and_expiry() -> None:
    clock = ManualClock()
    grants = DeviceGrants(clock.time)
    started = grants.start()
    assert started is not None
    device_code, grant = started
    assert normalize_user_code(grant.user_code.lower().replace("-", " ")) == grant.user_code
    assert normalize_user_code("AEIO-UAEI") is None  # vowels are not in the alphabet
    assert grants.by_user_code(grant.user_code) is grant
    clock.advance(600)
    assert grants.by_user_code(grant.user_code) is None
    assert grants.poll(device_code) == "expired_token"
    assert grants.poll(device_code) == "invalid_grant"  # forgotten once reported


def test_session_tokens_verify_once_and_check_expiry_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import jwt as pyjwt

    from ccgate.login.tokens import Identity, SessionTokens, TokenExpired, TokenInvalid

    clock = ManualClock()
    tokens = SessionTokens("s" * 48, "http://127.0.0.1:4545", 60, clock.time)
    token = tokens.mint_access(Identity("u1", None, None, ()), "key_1")[0].encode()
    assert tokens.session(token).key_id == "key_1"
    calls: list[object] = []
    real = pyjwt.decode
    monkeypatch.setattr(pyjwt, "decode", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    assert tokens.session(token).key_id == "key_1" and not calls  # cached: no second decode
    with pytest.raises(TokenInvalid):
        tokens.session(token[:-2] + b"xx")  # never cached unless verified
    clock.advance(60)
    with pytest.raises(TokenExpired):
        tokens.session(token)
