"""Console sessions, the one-time link, CSRF and the guessing brake: the rules
(ccgate.console.sessions) over the records in a ``MemoryKV`` (ccgate.console.state)."""

from __future__ import annotations

from ccgate.console.sessions import MAX_FAILURES, Sessions, csrf_ok
from ccgate.console.state import ConsoleState
from ccgate.shared.memory import MemoryKV

DIGEST = b"d" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock) -> tuple[ConsoleState, MemoryKV]:
    kv = MemoryKV(clock=clock)
    return ConsoleState(kv, Sessions(idle=60, max_age=3600, clock=clock)), kv


async def test_a_session_is_found_by_its_cookie_only() -> None:
    s, kv = sessions(Clock())
    token, session = await s.create(DIGEST)
    assert await s.get(token, DIGEST) == session
    assert await s.get(token + "x", DIGEST) is None and await s.get(None, DIGEST) is None
    assert await s.get("", DIGEST) is None and await s.get("x" * 200, DIGEST) is None
    assert token not in repr(kv._data)  # only its digest names the record
    assert kv.live_keys("console:session:") and all(len(k) == len("console:session:") + 64 for k in kv.live_keys())


async def test_idle_and_absolute_expiry() -> None:
    clock = Clock()
    s, kv = sessions(clock)
    token, _ = await s.create(DIGEST)
    clock.now += 59
    assert await s.get(token, DIGEST) is not None  # use keeps it alive
    clock.now += 59
    assert await s.get(token, DIGEST) is not None
    clock.now += 60
    assert await s.get(token, DIGEST) is None  # idle for 60 s
    assert kv.live_keys("console:session:") == []  # the store forgot it too
    token, _ = await s.create(DIGEST)
    for _ in range(70):  # used every 55 s, but 3600 s after sign-in it ends anyway
        clock.now += 55
        if await s.get(token, DIGEST) is None:
            break
    assert clock.now - 1000 >= 3600 - 60 and await s.get(token, DIGEST) is None


async def test_use_is_saved_at_most_every_few_seconds() -> None:
    clock = Clock()
    s, kv = sessions(clock)
    token, _ = await s.create(DIGEST)
    key = kv.live_keys("console:session:")[0]
    saved = kv._data[key]
    clock.now += 5
    await s.get(token, DIGEST)
    assert kv._data[key] == saved  # an htmx poll 5 s later writes nothing
    clock.now += 20
    await s.get(token, DIGEST)
    assert kv._data[key][0] > saved[0]  # later, the deadline moves with the use


async def test_sign_out_and_a_new_admin_key_end_sessions() -> None:
    s, _ = sessions(Clock())
    token, _ = await s.create(DIGEST)
    await s.end(token)
    assert await s.get(token, DIGEST) is None
    token, _ = await s.create(DIGEST)
    assert await s.get(token, b"e" * 32) is None  # the admin key changed (reload): signed out
    assert await s.get(token, DIGEST) is None
    link_session, _ = await s.create(None)
    assert await s.get(link_session, DIGEST) is None  # an admin key was configured since


async def test_the_link_signs_in_once() -> None:
    s, kv = sessions(Clock())
    assert not await s.redeem_link("anything")
    token = s.issue_link()  # before the loop runs (ccgate serve prints it): stored at start-up
    await s.publish_link()
    assert token not in repr(kv._data)
    assert not await s.redeem_link(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert await s.redeem_link(token)  # a wrong guess did not spend it
    assert not await s.redeem_link(token)


async def test_a_new_link_retires_the_one_before() -> None:
    s, _ = sessions(Clock())
    first = s.issue_link()
    await s.publish_link()
    second = s.issue_link()
    assert await s.redeem_link(second)  # published on the way
    assert not await s.redeem_link(first)


async def test_the_link_is_redeemable_at_another_process() -> None:
    clock = Clock()
    kv = MemoryKV(clock=clock)
    rules = Sessions(idle=60, max_age=3600, clock=clock)
    here, there = ConsoleState(kv, rules), ConsoleState(kv, rules)
    token = here.issue_link()
    await here.publish_link()
    assert await there.redeem_link(token)
    assert not await here.redeem_link(token)


async def test_csrf_token_must_match() -> None:
    s, _ = sessions(Clock())
    _, session = await s.create(DIGEST)
    other = (await s.create(DIGEST))[1]
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None) and not csrf_ok(session, "") and not csrf_ok(session, other.csrf)


async def test_guessing_is_braked_per_address() -> None:
    clock = Clock()
    s, _ = sessions(clock)
    for _ in range(MAX_FAILURES):
        assert await s.may_try("10.0.0.9")
        await s.failed("10.0.0.9")
    assert not await s.may_try("10.0.0.9")
    assert await s.may_try("127.0.0.1")  # the admin at another address is not locked out
    clock.now += 61
    assert await s.may_try("10.0.0.9")


async def test_an_identity_provider_session_does_not_hang_on_the_admin_key() -> None:
    from ccgate.login.tokens import Identity

    clock = Clock()
    s, _ = sessions(clock)
    ada = Identity("sub-ada", "ada@example.com", "Ada", ("gateway-admins",))
    idp_token, _ = await s.create(None, ada)
    key_token, _ = await s.create(DIGEST)
    found = await s.get(idp_token, b"n" * 32)  # a new admin key: the IdP session stays
    assert found is not None and found.identity == ada  # who, read back from the record
    assert await s.get(key_token, b"n" * 32) is None  # ...the admin-key session ends
    clock.now += 61
    assert await s.get(idp_token, DIGEST) is None  # expiry applies to it all the same


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
