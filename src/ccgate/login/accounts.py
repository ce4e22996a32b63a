"""Each signed-in developer is an issued key in the store, so usage rows, limits, ``ccgate
keys``/``usage`` and the console see them like any key.

The key is named ``login-<email or sub>`` and reused at every sign-in while it is active, so
limits an admin set on it (models, rpm, tpm) persist and usage adds up per developer. Its
secret is generated and thrown away: the developer holds JWTs that name the key, never the
key's own secret. Revoking it (``ccgate keys revoke login-alice@example.com``) refuses that
developer's next request and their next refresh; a later /login through the IdP creates a new
key (to keep someone out, remove them at the IdP or from ``allowed_email_domains``).

Store calls are blocking; the server runs them in a thread (sign-in only, never per request).
"""

from __future__ import annotations

import re
import time

from ccgate.login.tokens import Identity
from ccgate.store import DuplicateKeyName, IssuedKey, KeyCache, KeyManager, Store

PREFIX = "login-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")


def key_name(identity: Identity) -> str:
    """``login-alice@example.com``, within the store's name rules (64 chars, safe characters)."""
    who = identity.email or identity.sub
    return (PREFIX + _UNSAFE.sub("_", who))[:64]


class DeveloperKeys:
    def __init__(self, store: Store, cache: KeyCache | None) -> None:
        self._keys = KeyManager(store)
        self._store = store
        self._cache = cache

    def key_for(self, identity: Identity) -> IssuedKey:
        """The developer's active key, created on their first sign-in (or after a revocation)."""
        name = key_name(identity)
        existing = self._active_named(name)
        if existing is not None:
            return existing
        try:
            key, _secret = self._keys.create(name)  # the secret is never used: JWTs name the key
        except DuplicateKeyName:
            # Another process (worker, replica) created it between our read and our write:
            # the name is unique among unrevoked keys, so theirs is the one.
            existing = self._active_named(name)
            if existing is None:
                raise
            return existing
        if self._cache is not None:
            self._cache.apply(key)
        return key

    def _active_named(self, name: str) -> IssuedKey | None:
        now = time.time()
        for key in self._store.keys_named(name):
            if key.status(now) in ("active", "rotating"):
                return key
        return None

    def active(self, key_id: str) -> IssuedKey | None:
        """The key if it may still be used, from the in-memory cache (no store read)."""
        key = self._cache.by_id(key_id) if self._cache is not None else None
        if key is None or key.status(time.time()) not in ("active", "rotating"):
            return None
        return key
