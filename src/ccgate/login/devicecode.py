"""The RFC 8628 device authorization grant as rules without I/O (clock injected).

``new`` issues a device code (43 base64url characters, 256 bits; only its SHA-256 is ever
stored) and a user code (``XXXX-XXXX`` from 20 consonants, as Anthropic's gateway). The CLI
polls with the device code; the browser side finds the grant by user code and approves or
denies it. Poll answers are the exact RFC 8628 errors Claude Code handles:

* ``authorization_pending`` - keep polling;
* ``slow_down`` - polled before ``interval`` elapsed; the interval grows by 5 s (§3.5);
* ``access_denied`` - the user pressed Deny;
* ``expired_token`` - ``expires_in`` passed;
* ``invalid_grant`` - unknown or already used device code.

The records (``Grant``: the polling state; ``Answer``: what the browser decided) are kept in
the gateway's short-lived records by ``server/login_state.py``, which reads and writes them
around these rules; the browser's answer is a separate record that the poll takes (reads and
deletes at once), so it is handed out once even when processes race.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ccgate.login.tokens import Identity

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels: no words; 20**8 ~ 2**34.6
DEVICE_TTL = 600
POLL_INTERVAL = 5
SLOW_DOWN_STEP = 5

PollError = Literal["authorization_pending", "slow_down", "access_denied", "expired_token", "invalid_grant"]


@dataclass
class Approval:
    """What the browser leg established: who signed in, their key, the IdP's refresh token."""

    identity: Identity
    key_id: str
    idp_refresh_token: str | None = field(repr=False)


@dataclass
class Grant:
    """The polling state of one device code."""

    user_code: str
    expires_at: float
    interval: int
    last_poll: float | None = None


@dataclass
class Answer:
    """The browser's decision: an approval, or None for Deny."""

    approval: Approval | None


def normalize_user_code(text: str) -> str | None:
    """``tvnn qpqn`` / ``TVNN-QPQN`` -> ``TVNN-QPQN``; None if it cannot be a user code."""
    letters = "".join(ch for ch in text.upper() if ch.isalnum())
    if len(letters) != 8 or any(ch not in USER_CODE_ALPHABET for ch in letters):
        return None
    return f"{letters[:4]}-{letters[4:]}"


def device_digest(device_code: str) -> str:
    return hashlib.sha256(device_code.encode()).hexdigest()


def new_user_code() -> str:
    code = normalize_user_code("".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8)))
    assert code is not None
    return code


class DeviceGrants:
    def __init__(self, clock: Callable[[], float], *, ttl: int = DEVICE_TTL,
                 interval: int = POLL_INTERVAL) -> None:
        self._clock = clock
        self.ttl = ttl
        self.interval = interval

    def now(self) -> float:
        return self._clock()

    def new(self) -> tuple[str, Grant]:
        """A new device code and its grant."""
        return secrets.token_urlsafe(32), Grant(new_user_code(), self._clock() + self.ttl, self.interval)

    def live(self, grant: Grant | None) -> bool:
        return grant is not None and self._clock() < grant.expires_at

    def keep_for(self, grant: Grant) -> float:
        """How long to keep a grant's record: a minute past expiry, so a late poll hears
        ``expired_token`` rather than ``invalid_grant``."""
        return grant.expires_at + 60 - self._clock()

    def poll(self, grant: Grant | None, answer: Answer | None) -> tuple[Approval | PollError, Grant | None]:
        """The answer to one poll and the grant to keep (None: forget it)."""
        if grant is None:
            return "invalid_grant", None
        now = self._clock()
        if now >= grant.expires_at:
            return "expired_token", None
        if answer is not None:
            return (answer.approval if answer.approval is not None else "access_denied"), None
        # One second of slack: a client polling exactly every `interval` s jitters around it.
        too_soon = grant.last_poll is not None and now - grant.last_poll < grant.interval - 1
        grant.last_poll = now
        if too_soon:
            grant.interval += SLOW_DOWN_STEP
            return "slow_down", grant
        return "authorization_pending", grant
