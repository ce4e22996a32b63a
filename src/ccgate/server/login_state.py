"""The /login and console sign-in records in the gateway's short-lived store
(``ccgate.shared.KV``: ``MemoryKV`` in one process, Redis or the workers' hub with more), so a
person's next request may be answered by any process.

The rules stay without I/O in ``ccgate.login`` (``DeviceGrants``, ``Flows``,
``RefreshFamilies``); the classes here load a record, apply the rules, and save what they say.
Keys name digests of secrets, never a secret (an operator can read Redis); values are JSON
(msgspec). One-time steps commit with ``kv_take``, so of two processes racing one wins:

* ``login:device:<sha256(device_code)>`` - a device code's polling state (10 min + 1);
* ``login:user:<user code>`` - which device code a user code belongs to (10 min); taken by
  Approve or Deny, so a user code is decided once;
* ``login:answer:<sha256(device_code)>`` - Approve's or Deny's result, taken by the CLI's poll
  (the token is issued once);
* ``<prefix>:<sha256(state)>`` - a browser flow (``login:flow`` for /login, ``console:flow``
  for the console; 10 min); the Approve/Continue post takes it;
* ``login:attempts:<what>:<address>`` - attempt counters (``Attempts``; 10 min);
* ``login:family:<sha256(family)>`` - the refresh-token numbers of a sign-in (a counter, 90
  days from the sign-in), ``login:family-newest:<…>`` - the newest number (90 days from the
  last refresh), ``login:family-end:<…>`` - the family was revoked.

Every method may raise ``SharedUnavailable``; the endpoints answer 503 for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

import msgspec

from ccgate.login.browser import Flow, Flows, Started
from ccgate.login.devicecode import (
    Answer,
    Approval,
    DeviceGrants,
    Grant,
    PollError,
    device_digest,
    new_user_code,
    normalize_user_code,
)
from ccgate.login.tokens import REFRESH_LIFETIME, RefreshFamilies, RefreshGrant
from ccgate.shared import KV

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


def _decode(raw: bytes | None, kind: type[T]) -> T | None:
    """A record, or None when absent or unreadable (written by another release: start over)."""
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError:
        return None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class DeviceStore:
    def __init__(self, kv: KV, rules: DeviceGrants) -> None:
        self.kv, self.rules = kv, rules

    @property
    def ttl(self) -> int:
        return self.rules.ttl

    async def start(self) -> tuple[str, Grant]:
        device_code, grant = self.rules.new()
        while await self.kv.kv_get(f"login:user:{grant.user_code}") is not None:  # 20**8 codes: rare
            grant.user_code = new_user_code()
        digest = device_digest(device_code)
        await self.kv.kv_put(f"login:device:{digest}", _encode(grant), self.rules.keep_for(grant))
        await self.kv.kv_put(f"login:user:{grant.user_code}", digest.encode(), self.rules.ttl)
        return device_code, grant

    async def pending(self, typed: str) -> str | None:
        """The user code typed in the browser if its grant is live and undecided, else None."""
        code = normalize_user_code(typed)
        if code is None:
            return None
        digest = await self.kv.kv_get(f"login:user:{code}")
        if digest is None:
            return None
        grant = _decode(await self.kv.kv_get(f"login:device:{digest.decode()}"), Grant)
        return code if self.rules.live(grant) else None

    async def decide(self, user_code: str, approval: Approval | None) -> bool:
        """Approve (``approval``) or deny (None) the grant of ``user_code``; False when it was
        decided already (by another browser or process), or has expired."""
        digest = await self.kv.kv_take(f"login:user:{user_code}")
        if digest is None:
            return False
        grant = _decode(await self.kv.kv_get(f"login:device:{digest.decode()}"), Grant)
        if grant is None or not self.rules.live(grant):
            return False
        left = grant.expires_at - self.rules.now()
        await self.kv.kv_put(f"login:answer:{digest.decode()}", _encode(Answer(approval)), left)
        return True

    async def poll(self, device_code: str) -> Approval | PollError:
        digest = device_digest(device_code)
        answer = _decode(await self.kv.kv_take(f"login:answer:{digest}"), Answer)
        grant = _decode(await self.kv.kv_get(f"login:device:{digest}"), Grant)
        result, keep = self.rules.poll(grant, answer)
        if keep is not None:
            await self.kv.kv_put(f"login:device:{digest}", _encode(keep), self.rules.keep_for(keep))
        elif grant is not None:
            await self.kv.kv_delete(f"login:device:{digest}")
            if isinstance(result, str):  # expired or denied: the user code goes too
                await self.kv.kv_delete(f"login:user:{grant.user_code}")
        return result


class FlowStore:
    """Browser flows under ``<prefix>:<sha256(state)>``."""

    def __init__(self, kv: KV, rules: Flows, prefix: str) -> None:
        self.kv, self.rules, self.prefix = kv, rules, prefix

    def _key(self, state: str) -> str:
        return f"{self.prefix}:{_hash(state)}"

    async def start(self, user_code: str) -> Started:
        started = self.rules.start(user_code)
        await self.kv.kv_put(self._key(started.state), _encode(started.flow), self.rules.ttl)
        return started

    async def get(self, state: str, browser: str | None) -> Flow | None:
        """The live flow named ``state`` if this browser started it."""
        if not state or len(state) > 128:
            return None
        return self.rules.usable(_decode(await self.kv.kv_get(self._key(state)), Flow), browser)

    async def save(self, state: str, flow: Flow) -> None:
        left = self.rules.remaining(flow)
        if left > 0:
            await self.kv.kv_put(self._key(state), _encode(flow), left)

    async def take(self, state: str) -> bool:
        """End the flow; True for the one caller that ended it (the others were too late)."""
        return await self.kv.kv_take(self._key(state)) is not None

    async def finish(self, state: str) -> None:
        await self.kv.kv_delete(self._key(state))


class FamilyStore:
    """The newest refresh-token number per sign-in (``RefreshFamilies``): an atomic counter that
    hands out the numbers, and a copy of the newest renewed at every refresh, so a sign-in in
    daily use is remembered as long as its newest token lives (the counter's time to live runs
    from the sign-in: a counter cannot be renewed atomically)."""

    def __init__(self, kv: KV, clock: Callable[[], float]) -> None:
        self.kv, self._now = kv, clock

    async def accepts(self, grant: RefreshGrant) -> bool:
        key = _hash(grant.family)
        if await self.kv.kv_get(f"login:family-end:{key}") is not None:
            return RefreshFamilies.accepts(None, True, grant.seq)
        known = [await self.kv.kv_get(f"login:{name}:{key}") for name in ("family", "family-newest")]
        numbers = [int(raw) for raw in known if raw is not None and raw.isdigit()]
        return RefreshFamilies.accepts(max(numbers) if numbers else None, False, grant.seq)

    async def issue(self, family: str, presented: int) -> int:
        """The number of a new refresh token of ``family`` (after one numbered ``presented``;
        0 for a new sign-in): one more than any handed out before, atomically."""
        key = _hash(family)
        seq = await self.kv.kv_incr(f"login:family:{key}", 1, REFRESH_LIFETIME)
        extra = RefreshFamilies.catch_up(seq, presented)
        if extra:
            seq = await self.kv.kv_incr(f"login:family:{key}", extra, REFRESH_LIFETIME)
        # Two refreshes racing may leave the copy one behind the counter: the counter is read too.
        await self.kv.kv_put(f"login:family-newest:{key}", str(seq).encode(), REFRESH_LIFETIME)
        return seq

    async def end(self, family: str, exp: float) -> None:
        left = exp - self._now()
        if left > 0:
            await self.kv.kv_put(f"login:family-end:{_hash(family)}", b"1", left)


class Attempts:
    """Attempt limits per client address (device authorizations, user-code guesses, console
    sign-ins): a fixed window per address started by the first attempt (``kv_incr``), counted
    in the records every process shares. "At most N tries per 10 minutes" needs no more; the
    records are bounded by the store (``MemoryKV`` evicts, Redis has its memory limit), so an
    attacker spreading over many addresses cannot grow memory."""

    def __init__(self, kv: KV, name: str, limit: int, window: float) -> None:
        self.kv = kv
        self.name = name  # the records' prefix, e.g. "login:attempts:device"
        self.limit = limit
        self.window = window

    def _key(self, who: str) -> str:
        return f"{self.name}:{who}"

    async def hit(self, who: str) -> bool:
        """Count one attempt; False when ``who`` is over the limit in this window."""
        return await self.kv.kv_incr(self._key(who), 1, self.window) <= self.limit

    async def allowed(self, who: str) -> bool:
        """Whether ``who`` is under the limit, without counting (failures are counted apart)."""
        raw = await self.kv.kv_get(self._key(who))
        return raw is None or int(raw) < self.limit
