"""Issuing keys: secret format, hashing, and the operations the CLI and admin API share.

Format: ``ccg_`` + 43 url-safe characters (32 random bytes, 256 bits). Only SHA-256 of the
whole string is stored. A fast hash is the right one here: slow password hashes (bcrypt,
argon2) exist to make guessing *low-entropy* passwords expensive, but nobody can enumerate
2**256 secrets, so they would only add milliseconds to every request. A pepper would not
help either, for the same reason.

``prefix`` (``ccg_`` + the next 8 characters) is kept in clear so ``keys list`` can show which
key a user holds. It gives away 48 of the 256 bits; 208 remain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from ccgate.store.base import IssuedKey, KeyConflict, KeyNotFound, KeyStore
from ccgate.store.validate import check_budget, check_globs, check_limit, check_name

SECRET_PREFIX = "ccg_"
_SECRET_BYTES = 32
_SHOWN = 8  # characters of the secret kept in clear as the display prefix

Clock = Callable[[], float]


class Unset:
    """"Leave as it is" for an optional field of an update (None means "remove")."""

    __slots__ = ()


UNSET = Unset()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def digest(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(raw).digest()


def display_prefix(secret: str) -> str:
    return secret[: len(SECRET_PREFIX) + _SHOWN]


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def key_summary(key: IssuedKey, now: float) -> dict[str, Any]:
    """The public view of a key (CLI ``--json``, admin API). Never the secret or a digest."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "models": list(key.models),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "grace_until": iso(key.grace_until) if key.status(now) == "rotating" else None,
        "budget_day": key.budget_day,
        "budget_month": key.budget_month,
        "status": key.status(now),
    }


class KeyManager:
    """create / get / list / revoke / rotate on top of any ``KeyStore``.

    ``clock`` is injectable so tests can move time for expiry and grace periods.
    """

    def __init__(self, store: KeyStore, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock

    def create(
        self, name: str, *, models: list[str] | tuple[str, ...] = (), rpm: int | None = None,
        tpm: int | None = None, expires_in: float | None = None, budget_day: float | None = None,
        budget_month: float | None = None,
    ) -> tuple[IssuedKey, str]:
        """A new key and its secret. The secret exists only in the return value."""
        check_name(name)
        globs = check_globs(models)
        check_limit(rpm, "rpm")
        check_limit(tpm, "tpm")
        budget_day = check_budget(budget_day, "budget_day")
        budget_month = check_budget(budget_month, "budget_month")
        now = self.clock()
        secret = new_secret()
        key = IssuedKey(
            id=new_key_id(), name=name, prefix=display_prefix(secret), models=globs, rpm=rpm,
            tpm=tpm, created_at=now, expires_at=None if expires_in is None else now + expires_in,
            revoked_at=None, digest=digest(secret), budget_day=budget_day, budget_month=budget_month,
        )
        self.store.add_key(key)
        return key, secret

    def get(self, key_id: str) -> IssuedKey:
        key = self.store.get_key(key_id)
        if key is None:
            raise KeyNotFound(f"no key with id {key_id!r}")
        return key

    def resolve(self, ref: str) -> IssuedKey:
        """A key by id, else by name (the unrevoked one if the name was reused)."""
        if ref.startswith("key_"):
            return self.get(ref)
        named = self.store.keys_named(ref)
        if not named:
            raise KeyNotFound(f"no key with id or name {ref!r}; see 'ccgate keys list'")
        live = [k for k in named if k.revoked_at is None]
        return live[0] if live else named[0]

    def list_keys(self) -> list[IssuedKey]:
        return self.store.list_keys()

    def revoke(self, ref: str) -> IssuedKey:
        key = self.resolve(ref)
        if key.revoked_at is not None:
            raise KeyConflict(f"key {key.name} ({key.id}) was already revoked at {iso(key.revoked_at)}")
        return self.store.revoke_key(key.id, self.clock())

    def set_budget(self, ref: str, *, day: float | Unset | None = UNSET,
                   month: float | Unset | None = UNSET) -> IssuedKey:
        """Change a key's daily and/or monthly budget (None removes one; UNSET keeps it)."""
        key = self.resolve(ref)
        if key.revoked_at is not None:
            raise KeyConflict(f"key {key.name} ({key.id}) is revoked; its budget cannot change")
        new_day = key.budget_day if isinstance(day, Unset) else check_budget(day, "budget_day")
        new_month = key.budget_month if isinstance(month, Unset) else check_budget(month, "budget_month")
        return self.store.set_key_budget(key.id, day=new_day, month=new_month)

    def rotate(self, ref: str, *, grace: float | None = None) -> tuple[IssuedKey, str]:
        """A new secret for the key; the old one keeps working for ``grace`` seconds (or stops now).

        Only the secret just replaced gets a grace period: rotating twice in a row ends the
        first old secret at once.
        """
        key = self.resolve(ref)
        now = self.clock()
        status = key.status(now)
        if status == "revoked":
            raise KeyConflict(f"key {key.name} ({key.id}) is revoked; create a new key instead")
        if status == "expired":
            raise KeyConflict(f"key {key.name} ({key.id}) expired at {iso(key.expires_at)}; create a new key")
        secret = new_secret()
        rotated = self.store.rotate_key(
            key.id, expected_digest=key.digest, digest=digest(secret), prefix=display_prefix(secret),
            old_digest=key.digest if grace else None, grace_until=now + grace if grace else None,
        )
        return rotated, secret
