"""The RFC 8628 device authorization grant as a state machine, sans-IO (clock injected).

``start`` issues a device code (43 base64url characters, 256 bits; only its SHA-256 is kept)
and a user code (``XXXX-XXXX`` from 20 consonants, as Anthropic's gateway). The CLI polls
``poll(device_code)``; the browser side finds the grant by user code and ``approve``s or
``deny``s it. Poll answers are the exact RFC 8628 errors Claude Code handles:

* ``authorization_pending`` - keep polling;
* ``slow_down`` - polled before ``interval`` elapsed; the interval grows by 5 s (§3.5);
* ``access_denied`` - the user pressed Deny;
* ``expired_token`` - ``expires_in`` passed;
* ``invalid_grant`` - unknown or already used device code.

An approved grant is handed out once and then forgotten.
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
MAX_PENDING = 10_000

PollError = Literal["authorization_pending", "slow_down", "access_denied", "expired_token", "invalid_grant"]
Status = Literal["pending", "approved", "denied"]


@dataclass
class Approval:
    """What the browser leg established: who signed in, their key, the IdP's refresh token."""

    identity: Identity
    key_id: str
    idp_refresh_token: str | None = field(repr=False)


@dataclass
class Grant:
    user_code: str
    expires_at: float
    interval: int
    last_poll: float | None = None
    status: Status = "pending"
    approval: Approval | None = None


def normalize_user_code(text: str) -> str | None:
    """``tvnn qpqn`` / ``TVNN-QPQN`` -> ``TVNN-QPQN``; None if it cannot be a user code."""
    letters = "".join(ch for ch in text.upper() if ch.isalnum())
    if len(letters) != 8 or any(ch not in USER_CODE_ALPHABET for ch in letters):
        return None
    return f"{letters[:4]}-{letters[4:]}"


def _digest(device_code: str) -> bytes:
    return hashlib.sha256(device_code.encode()).digest()


class DeviceGrants:
    def __init__(self, clock: Callable[[], float], *, ttl: int = DEVICE_TTL, interval: int = POLL_INTERVAL,
                 max_pending: int = MAX_PENDING) -> None:
        self._clock = clock
        self.ttl = ttl
        self.interval = interval
        self._max = max_pending
        self._by_device: dict[bytes, Grant] = {}
        self._by_user: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._by_device)

    def start(self) -> tuple[str, Grant] | None:
        """A new grant and its device code; None when too many are pending (try later)."""
        self._prune()
        if len(self._by_device) >= self._max:
            return None
        device_code = secrets.token_urlsafe(32)
        while True:
            user_code = normalize_user_code("".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8)))
            assert user_code is not None
            if user_code not in self._by_user:
                break
        grant = Grant(user_code, self._clock() + self.ttl, self.interval)
        self._by_device[_digest(device_code)] = grant
        self._by_user[user_code] = _digest(device_code)
        return device_code, grant

    def by_user_code(self, text: str) -> Grant | None:
        """The pending grant for a user code typed in the browser, or None."""
        code = normalize_user_code(text)
        digest = self._by_user.get(code) if code else None
        grant = self._by_device.get(digest) if digest else None
        if grant is None or grant.status != "pending" or self._clock() >= grant.expires_at:
            return None
        return grant

    def approve(self, grant: Grant, approval: Approval) -> bool:
        if grant.status != "pending" or self._clock() >= grant.expires_at:
            return False
        grant.status, grant.approval = "approved", approval
        return True

    def deny(self, grant: Grant) -> None:
        if grant.status == "pending":
            grant.status = "denied"

    def poll(self, device_code: str) -> Approval | PollError:
        digest = _digest(device_code)
        grant = self._by_device.get(digest)
        if grant is None:
            return "invalid_grant"
        now = self._clock()
        if now >= grant.expires_at:
            self._forget(digest, grant)
            return "expired_token"
        if grant.status == "denied":
            self._forget(digest, grant)
            return "access_denied"
        if grant.status == "approved" and grant.approval is not None:
            self._forget(digest, grant)  # single use
            return grant.approval
        # One second of slack: a client polling exactly every `interval` s jitters around it.
        too_soon = grant.last_poll is not None and now - grant.last_poll < grant.interval - 1
        grant.last_poll = now
        if too_soon:
            grant.interval += SLOW_DOWN_STEP
            return "slow_down"
        return "authorization_pending"

    def _forget(self, digest: bytes, grant: Grant) -> None:
        self._by_device.pop(digest, None)
        self._by_user.pop(grant.user_code, None)

    def _prune(self) -> None:
        now = self._clock()
        for digest, grant in list(self._by_device.items()):
            if now >= grant.expires_at + 60:  # kept a minute so a late poll hears expired_token
                self._forget(digest, grant)
