"""What a key and usage store is, independent of where it keeps its data.

``SQLiteStore`` (``store/sqlite.py``) is the embedded implementation. A PostgreSQL (+ Redis
for the change signal) backend only has to provide these methods; everything above them
(``KeyManager``, ``KeyCache``, ``UsageRecorder``, the CLI and the admin API) is written
against the protocols here and does not know which backend it talks to.

Backends persist; they do not generate secrets, parse durations or validate names. That lives
once in ``store/keys.py`` so every backend behaves the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal, Protocol

KeyStatus = Literal["active", "rotating", "expired", "revoked"]
GroupBy = Literal["key", "model", "provider", "session"]
GROUP_BY: tuple[GroupBy, ...] = ("key", "model", "provider", "session")


# Errors ------------------------------------------------------------------------------------
# Messages are safe to show to the user: they name keys by name/id, never by secret.


class StoreError(Exception):
    """The store cannot do what was asked (I/O, lock, corrupt or unknown file)."""


class StoreUnavailable(StoreError):
    """The store's server cannot be reached now (PostgreSQL down, pool exhausted, timeout).
    Transient: the caller may serve on from memory and try again later."""


class StoreMissing(StoreError):
    """The database file does not exist and the caller asked not to create it."""


class InvalidInput(StoreError, ValueError):
    """A name, glob, limit or duration is not acceptable; nothing was changed."""


class KeyNotFound(StoreError):
    """No issued key with that id (or name)."""


class KeyConflict(StoreError):
    """The change contradicts the key's state: duplicate name, already revoked, expired."""


class DuplicateKeyName(KeyConflict):
    pass


# Records -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A client key ccgate issued. Times are Unix seconds (UTC); None means "never".

    ``digest`` is SHA-256 of the current secret; during a rotation grace period
    ``old_digest`` still authenticates until ``grace_until``. Digests are not secrets, but
    they stay out of ``repr`` and out of every listing anyway.
    """

    id: str
    name: str
    prefix: str  # "ccg_" + the first 8 characters of the secret: enough to recognise it
    models: tuple[str, ...]  # fnmatch globs; empty = every model
    rpm: int | None
    tpm: int | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    digest: bytes = field(repr=False)
    old_digest: bytes | None = field(default=None, repr=False)
    grace_until: float | None = None
    # Spending caps in USD per UTC day / calendar month (None: no cap); see store/budget.py.
    budget_day: float | None = None
    budget_month: float | None = None

    def status(self, now: float) -> KeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        if self.old_digest is not None and self.grace_until is not None and now < self.grace_until:
            return "rotating"
        return "active"

    def allows_model(self, model: str) -> bool:
        return not self.models or any(fnmatchcase(model, glob) for glob in self.models)


@dataclass(slots=True)
class UsageRow:
    """One request through the gateway. One row per request, so COUNT(*) is the request count.

    Not frozen: a frozen dataclass sets each of its 18 fields through ``object.__setattr__``,
    ~1.8 µs more per request on the event loop (issue 20). Nothing changes a row once
    ``UsageRecorder.record`` has it, except the writer thread filling in ``cost_usd``.

    ``key_id`` is ``IssuedKey.id`` for issued keys; the gateway may use another label (e.g.
    ``config:<name>`` for a token from the config file) or None when auth is off.
    ``model`` is the model the client asked for; ``provider`` the one that served it.
    """

    ts: float
    status: int
    key_id: str | None = None
    model: str | None = None
    provider: str | None = None
    session_id: str | None = None  # Claude Code's x-claude-code-session-id
    request_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0  # all cache writes, 5-minute and 1-hour TTL together
    cache_write_1h_tokens: int = 0  # the part of cache_creation_tokens with the 1-hour TTL
    # The model name the provider was sent (a route may rewrite it), for the price lookup;
    # not stored. ``cost_usd`` is filled in by the usage writer thread (store/cost.py), None
    # when the model is unpriced.
    upstream_model: str | None = None
    cost_usd: float | None = None
    # For the request log (the console's Requests page), written with the usage row in the
    # same batch: milliseconds from arrival to the end of the answer, the attempt trail when
    # there was more than one ("lab#0 529, lab#1 200"), and the error the client was told.
    latency_ms: float | None = None
    attempts: str | None = None
    error: str | None = None
    # Refused before any provider was tried (bad gateway key, rate limit, bad body): the
    # request log shows it, usage does not count it.
    log_only: bool = False


@dataclass(frozen=True, slots=True)
class RequestLogPolicy:
    """``store.request_log``: whether ``add_usage`` also writes the request log, and its bounds."""

    enabled: bool = True
    retention_seconds: float = 7 * 86400
    max_rows: int = 100_000


@dataclass(frozen=True, slots=True)
class RequestEntry:
    """One row of the request log, as the console lists it (``key_name``: the issued key's name)."""

    id: int
    ts: float
    request_id: str | None
    key_id: str | None
    key_name: str | None
    model: str | None
    provider: str | None
    session_id: str | None
    status: int
    latency_ms: float | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    attempts: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """What the Requests page narrows the log to; None means any. ``errors``: status >= 400 only."""

    key: str | None = None
    model: str | None = None
    provider: str | None = None
    status: int | None = None
    errors: bool = False
    limit: int = 100


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """Usage totals of one time bucket (``bucket``: its start, Unix seconds) for one group."""

    bucket: float
    group: str | None
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """Totals for one value of the grouping column (``group`` None: not recorded)."""

    group: str | None
    label: str | None  # by key: the key's name when the id is an issued key
    requests: int
    errors: int  # status >= 400 (499: the client went away)
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    first_ts: float
    last_ts: float
    cache_write_1h_tokens: int = 0  # the 1-hour part of cache_creation_tokens
    cost_usd: float = 0.0  # of the priced rows
    unpriced: int = 0  # rows that used tokens on a model without a price: their cost is unknown


# Protocols ---------------------------------------------------------------------------------


class KeyStore(Protocol):
    def add_key(self, key: IssuedKey) -> None:
        """Insert; DuplicateKeyName if an unrevoked key already has that name."""

    def get_key(self, key_id: str) -> IssuedKey | None: ...

    def keys_named(self, name: str) -> list[IssuedKey]:
        """Every key with that name, newest first (revoked ones keep their name)."""

    def list_keys(self) -> list[IssuedKey]:
        """All keys, revoked and expired included, oldest first."""

    def revoke_key(self, key_id: str, at: float) -> IssuedKey:
        """Mark revoked (the old digest goes too). KeyNotFound / KeyConflict if already revoked."""

    def rotate_key(
        self, key_id: str, *, expected_digest: bytes, digest: bytes, prefix: str,
        old_digest: bytes | None, grace_until: float | None,
    ) -> IssuedKey:
        """Swap in a new digest if the current one is still ``expected_digest``.

        Compare-and-swap so two concurrent rotations cannot both hand out a working secret;
        the loser gets KeyConflict.
        """

    def set_key_budget(self, key_id: str, *, day: float | None, month: float | None) -> IssuedKey:
        """Replace both budgets of an unrevoked key (None: no cap). KeyNotFound / KeyConflict."""

    def keys_version(self) -> int:
        """A number that changes whenever any key changes, in any process. Must be cheap:
        ``KeyCache`` polls it about once a second."""


class UsageStore(Protocol):
    def add_usage(self, rows: Sequence[UsageRow]) -> None:
        """Commit all rows in one transaction; when this returns they are durable.

        A batch identical to one committed in the last day counts as a retry of it and writes
        nothing (PostgreSQL, where a COMMIT's answer can be lost with the connection)."""

    def usage_summary(self, *, since: float | None, by: GroupBy) -> list[UsageGroup]:
        """Totals per group for rows with ``ts >= since``, most tokens first."""

    def spend_by_key(self, since: float) -> dict[str, float]:
        """USD per key id (priced rows only) for rows with ``ts >= since``: what the budget
        tracker starts from. A backend sums in one query; an index on ``ts`` keeps it cheap."""


class RequestLogStore(Protocol):
    def set_request_log(self, policy: RequestLogPolicy | None, *, usage: bool = True) -> None:
        """What ``add_usage`` writes from now on: usage rows (``usage``), request log rows
        (``policy`` enabled), and the log's bounds, applied after writes (about once a minute)."""

    def recent_requests(self, where: RequestFilter) -> list[RequestEntry]:
        """The newest request log rows matching ``where``, newest first."""

    def usage_series(self, *, since: float, bucket: int, by: GroupBy | None) -> list[UsagePoint]:
        """Usage per ``bucket`` seconds since ``since``, per group (``by``) or in total."""

    def last_success(self, since: float) -> dict[str, float]:
        """Per provider, the time of its last answer with a status below 400 (after ``since``),
        from the request log (empty while it is off)."""


class Store(KeyStore, UsageStore, RequestLogStore, Protocol):
    @property
    def location(self) -> str:
        """Where the data lives, for messages (a path or a URL without credentials)."""

    @property
    def remote(self) -> bool:
        """True when a call goes over the network (PostgreSQL): the gateway then keeps every
        store call off the event loop, the key cache's change poll included."""

    def health(self) -> dict[str, object]:
        """What /readyz tells the admin about the store (no credentials); never blocks."""

    def close(self) -> None: ...
