"""The Redis backend of shared state (``redis.url``): replicas of the gateway on several machines.

- Rate limits: one Lua script (shared/redis_scripts.py) checks and counts a request in one
  atomic step on Redis' clock, with ``routing.ratelimit``'s windowing. Admissions go through
  their own channel (shared/redis_admit.py: one connection, EVALSHA pre-packed per key,
  everything of one event-loop turn in one write, replies parsed by hiredis), not redis-py:
  redis-py's per-command work was most of a limited request's added cost.
- Tokens: ``record_tokens`` only queues (bounded; a full queue drops and counts); one task
  sends the queue in pipelined batches, summed per key.
- Events: PUBLISH on one channel (``<prefix>events``), JSON; one subscriber task on its own
  connection, reconnecting with backoff and logging once per outage. After an outage it
  tells its process to re-read the keys (events sent meanwhile were lost).
- Short-lived records: SET PX / GET / GETDEL / DEL, INCRBY + PEXPIRE in one script.

Everything else (events, tokens, records) goes through redis-py's asyncio client. Every call
is bounded by ``redis.timeout``; whatever goes wrong is ``SharedUnavailable``. No command
retries inside redis-py: the caller's policy decides (fail open or closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from ccgate.routing.ratelimit import Admission
from ccgate.shared import EventStats, SharedEvent, SharedUnavailable
from ccgate.shared.redis_admit import AdmitChannel, Endpoint
from ccgate.shared.redis_scripts import ADMIT, EXPIRE_MS, INCR, RECORD_TOKENS

log = logging.getLogger("ccgate")
T = TypeVar("T")

TOKEN_QUEUE = 10_000  # finished requests' token counts waiting to be sent
EVENT_QUEUE = 1_000  # events waiting to be published
MAX_CONNECTIONS = 64  # per process (not admissions); a call waits for one at most ``timeout``
ADMIT_COMMANDS = 10_000  # packed admission commands kept (one per key and limits); then cleared
RECONNECT_MAX = 5.0  # seconds between the subscriber's attempts, at most


class _Wire(msgspec.Struct):
    kind: str
    origin: str
    data: dict[str, Any] = {}

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Wire).decode


@dataclass(frozen=True)
class RedisOptions:
    """What the backend connects with: ``redis:`` resolved (shared.make_shared builds it)."""

    url: str  # may hold a password: never logged
    password: str | None = None
    timeout: float = 0.25
    prefix: str = "ccgate:"
    ssl: dict[str, Any] = field(default_factory=dict)  # redis-py ssl_* arguments (rediss://)


class RedisShared:
    kind = "redis"

    def __init__(self, options: RedisOptions, process_id: str, *,
                 now: Callable[[], float] | None = None) -> None:
        """``now``: a clock to use instead of Redis' TIME (tests compare with the local limiter)."""
        self.options = options
        self.process_id = process_id
        self.timeout = options.timeout
        self.stats = EventStats()
        self._now = now
        prefix = options.prefix
        self._channel = f"{prefix}events"
        self._rl = f"{prefix}rl:"
        self._kv = f"{prefix}kv:"
        self._client = self._connect(socket_timeout=options.timeout)
        self._scripts: dict[str, str] = {}  # source -> sha
        self._healthy = True
        self._listening = False  # the subscriber holds a subscription now
        self._tokens: asyncio.Queue[tuple[str, int]] = asyncio.Queue(TOKEN_QUEUE)
        self._events: asyncio.Queue[SharedEvent] = asyncio.Queue(EVENT_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._batches: set[asyncio.Task[None]] = set()
        self._endpoint = Endpoint.from_url(options.url, options.password, options.ssl)
        self._admit_channel: AdmitChannel | None = None  # opened by the first admission
        self._admit_commands: dict[tuple[str, int, int], bytes] = {}

    def _connect(self, *, socket_timeout: float | None) -> aioredis.Redis:
        options = self.options
        pool = aioredis.BlockingConnectionPool.from_url(
            options.url, max_connections=MAX_CONNECTIONS, timeout=options.timeout,
            password=options.password, socket_timeout=socket_timeout,
            socket_connect_timeout=options.timeout, retry=Retry(NoBackoff(), 0),
            client_name="ccgate", **options.ssl)
        if options.password is not None:  # redis.password wins over the URL's (from_url's is the reverse)
            pool.connection_kwargs["password"] = options.password
        return aioredis.Redis(connection_pool=pool)

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self, on_event: Callable[[SharedEvent], None]) -> None:
        """Start the sender and subscriber tasks. Redis being down is not an error here: the
        gateway serves by its failure policy and the subscriber keeps trying."""
        self._tasks = [asyncio.create_task(self._send_tokens(), name="ccgate-redis-tokens"),
                       asyncio.create_task(self._send_events(), name="ccgate-redis-events"),
                       asyncio.create_task(self._subscribe(on_event), name="ccgate-redis-subscriber")]
        with contextlib.suppress(TimeoutError):  # wait briefly, so events from now on arrive
            await asyncio.wait_for(self._subscribed.wait(), max(1.0, 4 * self.timeout))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._admit_channel is not None:
            await self._admit_channel.close()
            self._admit_channel = None
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose(close_connection_pool=True)

    def healthy(self) -> bool:
        """The last command was answered, and (once started) events are being received."""
        return self._healthy and (self._listening or not self._tasks)

    async def ping(self) -> bool:
        """One bounded PING (for /readyz): whether Redis answers now."""
        try:
            await self._call(self._client.ping())
        except SharedUnavailable:
            return False
        return self._listening or not self._tasks

    # Rate limits -------------------------------------------------------------------------

    async def admit(self, key_id: str, rpm: int | None, tpm: int | None) -> Admission:
        if rpm is None and tpm is None:
            return Admission(True)
        channel = self._admit_channel or self._open_admit_channel()
        if self._now is None:  # Redis' clock: a key's command is the same every time
            limits = (key_id, rpm or 0, tpm or 0)
            command = self._admit_commands.get(limits)
            if command is None:
                if len(self._admit_commands) >= ADMIT_COMMANDS:
                    self._admit_commands.clear()
                command = self._admit_commands[limits] = self._admit_command(channel, *limits)
        else:
            command = self._admit_command(channel, key_id, rpm or 0, tpm or 0)
        reply = await channel.call(command)
        return admission_from(reply, rpm, tpm)

    def _open_admit_channel(self) -> AdmitChannel:
        self._admit_channel = AdmitChannel(self._endpoint, ADMIT, self.timeout, on_health=self._admit_health)
        return self._admit_channel

    def _admit_command(self, channel: AdmitChannel, key_id: str, rpm: int, tpm: int) -> bytes:
        return channel.command((self._rl + key_id + ":r", self._rl + key_id + ":t"),
                               (rpm, tpm, self._clock_arg(), EXPIRE_MS))

    def _admit_health(self, ok: bool) -> None:
        self._healthy = ok

    def record_tokens(self, key_id: str, tokens: int) -> None:
        try:
            self._tokens.put_nowait((key_id, tokens))
        except asyncio.QueueFull:
            self.stats.tokens_dropped += 1

    async def _send_tokens(self) -> None:
        while True:
            first = await self._tokens.get()
            sums: dict[str, int] = {first[0]: first[1]}
            while not self._tokens.empty():
                key_id, tokens = self._tokens.get_nowait()
                sums[key_id] = sums.get(key_id, 0) + tokens
            try:
                for key_id, tokens in sums.items():
                    await self._script(RECORD_TOKENS, [self._rl + key_id + ":t"],
                                       [tokens, "", self._clock_arg(), EXPIRE_MS])
            except SharedUnavailable:
                self.stats.tokens_dropped += len(sums)

    def _clock_arg(self) -> str:
        return "" if self._now is None else repr(self._now())

    # Events ------------------------------------------------------------------------------

    def publish(self, event: SharedEvent) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            self.stats.dropped += 1

    async def _send_events(self) -> None:
        while True:
            event = await self._events.get()
            payload = _encode(_Wire(event.kind, event.origin or self.process_id, event.data))
            try:
                await self._call(self._client.publish(self._channel, payload))
            except SharedUnavailable:
                self.stats.dropped += 1
            else:
                self.stats.published += 1

    async def _subscribe(self, on_event: Callable[[SharedEvent], None]) -> None:
        """Receive events until cancelled; reconnect with backoff (one log line per outage)."""
        delay, outage, was_down = 0.1, False, False
        while True:
            client = self._connect(socket_timeout=None)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await asyncio.wait_for(pubsub.subscribe(self._channel), max(1.0, 4 * self.timeout))
                self._subscribed.set()
                self._listening = True
                if was_down:  # events sent while we were away are lost: re-read the keys
                    log.warning("shared state (redis): subscribed again; events flow")
                    on_event(SharedEvent("keys_changed", {}, ""))
                    was_down = outage = False
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        await asyncio.wait_for(pubsub.ping(), max(1.0, 4 * self.timeout))
                        continue
                    self._deliver(message, on_event)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                was_down, self._listening = True, False
                if not outage:
                    outage = True
                    log.warning("shared state (redis): event subscription lost (%s); reconnecting",
                                type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose(close_connection_pool=True)
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)

    def _deliver(self, message: dict[str, Any], on_event: Callable[[SharedEvent], None]) -> None:
        if message.get("type") != "message":
            return
        try:
            wire = _decode(message["data"])
        except msgspec.DecodeError:
            log.warning("shared state (redis): ignored a malformed event")
            return
        if wire.origin == self.process_id:
            return
        self.stats.received += 1
        on_event(SharedEvent(wire.kind, wire.data, wire.origin))  # type: ignore[arg-type]

    # Short-lived records -----------------------------------------------------------------

    async def kv_put(self, key: str, value: bytes, ttl: float) -> None:
        await self._call(self._client.set(self._kv + key, value, px=_ms(ttl)))

    async def kv_get(self, key: str) -> bytes | None:
        return _bytes(await self._call(self._client.get(self._kv + key)))

    async def kv_take(self, key: str) -> bytes | None:
        return _bytes(await self._call(self._client.getdel(self._kv + key)))

    async def kv_delete(self, key: str) -> None:
        await self._call(self._client.delete(self._kv + key))

    async def kv_incr(self, key: str, amount: int, ttl: float) -> int:
        return int(await self._script(INCR, [self._kv + key], [amount, _ms(ttl)]))

    # Plumbing ----------------------------------------------------------------------------

    async def _script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, loading the script the first time and again after NOSCRIPT."""
        sha = self._scripts.get(source)
        for _ in range(2):
            if sha is None:
                sha = await self._call(self._client.script_load(source))
                self._scripts[source] = sha
            try:
                return await self._call(self._client.evalsha(sha, len(keys), *keys, *args))
            except NoScriptError:
                sha = None
        raise SharedUnavailable("redis keeps forgetting the script (NOSCRIPT)")

    async def _call(self, operation: Awaitable[T]) -> T:
        """One command within the timeout; every failure becomes ``SharedUnavailable`` (the
        message names the error's type only: redis-py's texts can hold the host and db)."""
        try:
            async with asyncio.timeout(self.timeout):
                result = await operation
        except NoScriptError:
            raise
        except (RedisError, OSError, TimeoutError) as exc:
            self._healthy = False
            self._drop_idle_connections()
            raise SharedUnavailable(f"redis did not answer within {self.timeout} s "
                                    f"({type(exc).__name__})") from None
        if not self._healthy:  # back: connections idle since before the outage may be dead
            self._healthy = True
            self._drop_idle_connections()
        return result

    def _drop_idle_connections(self) -> None:
        """Close the pool's idle connections (the next command opens a fresh one), so that a
        connection to a Redis that restarted does not fail one more request after recovery."""
        task = asyncio.ensure_future(self._client.connection_pool.disconnect(inuse_connections=False))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)
        task.add_done_callback(lambda done: done.cancelled() or done.exception())


def admission_from(reply: list[Any], rpm: int | None, tpm: int | None) -> Admission:
    """The ADMIT script's reply as the local limiter's ``Admission``."""
    allowed, wait, by, requests, requests_reset, tokens, tokens_reset = reply
    limited_by: Literal["requests", "tokens"] | None = None
    if not allowed:
        limited_by = "tokens" if _text(by) == "tokens" else "requests"
    return Admission(
        bool(allowed),
        float(wait) if not allowed else None,
        limited_by,
        requests_limit=rpm,
        requests_remaining=None if rpm is None else max(0, rpm - int(requests)),
        requests_reset=None if rpm is None else float(requests_reset),
        tokens_limit=tpm,
        tokens_remaining=None if tpm is None else max(0, tpm - int(tokens)),
        tokens_reset=None if tpm is None else float(tokens_reset),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


__all__ = ["RedisOptions", "RedisShared", "admission_from"]
