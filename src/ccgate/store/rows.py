"""What both SQL backends share: column lists, the request log's select and filter, and rows
read back into records. The SQL here is the dialect-neutral part; each backend keeps what
differs (placeholders, bulk writes, functions like ``floor``/``CAST``) in its own module."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from ccgate.store.base import GroupBy, IssuedKey, RequestEntry, RequestFilter, UsageRow

KEY_COLUMNS = (
    "id, name, prefix, models, rpm, tpm, created_at, expires_at, revoked_at, digest, old_digest, grace_until, "
    "budget_day, budget_month"
)
GROUP_COLUMN: dict[GroupBy, str] = {
    "key": "u.key_id", "model": "u.model", "provider": "u.provider", "session": "u.session_id",
}
LOG_SELECT = ("SELECT r.id, r.ts, r.request_id, r.key_id, k.name, r.model, r.provider, r.session_id, "
              "r.status, r.latency_ms, r.input_tokens, r.output_tokens, r.cache_read_tokens, "
              "r.cache_creation_tokens, r.attempts, r.error FROM request_log r "
              "LEFT JOIN keys k ON k.id = r.key_id")
# A row that used tokens (one without any costs nothing, priced or not).
USED_TOKENS = "(u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_creation_tokens) > 0"
# Seconds between two prunes of the request log (run by the writer after a commit).
PRUNE_EVERY = 60.0



def request_log_where(where: RequestFilter, mark: str) -> tuple[str, list[object]]:
    """`` WHERE ...`` (or nothing) for the console's Requests filter, and its parameters;
    ``mark`` is the backend's placeholder (``?`` or ``%s``). Column names come from this
    fixed list only, never from the caller."""
    clauses: list[str] = []
    params: list[object] = []
    for column, value in (("r.model", where.model), ("r.provider", where.provider),
                          ("r.status", where.status)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if where.key is not None:
        clauses.append(f"(r.key_id = {mark} OR k.name = {mark})")
        params += [where.key, where.key]
    if where.errors:
        clauses.append("r.status >= 400")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def request_log_limit(where: RequestFilter) -> int:
    return max(1, min(where.limit, 1000))


def usage_values(r: UsageRow) -> tuple[object, ...]:
    return (r.ts, r.key_id, r.model, r.provider, r.session_id, r.request_id, r.status,
            r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_creation_tokens,
            r.cache_write_1h_tokens, r.cost_usd)


def entry(r: Sequence[object]) -> RequestEntry:
    def text(v: object) -> str | None:
        return None if v is None else str(v)

    return RequestEntry(
        id=opt_int(r[0]) or 0, ts=opt_float(r[1]) or 0.0, request_id=text(r[2]), key_id=text(r[3]),
        key_name=text(r[4]), model=text(r[5]), provider=text(r[6]), session_id=text(r[7]),
        status=opt_int(r[8]) or 0, latency_ms=opt_float(r[9]), input_tokens=opt_int(r[10]) or 0,
        output_tokens=opt_int(r[11]) or 0, cache_read_tokens=opt_int(r[12]) or 0,
        cache_creation_tokens=opt_int(r[13]) or 0, attempts=text(r[14]), error=text(r[15]),
    )


def opt_int(value: object) -> int | None:
    return None if value is None else int(cast(int, value))


def opt_float(value: object) -> float | None:
    return None if value is None else float(cast(float, value))


def opt_bytes(value: object) -> bytes | None:
    return None if value is None else bytes(cast(bytes, value))


def key_record(row: Sequence[object]) -> IssuedKey:
    (id_, name, prefix, models, rpm, tpm, created, expires, revoked, dig, old, grace, day, month) = row
    return IssuedKey(
        id=str(id_), name=str(name), prefix=str(prefix), models=tuple(json.loads(str(models))),
        rpm=opt_int(rpm), tpm=opt_int(tpm), created_at=float(cast(float, created)),
        expires_at=opt_float(expires), revoked_at=opt_float(revoked),
        digest=opt_bytes(dig) or b"", old_digest=opt_bytes(old), grace_until=opt_float(grace),
        budget_day=opt_float(day), budget_month=opt_float(month),
    )
