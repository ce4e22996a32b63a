"""The browser leg between a sign-in page and the identity provider, without I/O.

When the user confirms a user code (``POST /device``; the console's "Sign in with ..." the
same way), a ``Flow`` is created: the OIDC ``state`` (it names the flow), ``nonce`` and PKCE
verifier, plus ``browser`` - a secret set as an HttpOnly cookie on that browser. The IdP sends
the browser back with ``?code&state``; the flow is found by ``state`` and is valid only from
the browser holding its cookie, so a callback URL replayed or sent to someone else does
nothing. After the code exchange the flow gets a CSRF token for the explicit Approve (or the
console's Continue) form, and that post ends it.

What is stored (``server/login_state.py``, under the SHA-256 of ``state``) holds digests of
the browser secret and of the CSRF token, never the secrets themselves: a shared store (Redis)
could be read by an operator, and these must not let anyone finish someone else's sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from ccgate.login.tokens import Identity

FLOW_TTL = 600


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def same_secret(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str | None, stored_digest: str) -> bool:
    """``secret`` (a cookie, a form field) is the one whose digest was stored."""
    return bool(secret) and bool(stored_digest) and hmac.compare_digest(digest(secret or ""), stored_digest)


@dataclass
class Flow:
    """One sign-in through the identity provider, as stored."""

    user_code: str  # the device code's user code ("console" for the console's sign-in)
    expires_at: float
    nonce: str
    verifier: str = field(repr=False)
    browser_digest: str = field(repr=False)
    csrf_digest: str = field(default="", repr=False)  # set when the IdP has answered
    identity: Identity | None = None
    idp_refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Started:
    """A new flow and what is not stored: ``state``, the browser's cookie, the PKCE challenge."""

    flow: Flow
    state: str
    browser: str = field(repr=False)
    challenge: str


class Flows:
    """The rules of a flow: creation, which browser may use it, the CSRF token after the IdP."""

    def __init__(self, clock: Callable[[], float], *, ttl: int = FLOW_TTL) -> None:
        self._clock = clock
        self.ttl = ttl

    def start(self, user_code: str) -> Started:
        verifier, challenge = pkce_pair()
        browser = secrets.token_urlsafe(24)
        flow = Flow(user_code, self._clock() + self.ttl, secrets.token_urlsafe(24), verifier, digest(browser))
        return Started(flow, secrets.token_urlsafe(24), browser, challenge)

    def usable(self, flow: Flow | None, browser: str | None) -> Flow | None:
        """``flow`` if it is live and this browser started it."""
        if flow is None or self._clock() >= flow.expires_at or not matches(browser, flow.browser_digest):
            return None
        return flow

    def answered(self, flow: Flow, identity: Identity, idp_refresh_token: str | None) -> str:
        """The IdP signed the user in: remember who, and return the form's CSRF token."""
        csrf = secrets.token_urlsafe(24)
        flow.identity, flow.idp_refresh_token, flow.csrf_digest = identity, idp_refresh_token, digest(csrf)
        return csrf

    def remaining(self, flow: Flow) -> float:
        return flow.expires_at - self._clock()
