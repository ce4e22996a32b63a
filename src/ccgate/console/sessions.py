"""Console sign-in state, without I/O: server-side sessions, the one-time sign-in link, and the
brake on guessing the admin key.

A session is a random 256-bit token in an HttpOnly cookie; the server keeps only its SHA-256,
so a memory dump or a log line of the table never yields a usable cookie. Each session has its
own CSRF token (the synchronizer-token pattern) and two deadlines: ``idle`` seconds without use
and ``max_age`` seconds in all. Signing out deletes it; a new admin key (a reload) ends every
session signed in with the old one (``admin_digest``). Sessions live in memory: a restart signs
everyone out, which is what a single gateway process wants.

The sign-in link (``ccgate serve`` on loopback without an admin key) is a second random token,
also kept only as a digest, good for one sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from ccgate.login.tokens import Identity

# How many sessions may exist at once; the least recently used goes first beyond that.
MAX_SESSIONS = 64
# Failed admin-key sign-ins allowed per client address and window before that address is
# refused until the window ends (per address: a stranger's guessing cannot lock the admin out).
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0
MAX_TRACKED = 1024  # addresses remembered at once


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Session:
    csrf: str
    created: float
    last_seen: float
    admin_digest: bytes | None  # the admin key's digest at sign-in (None: the one-time link)
    # Signed in through the identity provider (``views/idp.py``): who, for the page and for the
    # check against server.console.admin_groups/admin_emails on every request.
    identity: Identity | None = None


class Sessions:
    def __init__(self, *, idle: float, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.max_age = max_age
        self._clock = clock
        self._sessions: dict[bytes, Session] = {}
        self._link: bytes | None = None
        self._failures: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, admin_digest: bytes | None, identity: Identity | None = None) -> tuple[str, Session]:
        """A new session: the cookie value (returned once, never stored) and its state."""
        now = self._clock()
        self._expire(now)
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
            del self._sessions[oldest]
        token = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), created=now, last_seen=now, admin_digest=admin_digest,
                          identity=identity)
        self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str | None, admin_digest: bytes | None) -> Session | None:
        """The live session for a cookie value, touched; None when unknown, expired or signed in
        under another admin key than the current one (an identity-provider session does not
        depend on the admin key)."""
        if not token or len(token) > 128:
            return None
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock()
        stale_key = session.identity is None and not _same(session.admin_digest, admin_digest)
        if self._expired(session, now) or stale_key:
            del self._sessions[key]
            return None
        session.last_seen = now
        return session

    def end(self, token: str | None) -> None:
        if token and len(token) <= 128:
            self._sessions.pop(_digest(token), None)

    def end_all(self) -> None:
        self._sessions.clear()

    # The one-time sign-in link --------------------------------------------------------------

    def issue_link(self) -> str:
        """A new single-use sign-in token (any earlier one stops working)."""
        token = secrets.token_urlsafe(32)
        self._link = _digest(token)
        return token

    def redeem_link(self, token: str | None) -> bool:
        """True once for the token ``issue_link`` returned; it is spent either way it matched."""
        if self._link is None or not token or len(token) > 128:
            return False
        if not hmac.compare_digest(_digest(token), self._link):
            return False
        self._link = None
        return True

    # Guessing brake ---------------------------------------------------------------------------

    def may_try(self, who: str) -> bool:
        now = self._clock()
        recent = [t for t in self._failures.get(who, ()) if now - t < FAILURE_WINDOW]
        if recent:
            self._failures[who] = recent
        else:
            self._failures.pop(who, None)
        return len(recent) < MAX_FAILURES

    def failed(self, who: str) -> None:
        if who not in self._failures and len(self._failures) >= MAX_TRACKED:
            del self._failures[next(iter(self._failures))]  # the longest-tracked address
        self._failures.setdefault(who, []).append(self._clock())

    # ---------------------------------------------------------------------------------------

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen >= self.idle or now - session.created >= self.max_age

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]


def _same(a: bytes | None, b: bytes | None) -> bool:
    if a is None or b is None:
        return a is b
    return hmac.compare_digest(a, b)


def csrf_ok(session: Session, presented: str | None) -> bool:
    """The request carries this session's CSRF token (form field or header)."""
    return bool(presented) and hmac.compare_digest(session.csrf.encode(), (presented or "").encode())
