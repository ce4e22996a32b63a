"""Console sign-in rules, without I/O: server-side sessions, the one-time sign-in link, and
the brake on guessing the admin key. ``console/state.py`` keeps what these rules decide in the
gateway's short-lived records (``ccgate.shared.KV``), so any process of a gateway knows a
session another one created.

A session is a random 256-bit token in an HttpOnly cookie; only its SHA-256 names the record
(``console:session:<digest>``), so neither a memory dump nor a read of a shared Redis yields a
usable cookie. Each session has its own CSRF token (the synchronizer-token pattern) and two
deadlines: ``idle`` seconds without use and ``max_age`` seconds in all; the record's time to
live is the nearer one, so the store forgets it when it ends. Signing out deletes it; a new
admin key (a reload) ends every session signed in with the old one (``admin_digest``).

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

# Failed admin-key sign-ins allowed per client address and window before that address is
# refused until the window ends (per address: a stranger's guessing cannot lock the admin out).
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0
LINK_TTL = 7 * 86400  # the one-time link printed at start; a restart prints a new one
MAX_TOKEN = 128  # longer cookie values are not ours: not even hashed


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    csrf: str
    created: float  # wall-clock seconds: other processes (other machines) read the record too
    last_seen: float
    admin_digest: bytes | None  # the admin key's digest at sign-in (None: the link or the IdP)
    # Signed in through the identity provider (``views/idp.py``): who, for the page and for the
    # check against server.console.admin_groups/admin_emails on every request.
    identity: Identity | None = None


class Sessions:
    def __init__(self, *, idle: float, max_age: float, clock: Callable[[], float] = time.time) -> None:
        self.idle = idle
        self.max_age = max_age
        self._clock = clock

    def new(self, admin_digest: bytes | None, identity: Identity | None = None) -> tuple[str, Session]:
        """A new session: the cookie value (returned once, never stored) and its record."""
        now = self._clock()
        session = Session(csrf=secrets.token_urlsafe(32), created=now, last_seen=now, admin_digest=admin_digest,
                          identity=identity)
        return secrets.token_urlsafe(32), session

    def live(self, session: Session, admin_digest: bytes | None) -> bool:
        """Not expired, and not signed in under another admin key than the current one (an
        identity-provider session does not depend on the admin key)."""
        if session.identity is None and not _same(session.admin_digest, admin_digest):
            return False
        return self.ttl(session) > 0

    def ttl(self, session: Session) -> float:
        """Seconds until the session ends unless used again."""
        now = self._clock()
        return min(session.last_seen + self.idle, session.created + self.max_age) - now

    def touch(self, session: Session, *, every: float) -> bool:
        """Mark the session used now; True when that is worth saving (the last save was more
        than ``every`` seconds ago: an htmx poll every few seconds need not write each time)."""
        now = self._clock()
        if now - session.last_seen < every:
            return False
        session.last_seen = now
        return True


def valid_token(token: str | None) -> bool:
    return bool(token) and len(token or "") <= MAX_TOKEN


def same_digest(presented: str | None, digest: str) -> bool:
    return valid_token(presented) and hmac.compare_digest(token_digest(presented or ""), digest)


def _same(a: bytes | None, b: bytes | None) -> bool:
    if a is None or b is None:
        return a is b
    return hmac.compare_digest(a, b)


def csrf_ok(session: Session, presented: str | None) -> bool:
    """The request carries this session's CSRF token (form field or header)."""
    return bool(presented) and hmac.compare_digest(session.csrf.encode(), (presented or "").encode())
