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
    accepts = RefreshFamilies.accepts
    assert accepts(None, False, 7)  # unknown family (a restart, an expired counter): accepted
    assert accepts(3, False, 3) and accepts(3, False, 2)  # the newest, and another process's copy
    assert not accepts(3, False, 1)  # two rotations old
    assert accepts(3, False, 0) is False and accepts(1, False, 0)  # a token minted before numbering
    assert not accepts(3, True, 3) and not accepts(None, True, 3)  # ended: nothing, ever
    assert RefreshFamilies.catch_up(4, 2) == 0
    assert RefreshFamilies.catch_up(1, 5) == 5  # the counter was lost: continue above the token


async def test_refresh_families_in_the_store_number_tokens_and_end() -> None:
    from ccgate.login.tokens import Identity, RefreshGrant
    from ccgate.server.login_state import FamilyStore
    from ccgate.shared.memory import MemoryKV

    clock = ManualClock()
    kv = MemoryKV(clock=clock.monotonic)
    families = FamilyStore(kv, clock.time)

    def token(seq: int) -> RefreshGrant:
        return RefreshGrant(Identity("u", None, None, ()), "key_1", "j", clock.time() + 60, "rt", "fam-1", seq)

    assert await families.accepts(token(5))  # never seen
    assert [await families.issue("fam-1", n) for n in (0, 1, 2)] == [1, 2, 3]
    assert await families.accepts(token(3)) and await families.accepts(token(2))
    assert not await families.accepts(token(1))
    assert "fam-1" not in " ".join(kv.live_keys())  # the family id is kept as a digest
    await families.end("fam-1", clock.time() + 60)
    assert not await families.accepts(token(3))
    assert await families.issue("fam-1", 3) == 4  # a refresh that was in flight...
    assert not await families.accepts(token(4))  # ...mints a token that is refused all the same


async def test_a_refresh_family_outlives_its_counter() -> None:
    from ccgate.login.tokens import Identity, RefreshGrant
    from ccgate.server.login_state import FamilyStore
    from ccgate.shared.memory import MemoryKV

    clock = ManualClock()
    kv = MemoryKV(clock=clock.monotonic)
    families = FamilyStore(kv, clock.time)

    def token(seq: int) -> RefreshGrant:
        return RefreshGrant(Identity("u", None, None, ()), "key_1", "j", clock.time() + 60, "rt", "fam", seq)

    assert await families.issue("fam", 0) == 1
    clock.advance(80 * 86400)
    assert [await families.issue("fam", n) for n in (1, 2, 3)] == [2, 3, 4]
    clock.advance(11 * 86400)  # 91 days after sign-in: the counter expired, the newest number not
    assert kv.live_keys("login:family:") == []
    assert not await families.accepts(token(2)) and await families.accepts(token(3))
    assert await families.issue("fam", 4) == 5  # counting resumes above the presented token
    assert await families.accepts(token(4)) and not await families.accepts(token(3))
    clock.advance(91 * 86400)  # unused for longer than a refresh token lives: forgotten
    assert kv.live_keys("login:family") == [] and await families.accepts(token(2))


async def test_device_grant_codes_and_expiry() -> None:
    from ccgate.server.login_state import DeviceStore
    from ccgate.shared.memory import MemoryKV

    clock = ManualClock()
    kv = MemoryKV(clock=clock.monotonic)
    grants = DeviceStore(kv, DeviceGrants(clock.time))
    device_code, grant = await grants.start()
    assert normalize_user_code(grant.user_code.lower().replace("-", " ")) == grant.user_code
    assert normalize_user_code("AEIO-UAEI") is None  # vowels are not in the alphabet
    assert await grants.pending(grant.user_code.lower()) == grant.user_code
    assert device_code not in " ".join(kv.live_keys())
    clock.advance(600)
    assert await grants.pending(grant.user_code) is None
    assert await grants.poll(device_code) == "expired_token"
    assert await grants.poll(device_code) == "invalid_grant"  # forgotten once reported


async def test_a_device_grant_is_decided_once_and_handed_out_once() -> None:
    from ccgate.login.devicecode import Approval
    from ccgate.login.tokens import Identity
    from ccgate.server.login_state import DeviceStore
    from ccgate.shared.memory import MemoryKV

    clock = ManualClock()
    grants = DeviceStore(MemoryKV(clock=clock.monotonic), DeviceGrants(clock.time))
    device_code, grant = await grants.start()
    assert await grants.poll(device_code) == "authorization_pending"
    assert await grants.poll(device_code) == "slow_down"  # polled again at once
    approval = Approval(Identity("u", "u@example.com", None, ("eng",)), "key_1", "idp-rt")
    assert await grants.decide(grant.user_code, approval)
    assert not await grants.decide(grant.user_code, None)  # decided: a Deny after it does nothing
    assert await grants.pending(grant.user_code) is None
    assert await grants.poll(device_code) == approval
    assert await grants.poll(device_code) == "invalid_grant"
    denied_code, denied = await grants.start()
    assert await grants.decide(denied.user_code, None)
    assert await grants.poll(denied_code) == "access_denied"


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
