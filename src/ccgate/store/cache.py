"""``KeyCache``: issued keys in memory, so authenticating a request never touches the disk.

``authenticate(token)`` hashes the token once and does one dict lookup by SHA-256 digest.
That is the constant-time comparison: the dict compares digests, not the token, and an
attacker cannot steer which digest their guess lands next to, so response time tells them
nothing about how close a guess is (the same reasoning as ``server/auth.py``).

Freshness: changes made in this process (the admin API) are applied directly with
``apply(key)``. Changes made elsewhere (``ccgate keys`` in a shell, another replica) are found
by polling ``store.keys_version()`` - one indexed row - at most every ``poll_interval``
seconds, from inside ``authenticate``; only when it moved are the keys re-read. Revocation
therefore takes effect in other processes within about a second. If the store cannot be read
the cache keeps serving what it has and logs a warning, rather than failing every request.

With a remote store (PostgreSQL, ``store.remote``) a poll is a network round trip, which must
never run on the event loop: ``start_refresher()`` moves polling to a daemon thread, and the
lookups only read the dicts it swaps in. While the store is unreachable the cache keeps what it
has; the outage is logged once when it starts and once when it ends, not every second.

Revocation, expiry and the end of a rotation grace period are checked against ``clock()`` on
every call, so they take effect on time even without a reload.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ccgate.store.base import IssuedKey, KeyStore, StoreError
from ccgate.store.keys import SECRET_PREFIX, digest

log = logging.getLogger("ccgate.store")

Verdict = Literal["ok", "unknown", "revoked", "expired", "grace_over"]


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """Why a token was accepted or refused; ``key`` is set whenever the token is one of ours."""

    verdict: Verdict
    key: IssuedKey | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


_UNKNOWN = KeyCheck("unknown")
_SECRET_PREFIX = SECRET_PREFIX.encode()


class KeyCache:
    def __init__(
        self, store: KeyStore, *, clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic, poll_interval: float = 1.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self._poll_interval = poll_interval
        # digest -> (key, True if this is the old secret of a rotation, the key's "ok" verdict:
        # made once, not per request)
        self._by_digest: dict[bytes, tuple[IssuedKey, bool, KeyCheck]] = {}
        self._by_id: dict[str, IssuedKey] = {}  # for sessions that name their key (login/)
        self._version: int | None = None
        self._next_poll = float("-inf")
        self._failing = False
        self._refresher: threading.Thread | None = None
        self._stop = False
        self._wake = threading.Event()  # set: poll now (stop, or another process changed keys)
        # Called after ``apply``: tells other gateway processes to re-read (server/shared_link.py).
        self.on_change: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._by_digest)

    # Lookups (hot path) ------------------------------------------------------------------

    def check(self, token: str | bytes, token_digest: bytes | None = None) -> KeyCheck:
        """``token_digest``: its SHA-256 digest, when the caller has it already (one hash per
        request, not two)."""
        self.poll()
        raw = token.encode() if isinstance(token, str) else token
        if not raw.startswith(_SECRET_PREFIX):
            return _UNKNOWN
        hit = self._by_digest.get(token_digest if token_digest is not None else digest(raw))
        if hit is None:
            return _UNKNOWN
        key, is_old, ok = hit
        now = self._clock()
        if key.revoked_at is not None:
            return KeyCheck("revoked", key)
        if key.expires_at is not None and now >= key.expires_at:
            return KeyCheck("expired", key)
        if is_old and (key.grace_until is None or now >= key.grace_until):
            return KeyCheck("grace_over", key)
        return ok

    def by_id(self, key_id: str) -> IssuedKey | None:
        """The key with this id as last read (revoked and expired ones included); no disk I/O."""
        self.poll()
        return self._by_id.get(key_id)

    def authenticate(self, token: str | bytes) -> IssuedKey | None:
        """The key this token belongs to if it may be used now, else None."""
        result = self.check(token)
        return result.key if result.ok else None

    # Freshness ---------------------------------------------------------------------------

    def poll(self) -> None:
        """Reload if another process changed the keys; costs nothing between polls (and
        nothing at all when the refresher thread polls instead)."""
        now = self._monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + self._poll_interval
        self._refresh()

    def _refresh(self) -> None:
        try:
            if self._store.keys_version() != self._version:
                self.reload()
        except StoreError as exc:
            if not self._failing:
                self._failing = True
                log.warning("cannot refresh issued keys (serving the %d cached ones until the store is "
                            "back): %s", len(self._by_id), exc)
            return
        if self._failing:
            self._failing = False
            log.warning("issued keys can be refreshed again; the store is back")

    def start_refresher(self) -> None:
        """Poll from a daemon thread from now on (remote stores); ``poll()`` becomes a no-op."""
        if self._refresher is not None:
            return
        self._next_poll = float("inf")
        self._refresher = threading.Thread(target=self._refresh_loop, name="ccgate-key-refresh", daemon=True)
        self._refresher.start()

    def stop_refresher(self) -> None:
        self._stop = True
        self._wake.set()

    def _refresh_loop(self) -> None:
        while True:
            self._wake.wait(self._poll_interval)
            self._wake.clear()
            if self._stop:
                return
            self._refresh()

    def reload(self) -> None:
        """Read every key. The version is read first: a change racing with the read bumps it
        again, so the next poll reloads instead of keeping a stale view."""
        version = self._store.keys_version()
        keys = self._store.list_keys()
        table: dict[bytes, tuple[IssuedKey, bool, KeyCheck]] = {}
        for key in keys:
            self._index(table, key)
        self._by_digest = table  # one reference swap: a concurrent lookup sees old or new
        self._by_id = {key.id: key for key in keys}
        self._version = version
        if self._refresher is None:
            self._next_poll = self._monotonic() + self._poll_interval

    def apply(self, key: IssuedKey) -> None:
        """Take a change made in this process into account at once (admin API)."""
        table = {d: hit for d, hit in self._by_digest.items() if hit[0].id != key.id}
        self._index(table, key)
        self._by_digest = table
        self._by_id = {**self._by_id, key.id: key}
        if self._refresher is not None:
            # A reload in the refresher thread may have raced with this swap and lost; the
            # next poll reads everything again rather than trust the merge.
            self._version = None
        if self.on_change is not None:
            self.on_change()

    def invalidate(self) -> None:
        """Another process changed the keys: read them again now (the refresher thread) or on
        the next lookup."""
        self._version = None
        if self._refresher is not None:
            self._wake.set()
        else:
            self._next_poll = float("-inf")

    @staticmethod
    def _index(table: dict[bytes, tuple[IssuedKey, bool, KeyCheck]], key: IssuedKey) -> None:
        ok = KeyCheck("ok", key)
        table[key.digest] = (key, False, ok)
        if key.old_digest is not None:
            table[key.old_digest] = (key, True, ok)
