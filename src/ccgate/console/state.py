"""The console's sign-in records in the gateway's short-lived store (``ccgate.shared.KV``):
``MemoryKV`` in one process, Redis or the workers' hub when several processes serve the same
console, so a session created by one is valid at every other and signing out ends it at all.

* ``console:session:<sha256(cookie)>`` - a session (``console/sessions.py``), for the nearer of
  its idle and absolute deadlines, renewed as it is used;
* ``console:link:<sha256(token)>`` - the one-time sign-in link, taken when used (7 days);
* ``console:signin-failures:<address>`` - wrong admin keys from one address (60 s window);
* ``console:flow:<sha256(state)>`` and ``console:attempts:idp:<address>`` - sign-ins through
  the identity provider (``server/login_state.py``, as /login's).

Every method may raise ``SharedUnavailable``; ``console/app.py`` answers 503 for it.
"""

from __future__ import annotations

import secrets

import msgspec

from ccgate.console.sessions import (
    FAILURE_WINDOW,
    LINK_TTL,
    MAX_FAILURES,
    Session,
    Sessions,
    token_digest,
    valid_token,
)
from ccgate.login.tokens import Identity
from ccgate.server.login_state import Attempts
from ccgate.shared import KV

TOUCH_EVERY = 15.0  # seconds between saves of a session's last use (idle is minutes)
_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder(Session)


class ConsoleState:
    def __init__(self, kv: KV, sessions: Sessions) -> None:
        self.kv = kv
        self.rules = sessions
        self.failures = Attempts(kv, "console:signin-failures", MAX_FAILURES, FAILURE_WINDOW)
        self._link: str | None = None  # the digest of the newest link this process issued
        self._unpublished = False  # issued before the event loop ran: not stored yet
        self._retired: list[str] = []  # earlier links of this process, to delete

    # Sessions ---------------------------------------------------------------------------------

    async def create(self, admin_digest: bytes | None, identity: Identity | None = None) -> tuple[str, Session]:
        token, session = self.rules.new(admin_digest, identity)
        await self.kv.kv_put(_session_key(token), _encode(session), self.rules.ttl(session))
        return token, session

    async def get(self, token: str | None, admin_digest: bytes | None) -> Session | None:
        """The live session for a cookie value, its use recorded; None when unknown, expired or
        signed in under another admin key."""
        if not valid_token(token):
            return None
        key = _session_key(token or "")
        raw = await self.kv.kv_get(key)
        try:
            session = _decoder.decode(raw) if raw is not None else None
        except msgspec.DecodeError:
            session = None  # written by another release: sign in again
        if session is None:
            return None
        if not self.rules.live(session, admin_digest):
            await self.kv.kv_delete(key)
            return None
        if self.rules.touch(session, every=TOUCH_EVERY):
            await self.kv.kv_put(key, _encode(session), self.rules.ttl(session))
        return session

    async def end(self, token: str | None) -> None:
        if valid_token(token):
            await self.kv.kv_delete(_session_key(token or ""))

    # The one-time sign-in link ----------------------------------------------------------------

    def issue_link(self) -> str:
        """A new single-use sign-in token (an earlier one of this process stops working). Called
        before the server runs (``ccgate serve`` prints it), so it is stored by ``publish_link``
        at start-up, or at the latest when a link is presented here."""
        token = secrets.token_urlsafe(32)
        if self._link is not None:
            self._retired.append(self._link)
        self._link, self._unpublished = token_digest(token), True
        return token

    async def publish_link(self) -> None:
        while self._retired:
            await self.kv.kv_delete(f"console:link:{self._retired[-1]}")
            self._retired.pop()
        if self._unpublished and self._link is not None:
            await self.kv.kv_put(f"console:link:{self._link}", b"1", LINK_TTL)
            self._unpublished = False

    async def redeem_link(self, token: str | None) -> bool:
        """True once for a token ``issue_link`` returned (here or in another process)."""
        await self.publish_link()
        if not valid_token(token):
            return False
        return await self.kv.kv_take(f"console:link:{token_digest(token or '')}") is not None

    # Guessing brake ---------------------------------------------------------------------------

    async def may_try(self, who: str) -> bool:
        return await self.failures.allowed(who)

    async def failed(self, who: str) -> None:
        await self.failures.hit(who)


def _session_key(token: str) -> str:
    return f"console:session:{token_digest(token)}"
