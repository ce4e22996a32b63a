"""Console sessions, the one-time link and CSRF, without I/O (ccgate.console.sessions)."""

from __future__ import annotations

from ccgate.console.sessions import MAX_FAILURES, MAX_SESSIONS, MAX_TRACKED, Sessions, csrf_ok

DIGEST = b"d" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock) -> Sessions:
    return Sessions(idle=60, max_age=3600, clock=clock)


def test_a_session_is_found_by_its_cookie_only() -> None:
    s = sessions(Clock())
    token, session = s.create(DIGEST)
    assert s.get(token, DIGEST) is session
    assert s.get(token + "x", DIGEST) is None and s.get(None, DIGEST) is None and s.get("", DIGEST) is None
    assert token not in repr(s._sessions)  # only its digest is kept


def test_idle_and_absolute_expiry() -> None:
    clock = Clock()
    s = sessions(clock)
    token, _ = s.create(DIGEST)
    clock.now += 59
    assert s.get(token, DIGEST) is not None  # use keeps it alive
    clock.now += 59
    assert s.get(token, DIGEST) is not None
    clock.now += 60
    assert s.get(token, DIGEST) is None  # idle for 60 s
    token, _ = s.create(DIGEST)
    for _ in range(70):  # used every 55 s, but 3600 s after sign-in it ends anyway
        clock.now += 55
        if s.get(token, DIGEST) is None:
            break
    assert clock.now - 1000 >= 3600 - 60 and s.get(token, DIGEST) is None


def test_sign_out_and_a_new_admin_key_end_sessions() -> None:
    s = sessions(Clock())
    token, _ = s.create(DIGEST)
    s.end(token)
    assert s.get(token, DIGEST) is None
    token, _ = s.create(DIGEST)
    assert s.get(token, b"e" * 32) is None  # the admin key changed (reload): signed out
    assert s.get(token, DIGEST) is None
    link_session, _ = s.create(None)
    assert s.get(link_session, DIGEST) is None  # an admin key was configured since


def test_sessions_are_bounded() -> None:
    clock = Clock()
    s = sessions(clock)
    first, _ = s.create(DIGEST)
    for _ in range(MAX_SESSIONS):
        clock.now += 0.001
        s.create(DIGEST)
    assert len(s) == MAX_SESSIONS and s.get(first, DIGEST) is None


def test_the_link_signs_in_once() -> None:
    s = sessions(Clock())
    assert not s.redeem_link("anything")
    token = s.issue_link()
    assert not s.redeem_link(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert s.redeem_link(token)
    assert not s.redeem_link(token)


def test_csrf_token_must_match() -> None:
    s = sessions(Clock())
    _, session = s.create(DIGEST)
    other = s.create(DIGEST)[1]
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None) and not csrf_ok(session, "") and not csrf_ok(session, other.csrf)


def test_guessing_is_braked_per_address() -> None:
    clock = Clock()
    s = sessions(clock)
    for _ in range(MAX_FAILURES):
        assert s.may_try("10.0.0.9")
        s.failed("10.0.0.9")
    assert not s.may_try("10.0.0.9")
    assert s.may_try("127.0.0.1")  # the admin at another address is not locked out
    clock.now += 61
    assert s.may_try("10.0.0.9")


def test_tracked_addresses_are_bounded() -> None:
    s = sessions(Clock())
    for i in range(MAX_TRACKED + 10):
        s.failed(f"addr-{i}")
    assert len(s._failures) == MAX_TRACKED and "addr-0" not in s._failures


def test_an_identity_provider_session_does_not_hang_on_the_admin_key() -> None:
    from ccgate.login.tokens import Identity

    clock = Clock()
    s = sessions(clock)
    ada = Identity("sub-ada", "ada@example.com", "Ada", ("gateway-admins",))
    idp_token, _ = s.create(None, ada)
    key_token, _ = s.create(DIGEST)
    assert s.get(idp_token, b"n" * 32) is not None  # a new admin key: the IdP session stays
    assert s.get(key_token, b"n" * 32) is None  # ...the admin-key session ends
    clock.now += 61
    assert s.get(idp_token, DIGEST) is None  # expiry applies to it all the same


def test_who_may_use_the_console_through_the_identity_provider() -> None:
    from ccgate.config.model import Console
    from ccgate.console.idp import may_use_console
    from ccgate.login.tokens import Identity

    settings = Console(admin_groups=["gateway-admins"], admin_emails=["Carol@Example.com"])
    assert may_use_console(Identity("1", "ada@example.com", None, ("eng", "gateway-admins")), settings)
    assert may_use_console(Identity("2", "carol@example.COM", None, ()), settings)
    assert not may_use_console(Identity("3", "alice@example.com", None, ("engineering",)), settings)
    assert not may_use_console(Identity("4", None, None, ()), settings)
    assert not may_use_console(Identity("1", "ada@example.com", None, ("gateway-admins",)), Console())


def test_origin_of_the_public_url_counts_as_this_gateway() -> None:
    """Behind a TLS terminator the browser's Origin is https://<public host> while the gateway
    sees plain http: the login section's public URL is this gateway too; anything else is not."""
    from ccgate.console.web import Request

    async def receive() -> dict[str, object]:
        return {}

    def request(origin: bytes) -> Request:
        scope = {"type": "http", "scheme": "http", "method": "POST", "query_string": b"",
                 "headers": [(b"host", b"gw.corp.internal"), (b"origin", origin)]}
        return Request.of(scope, receive, "/keys")

    public = "https://gw.corp.internal"
    assert not request(b"https://gw.corp.internal").same_origin()
    assert request(b"https://gw.corp.internal").same_origin(public)
    assert request(b"http://gw.corp.internal").same_origin(public)
    assert not request(b"https://evil.test").same_origin(public)
