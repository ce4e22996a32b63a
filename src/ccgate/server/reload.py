"""Reloading the config of a running gateway without dropping a request.

Triggered by ``SIGHUP`` (POSIX), by a change of the config file when ``server.watch_config``
is on (its size and mtime are polled every ``WATCH_INTERVAL`` seconds: a stat, no read), and
by ``POST /admin/config/reload``. Each reload:

1. loads and validates the file as ``ccgate config check`` does (``load_config``), builds the
   new ``Runtime`` (unchanged providers carried over) and starts its new transports; a
   problem at any step refuses the reload with ``config check``'s message, logged and
   returned, and the old runtime serves on;
2. refuses a config that would switch client authentication off on an exposed address;
3. swaps ``gateway.runtime``: requests that started before keep the old runtime, new ones
   get the new one;
4. in the background, waits until the old runtime's requests are done (``Runtime.drain``)
   and closes the transports no live runtime uses any more.

Settings read only at start (``runtime.RESTART_ONLY``: listen address, store, log) are
reported as needing a restart, not applied. Reloads run one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ccgate.config.load import LoadedConfig, load_config
from ccgate.errors import ConfigError
from ccgate.server.admin import admin_digest, admin_key_from
from ccgate.server.runtime import Runtime, build_runtime, restart_only_changes
from ccgate.upstream.transport import Transport

if TYPE_CHECKING:
    from ccgate.server.app import Gateway

log = logging.getLogger("ccgate.reload")

WATCH_INTERVAL = 1.0
FileStamp = tuple[int, int] | None  # (mtime_ns, size); None: no such file


class ReloadOutcome(msgspec.Struct):
    """What one reload did; the body of ``POST /admin/config/reload``."""

    reloaded: bool
    trigger: str
    config: str  # the file (or "embedded defaults")
    message: str
    # provider name -> "kept" (state carried over), "changed", "added" or "removed"
    providers: dict[str, str] = {}
    restart_needed: list[str] = []


class Reloader:
    """The reload procedure of one gateway, and the config-file watch."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        # Set by `ccgate serve` on an exposed address: the refusal message when a config would
        # leave clients unauthenticated there (given whether auth is on), else None.
        self.exposure_check: Callable[[bool], str | None] | None = None
        self.last: ReloadOutcome | None = None
        self._lock = asyncio.Lock()
        self._retiring: list[Runtime] = []
        self._tasks: set[asyncio.Task[object]] = set()
        self._stamp = file_stamp(gateway.runtime.loaded.path)

    async def reload(self, trigger: str) -> ReloadOutcome:
        async with self._lock:  # one at a time: each builds on the runtime the last one left
            try:
                outcome = await self._reload(trigger)
            except Exception:  # a bug, not a bad file: the old config must serve on all the same
                log.exception("config reload (%s) failed", trigger)
                current = self.gateway.runtime.loaded
                outcome = self._refused(trigger, current, "internal error while reloading; see the gateway log")
        self.last = outcome
        return outcome

    def spawn(self, trigger: str) -> None:
        """Start a reload in the background (a signal handler cannot await)."""
        self._track(self.reload(trigger))

    async def _reload(self, trigger: str) -> ReloadOutcome:
        gateway = self.gateway
        old = gateway.runtime
        path = old.loaded.path
        self._stamp = file_stamp(path)  # taken before reading: a later write is seen again
        try:
            loaded = load_config(str(path) if path else None, gateway.seams.env)
            digest = admin_digest(admin_key_from(loaded.secrets.admin_key, gateway.seams.env))
            new, fresh = build_runtime(loaded, gateway.seams, old)
            self._check_exposure(new)
            await _start(fresh)
        except (ConfigError, ValueError, OSError) as exc:
            return self._refused(trigger, old.loaded, f"config error: {exc}")
        gateway.runtime = new
        if gateway.admin is not None:
            gateway.admin.use_digest(digest)
        self._retiring.append(old)  # at once: a later reload's retirement must see it in use
        self._track(self._retire(old))
        await gateway.seed_budgets()  # spending recorded by other processes since the last seed
        outcome = ReloadOutcome(
            True, trigger, loaded.source, f"reloaded {loaded.source}",
            _provider_changes(old, new), restart_only_changes(old.config, new.config),
        )
        log.info("config reloaded (%s) from %s: %s", trigger, loaded.source,
                 ", ".join(f"{n} {what}" for n, what in outcome.providers.items()))
        if outcome.restart_needed:
            outcome.message += "; changed but applied only at the next restart: " + ", ".join(
                outcome.restart_needed)
            log.warning("config reload: %s take effect only at the next restart",
                        ", ".join(outcome.restart_needed))
        return outcome

    def _check_exposure(self, new: Runtime) -> None:
        if self.exposure_check is not None:
            problem = self.exposure_check(new.auth.enabled)
            if problem:
                raise ConfigError(problem)

    def _refused(self, trigger: str, current: LoadedConfig, message: str) -> ReloadOutcome:
        log.error("config reload (%s) refused, still serving the previous config of %s: %s",
                  trigger, current.source, message)
        return ReloadOutcome(False, trigger, current.source, message)

    async def _retire(self, old: Runtime) -> None:
        try:
            if not await old.drain():
                log.warning("config reload: %d request(s) still on the previous config after the "
                            "drain limit; closing its connections", old.active)
        finally:
            self._retiring.remove(old)
        in_use = self._transports_in_use()
        for transport in old.transports.values():
            if id(transport) not in in_use:
                await transport.close()

    def _transports_in_use(self) -> set[int]:
        live = [self.gateway.runtime, *self._retiring]
        return {id(t) for rt in live for t in rt.transports.values()}

    # The config-file watch -----------------------------------------------------------------

    async def watch(self, interval: float | None = None) -> None:
        """Reload when the config file changes, while the running config has watch_config on."""
        while True:
            await asyncio.sleep(interval or WATCH_INTERVAL)
            loaded = self.gateway.runtime.loaded
            if loaded.path is None or not loaded.config.server.watch_config:
                continue
            if file_stamp(loaded.path) != self._stamp:
                await self.reload("config file changed")

    # Lifecycle -------------------------------------------------------------------------------

    def _track(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start_watch(self) -> None:
        self._track(self.watch())

    async def close(self) -> list[Transport]:
        """Stop the watch and pending retirements; the transports of runtimes still retiring
        (the caller closes them with the current ones)."""
        current = {id(t) for t in self.gateway.runtime.transports.values()}
        extra = {id(t): t for rt in self._retiring for t in rt.transports.values() if id(t) not in current}
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return list(extra.values())


def file_stamp(path: Path | None) -> FileStamp:
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


async def _start(transports: list[Transport]) -> None:
    """Start them all, or none: a transport that fails to start closes the ones before it."""
    started: list[Transport] = []
    try:
        for transport in transports:
            await transport.start()
            started.append(transport)
    except BaseException:
        for transport in started:
            await transport.close()
        raise


def _provider_changes(old: Runtime, new: Runtime) -> dict[str, str]:
    changes: dict[str, str] = {}
    for name, parts in new.providers.items():
        before = old.providers.get(name)
        changes[name] = "added" if before is None else "kept" if before is parts else "changed"
    for name in old.providers:
        if name not in new.providers:
            changes[name] = "removed"
    return changes


__all__ = ["WATCH_INTERVAL", "ReloadOutcome", "Reloader", "file_stamp"]
