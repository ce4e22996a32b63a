"""Classify what one upstream attempt produced, so the planner, the key pool and the breaker
can act on it. Pure: an answer's status, headers and the head of its body (or the transport
error) in, an ``Outcome`` out. The full table is in docs/routing.md.

Four questions are answered for every attempt:

* ``retryable``: may the same provider be tried again (after a backoff)?
* ``failover``: if not (or once retries are spent), may another key (``KEY``) or another
  provider (``PROVIDER``) help, or is this answer final for the client (``NONE``)?
* ``trips_breaker``: does it count against the provider's health?
* ``key_action``: should the key that was used cool down or be taken out?
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import msgspec

from ccgate.config.secrets import mask
from ccgate.errors import ClientError, GatewayError, UpstreamError, UpstreamTimeout
from ccgate.routing.clock import SYSTEM_CLOCK, Clock

# A key that answered 429 without saying for how long rests this many seconds.
RATE_LIMIT_COOLDOWN = 10.0
# A key whose account is out of credit or misconfigured on a relay rests this long: it may
# be topped up or fixed, so it is not taken out for good, but it must not be hammered.
ACCOUNT_COOLDOWN = 300.0
# Only this much of an error body is inspected.
BODY_HEAD_LIMIT = 4096


class OutcomeKind(StrEnum):
    """A stable label per outcome, fit for a metrics label or a log field."""

    SUCCESS = "success"
    CLIENT_ERROR = "client_error"  # the request itself is at fault: 400, 404, 413, 422 ...
    AUTH_ERROR = "auth_error"  # the credential: 401, 403 permission_error
    ACCOUNT_ERROR = "account_error"  # billing, credit, region block, relay account config
    RATE_LIMITED = "rate_limited"  # 429
    CONFLICT = "conflict"  # 409
    TIMEOUT = "timeout"  # 408, 504, our own connect/read timeouts
    OVERLOADED = "overloaded"  # 529, 503
    SERVER_ERROR = "server_error"  # other 5xx
    CONNECT_ERROR = "connect_error"  # DNS, TCP, proxy, TLS: no HTTP answer from the provider


class Failover(StrEnum):
    NONE = "none"  # the answer is final: relay it
    KEY = "key"  # another key of the same provider may succeed
    PROVIDER = "provider"  # only another provider may succeed


@dataclass(frozen=True, slots=True)
class KeyAction:
    kind: Literal["none", "cooldown", "disable"] = "none"
    seconds: float = 0.0
    reason: str = ""

    @staticmethod
    def cooldown(seconds: float, reason: str) -> KeyAction:
        return KeyAction("cooldown", max(0.0, seconds), reason)

    @staticmethod
    def disable(reason: str) -> KeyAction:
        return KeyAction("disable", 0.0, reason)


NO_KEY_ACTION = KeyAction()


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    retryable: bool
    trips_breaker: bool
    failover: Failover
    key_action: KeyAction = NO_KEY_ACTION
    retry_after: float | None = None  # seconds, from the upstream's headers
    status: int | None = None  # the upstream's HTTP status, None for a transport error
    reason: str = ""  # short and secret-free: "529 overloaded_error", "connect error (tls)"
    error: GatewayError | None = None  # the transport error, when there was no answer

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.SUCCESS


SUCCESS = Outcome(OutcomeKind.SUCCESS, retryable=False, trips_breaker=False, failover=Failover.NONE)
_SUCCESSES: dict[int, Outcome] = {}

_REGION = ("request not allowed", "unsupported_country_region_territory", "request_forbidden",
           "country, region, or territory not supported", '"type":"forbidden"', '"type": "forbidden"')
_BILLING = ("billing_error", "credit balance is too low", "insufficient_quota", "insufficient balance",
            "insufficient_balance", "exceeded your current quota", "payment required", "额度", "余额")
_RELAY_ACCOUNT = ("new_api_error", "one_api_error", "分组", "已被弃用", "已被禁用")
_MODERATION = ("flagged", "moderation")
# Statuses that never help on a retry and say nothing about the provider's health.
_NOT_IMPLEMENTED = frozenset({501, 505})
_SECRETISH = re.compile(r"\b(?:sk|ak|rk|pk)-[A-Za-z0-9_\-]{6,}|[A-Za-z0-9_\-]{32,}")


def classify(
    status: int | None,
    error: GatewayError | None,
    headers: Mapping[str, str],
    body_head: bytes = b"",
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> Outcome:
    """Classify one attempt: either an HTTP answer (``status``, ``headers``, the first bytes of
    its body) or a transport ``error`` (which wins when both are given)."""
    if error is not None:
        return _classify_error(error)
    if status is None:
        raise ValueError("classify() needs a status or an error")
    if status < 400:
        ok = _SUCCESSES.get(status)
        if ok is None:
            ok = _SUCCESSES[status] = dataclasses.replace(SUCCESS, status=status, reason=str(status))
        return ok
    h = {k.lower(): v for k, v in headers.items()}
    retry_after = parse_retry_after(h, clock)
    etype, message, text = _read_body(body_head)
    label = f"{status} {etype}" if etype else str(status)
    detail = f"{label}: {_scrub(message)}" if message else label

    if "x-squid-error" in h or status == 407:
        # An HTTP proxy on the way answered, not the provider: the network path is broken.
        return Outcome(OutcomeKind.CONNECT_ERROR, retryable=False, trips_breaker=True,
                       failover=Failover.PROVIDER, status=status,
                       reason=f"{status} from a proxy ({h.get('x-squid-error', 'proxy')})")
    if status in (400, 401, 402, 403, 429) and (status == 402 or _has(text, _BILLING)):
        return _account(status, detail, retry_after, KeyAction.cooldown(ACCOUNT_COOLDOWN, detail))
    if status == 403:
        if etype == "forbidden" or _has(text, _REGION):
            # Geo block: every key fails alike, the key is not at fault; another provider may work.
            return _account(status, f"403 region blocked ({_scrub(message) or 'forbidden'})",
                            retry_after, NO_KEY_ACTION)
        if _has(text, _RELAY_ACCOUNT):
            return _account(status, detail, retry_after, KeyAction.cooldown(ACCOUNT_COOLDOWN, detail))
        if not _has(text, _MODERATION):
            return Outcome(OutcomeKind.AUTH_ERROR, retryable=False, trips_breaker=False,
                           failover=Failover.KEY, key_action=KeyAction.disable(detail),
                           retry_after=retry_after, status=status, reason=detail)
    if status == 401:
        return Outcome(OutcomeKind.AUTH_ERROR, retryable=False, trips_breaker=False,
                       failover=Failover.KEY, key_action=KeyAction.disable(detail),
                       retry_after=retry_after, status=status, reason=detail)

    outcome = _by_status(status, h, retry_after, detail, clock)
    should = h.get("x-should-retry", "").strip().lower()
    if should in ("true", "false"):
        outcome = dataclasses.replace(outcome, retryable=should == "true")
    return outcome


def _by_status(status: int, h: dict[str, str], retry_after: float | None, reason: str,
               clock: Clock) -> Outcome:
    if status == 429:
        cool = retry_after if retry_after is not None else _ratelimit_reset(h, clock)
        action = KeyAction.cooldown(cool if cool is not None else RATE_LIMIT_COOLDOWN, reason)
        return Outcome(OutcomeKind.RATE_LIMITED, retryable=True, trips_breaker=False,
                       failover=Failover.PROVIDER, key_action=action, retry_after=retry_after,
                       status=status, reason=reason)
    if status == 409:
        return Outcome(OutcomeKind.CONFLICT, retryable=True, trips_breaker=False,
                       failover=Failover.PROVIDER, retry_after=retry_after, status=status, reason=reason)
    if status in (408, 504):
        kind = OutcomeKind.TIMEOUT
    elif status in (503, 529):
        kind = OutcomeKind.OVERLOADED
    elif status >= 500 and status not in _NOT_IMPLEMENTED:
        kind = OutcomeKind.SERVER_ERROR
    else:  # 400, 404, 405, 413, 422, 501 ...: the request, as sent, will not succeed anywhere
        return Outcome(OutcomeKind.CLIENT_ERROR, retryable=False, trips_breaker=False,
                       failover=Failover.NONE, retry_after=retry_after, status=status, reason=reason)
    return Outcome(kind, retryable=True, trips_breaker=True, failover=Failover.PROVIDER,
                   retry_after=retry_after, status=status, reason=reason)


def _classify_error(err: GatewayError) -> Outcome:
    if isinstance(err, UpstreamError):
        kind = OutcomeKind.TIMEOUT if isinstance(err, UpstreamTimeout) else OutcomeKind.CONNECT_ERROR
        # A certificate or handshake failure repeats identically on every try.
        retryable = err.retryable and err.hop != "tls"
        # The gateway's own connection pool was full: ccgate is saturated, not the provider.
        trips = err.hop != "pool"
        return Outcome(kind, retryable=retryable, trips_breaker=trips, failover=Failover.PROVIDER,
                       reason=f"{kind.value} ({err.hop})", error=err)
    kind = OutcomeKind.CLIENT_ERROR if isinstance(err, ClientError) else OutcomeKind.SERVER_ERROR
    # Raised by ccgate itself, not by the provider: neither retried nor held against it.
    return Outcome(kind, retryable=False, trips_breaker=False, failover=Failover.NONE,
                   reason=f"{err.status} {err.error_type}", error=err)


def _account(status: int, reason: str, retry_after: float | None, action: KeyAction) -> Outcome:
    return Outcome(OutcomeKind.ACCOUNT_ERROR, retryable=False, trips_breaker=False,
                   failover=Failover.PROVIDER, key_action=action, retry_after=retry_after,
                   status=status, reason=reason)


def _has(text: str, markers: tuple[str, ...]) -> bool:
    return any(m in text for m in markers)


def _read_body(head: bytes) -> tuple[str, str, str]:
    """(error type, message, lowercased text) of an error body; the JSON may be cut short."""
    head = head[:BODY_HEAD_LIMIT]
    text = head.decode("utf-8", "replace")
    etype = message = ""
    try:
        doc: Any = msgspec.json.decode(head)
    except msgspec.DecodeError:
        doc = None
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict):
            etype = _str(err.get("type")) or _str(err.get("code"))
            message = _str(err.get("message"))
        elif isinstance(err, str):
            message = err
        message = message or _str(doc.get("message")) or _str(doc.get("detail"))
    return etype, message.replace("\n", " ")[:200], text.lower()


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _scrub(text: str) -> str:
    """Upstream messages may quote a key (OpenAI does, masked; some relays do not)."""
    return _SECRETISH.sub(lambda m: mask(m.group(0)), text)


def parse_retry_after(headers: Mapping[str, str], clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (preferred, like the Anthropic SDK), else
    ``retry-after`` as seconds (fractions allowed) or an HTTP-date. ``headers`` must have
    lowercase names. Unparseable or negative values give None / 0."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        value = _float(ms)
        if value is not None:
            return max(0.0, value / 1000.0)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    value = _float(raw)
    if value is not None:
        return max(0.0, value)
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - clock.time())


def _float(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_RATELIMIT_FAMILIES = ("requests", "tokens", "input-tokens", "output-tokens")


def _ratelimit_reset(h: Mapping[str, str], clock: Clock) -> float | None:
    """Seconds until the exhausted ``anthropic-ratelimit-*`` limit resets (the latest one when
    several are exhausted), when a 429 carries no ``retry-after``."""
    waits: list[float] = []
    for family in _RATELIMIT_FAMILIES:
        if h.get(f"anthropic-ratelimit-{family}-remaining", "").strip() != "0":
            continue
        reset = h.get(f"anthropic-ratelimit-{family}-reset")
        if not reset:
            continue
        try:
            when = datetime.fromisoformat(reset.strip())
        except ValueError:
            continue
        if when.tzinfo is not None:
            waits.append(max(0.0, when.timestamp() - clock.time()))
    return max(waits) if waits else None
