"""The browser leg between the device page and the identity provider, sans-IO.

When the user confirms a user code (``POST /device``), a ``Flow`` is created: the OIDC
``state`` (its key here), ``nonce`` and PKCE verifier, plus ``browser`` - a secret set as an
HttpOnly cookie on that browser - and ``csrf`` for the approve/deny form. The IdP sends the
browser back to ``/oauth/callback?code&state``; the flow is found by ``state`` (single use)
and is valid only from the browser holding its cookie, so a callback URL replayed or sent to
someone else does nothing. After the code exchange the flow waits for the user's explicit
Approve (``POST /device/approve``, CSRF-checked) before the CLI is signed in.
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
MAX_FLOWS = 10_000


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def same_secret(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


@dataclass
class Flow:
    user_code: str
    expires_at: float
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    browser: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    verifier: str = field(default="", repr=False)
    challenge: str = ""
    identity: Identity | None = None
    idp_refresh_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.verifier:
            self.verifier, self.challenge = pkce_pair()


class Flows:
    """Flows by state (before the IdP answered) and by id = state (after), bounded and expiring."""

    def __init__(self, clock: Callable[[], float], *, ttl: int = FLOW_TTL, max_flows: int = MAX_FLOWS) -> None:
        self._clock = clock
        self.ttl = ttl
        self._max = max_flows
        self._flows: dict[str, Flow] = {}

    def start(self, user_code: str) -> Flow | None:
        now = self._clock()
        if len(self._flows) >= self._max:
            self._flows = {k: f for k, f in self._flows.items() if f.expires_at > now}
            if len(self._flows) >= self._max:
                return None
        flow = Flow(user_code, now + self.ttl)
        self._flows[flow.state] = flow
        return flow

    def get(self, state: str, browser: str | None) -> Flow | None:
        """The live flow for ``state`` if this browser started it."""
        flow = self._flows.get(state)
        if flow is None or self._clock() >= flow.expires_at:
            self._flows.pop(state, None)
            return None
        return flow if same_secret(browser, flow.browser) else None

    def finish(self, flow: Flow) -> None:
        self._flows.pop(flow.state, None)
