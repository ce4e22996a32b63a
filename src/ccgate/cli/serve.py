"""``ccgate serve``: validate the config, refuse unsafe exposure, run uvicorn.

While it runs, a pidfile keyed by the port (``server.control.Pidfile``) lets ``ccgate connect`` and
friends send it SIGHUP to reload the config; SIGHUP, ``server.watch_config`` and
``POST /admin/config/reload`` all reload without a restart (``server.reload``)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccgate.config.load import LoadedConfig, load_config
from ccgate.errors import ConfigError
from ccgate.observe import logs
from ccgate.proxy_env import resolve_proxy
from ccgate.server.bind import MAX_PORT, MIN_PORT, BindError, bind_listener
from ccgate.server.control import Pidfile
from ccgate.server.gcpolicy import tune_for_serving
from ccgate.server.listen import is_loopback

UNSAFE_FLAG = "--dangerously-allow-unauthenticated"
LOG_LEVELS = ("debug", "info", "warning", "error")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config file (else $CCGATE_CONFIG, "
                        "./ccgate.yaml, ~/.config/ccgate/ccgate.yaml, else embedded defaults)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_arg, help="port to listen on, 1-65535 (default 4545)")
    parser.add_argument("--log-level", choices=LOG_LEVELS,
                        help="log level (default: log.level of the config, else info)")
    parser.add_argument("--log-format", choices=("text", "json"),
                        help="log line format (default: log.format of the config, else text)")
    parser.add_argument("--workers", type=workers_arg, metavar="N",
                        help="worker processes sharing the port, or auto (one per CPU); default: "
                             "server.workers of the config, else 1 (one process, no supervisor)")
    parser.add_argument(
        UNSAFE_FLAG, action="store_true", dest="allow_unauthenticated",
        help="listen on a non-loopback address without client authentication: anyone who "
             "can reach the port can spend your provider keys",
    )


if TYPE_CHECKING:
    from ccgate.server.app import Gateway
    from ccgate.shared import SharedState


def port_arg(text: str) -> int:
    """argparse type for ``--port``: the range ``server.port`` accepts (config/model.py)."""
    value = int(text) if text.strip().lstrip("-").isdigit() else -1
    if not MIN_PORT <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"must be a port number from {MIN_PORT} to {MAX_PORT} (as server.port), got {text!r}")
    return value


def exposure_problem(authenticated: bool, host: str, allow: bool) -> str | None:
    if is_loopback(host) or authenticated or allow:
        return None
    return (
        f"refusing to listen on {host} without client authentication: anyone who can reach "
        f"this port could use the gateway and its provider keys.\n"
        f"Issue keys with `ccgate keys create`, add client tokens under server.auth.tokens in "
        f"the config, listen on 127.0.0.1, "
        f"or pass {UNSAFE_FLAG} if another layer already authenticates clients."
    )


def describe(loaded: LoadedConfig, host: str, port: int, app: Gateway | None = None,
             role: WorkerRole | None = None) -> list[str]:
    lines = [f"ccgate listening on http://{host}:{port} (config: {loaded.source})"]
    for provider in loaded.config.providers:
        decision = resolve_proxy(provider.base_url, provider.proxy, os.environ)
        via = f"via {decision.proxy.display} ({decision.reason})" if decision.proxy else (
            f"direct ({decision.reason})")
        keys = loaded.secrets.provider_keys[provider.name]
        cred = f"{len(keys)} key(s)" if keys else "client's own key (bring-your-own-key)"
        lines.append(f"  provider {provider.name}: {provider.base_url} {via}; {cred}")
    tokens = len(loaded.secrets.client_tokens)
    if app is None:  # `config check`: the store is not opened
        auth = f"on ({tokens} config token(s))" if tokens else "off unless keys have been issued"
    else:
        issued = len(app.key_cache) if app.key_cache is not None else 0
        auth = f"on ({tokens} config token(s), {issued} issued key(s))" if app.runtime.auth.enabled else "off"
    lines.append(f"  client authentication: {auth}")
    if app is not None and app.store is not None:
        usage = "usage recorded" if app.recorder is not None else "usage not recorded"
        admin = "admin API on" if app.admin is not None and app.admin.enabled else "admin API off"
        lines.append(f"  store: {app.store.location}; {usage}; {admin}")
    redis = loaded.config.redis
    if redis is not None and loaded.secrets.redis_url is not None:
        # Where from, never the URL itself: it may carry the password.
        source = loaded.secrets.redis_url.reference
        lines.append(f"  shared state: redis (url: {source}; prefix {redis.prefix!r}, "
                     f"timeout {redis.timeout} s; rate limits fail {redis.on_failure.rate_limits})")
    if app is not None:
        pid = role.supervisor_pid if role is not None else os.getpid()
        lines.append(f"  config reload: {', '.join(_reload_ways(loaded, app, pid))}")
    if role is not None:
        shared = "the supervisor's hub" if role.hub_address else "redis"
        lines.append(f"  workers: {role.count} processes (supervisor pid {role.supervisor_pid}); "
                     f"rate limits and key changes shared through {shared}")
    lines.append(f"  Claude Code: ANTHROPIC_BASE_URL=http://{host}:{port}")
    return lines


def _reload_ways(loaded: LoadedConfig, app: Gateway, pid: int) -> list[str]:
    ways = [f"kill -HUP {pid}"] if hasattr(signal, "SIGHUP") else []
    if app.admin is not None and app.admin.enabled:
        ways.append("POST /admin/config/reload")
    if loaded.config.server.watch_config and loaded.path is not None:
        ways.append("on file change (server.watch_config)")
    return ways or ["restart (or set server.watch_config: true)"]


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        print(f"ccgate: config error: {exc}", file=sys.stderr)
        return 2
    log_format = args.log_format or loaded.config.log.format
    logs.configure(args.log_level or loaded.config.log.level, log_format)
    workers = resolve_workers(args.workers if getattr(args, "workers", None) is not None
                              else loaded.config.server.workers)
    if workers > 1:  # a supervisor and N worker processes (cli/supervisor.py)
        from ccgate.cli.supervisor import Supervisor

        return Supervisor(args, loaded, workers).run()
    return serve_process(args, loaded, None)


def resolve_workers(value: int | str) -> int:
    """``--workers``/``server.workers``: a number, or ``auto`` for one per CPU."""
    return max(1, os.cpu_count() or 1) if value == "auto" else int(value)


def workers_arg(text: str) -> int | str:
    """argparse type for ``--workers``: 1 to MAX_WORKERS, or ``auto``."""
    from ccgate.config.model import MAX_WORKERS

    if text.strip().lower() == "auto":
        return "auto"
    value = int(text) if text.strip().isdigit() else -1
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"must be a number of worker processes from 1 to {MAX_WORKERS}, or auto (one per CPU), "
            f"got {text!r}")
    return value


@dataclass(frozen=True)
class WorkerRole:
    """What a worker of ``serve --workers N`` is told by its supervisor (pickled to it)."""

    index: int
    count: int
    supervisor_pid: int
    hub_address: str | None  # None: the shared state is not the hub (Redis)
    hub_token: str | None
    restarted: bool = False  # started again after a crash: the start-up lines were said already


def shared_backend(loaded: LoadedConfig, env: Mapping[str, str], role: WorkerRole | None) -> SharedState | None:
    """The state this process shares with the other gateway processes, if any: Redis when
    ``redis.url`` is set (it takes precedence: the supervisor then starts no hub), else the
    supervisor's hub for a worker, else None (one process)."""
    from ccgate.server.shared_link import new_process_id
    from ccgate.shared import make_shared

    redis = make_shared(loaded.config, loaded.secrets, new_process_id())
    if redis is not None:
        return redis
    if role is None or role.hub_address is None or role.hub_token is None:
        return None
    from ccgate.shared.hub import HubClient

    return HubClient(role.hub_address, role.hub_token, new_process_id(), role.index)


def serve_process(args: argparse.Namespace, loaded: LoadedConfig, role: WorkerRole | None,
                  sock: socket.socket | None = None) -> int:
    """Serve in this process: the whole gateway (``role`` None), or one worker of a supervisor
    that bound ``sock``. Worker 0 says the start-up lines (once: not again when restarted);
    the others serve quietly."""
    server = loaded.config.server
    host = args.host or server.host
    port = args.port if args.port is not None else server.port
    log_format = args.log_format or loaded.config.log.format
    speaks = role is None or (role.index == 0 and not role.restarted)
    say = (_say_json if log_format == "json" else _say_text) if speaks else _say_nothing
    from ccgate.server.app import Gateway

    try:
        shared = shared_backend(loaded, os.environ, role)
        app = Gateway(loaded, os.environ, reload_signal=True, shared=shared)
    except (ConfigError, ValueError) as exc:  # store unusable, admin key too short
        say(logging.ERROR, f"ccgate: config error: {exc}")
        return 2
    app.listen_host = host  # --host may differ from server.host; /metrics access follows the real one
    authenticated = app.runtime.auth.enabled
    problem = exposure_problem(authenticated, host, args.allow_unauthenticated)
    if problem:
        say(logging.ERROR, f"ccgate: {problem}")
        return 2
    # A reload must not open what the start refused to open.
    app.reloader.exposure_check = functools.partial(
        _reload_exposure, host=host, allow=args.allow_unauthenticated)
    if args.allow_unauthenticated and not is_loopback(host) and not authenticated:
        say(logging.WARNING, f"ccgate: WARNING: serving {host}:{port} with NO client authentication "
                             f"({UNSAFE_FLAG})")

    import uvicorn

    if sock is None:
        try:  # bound (and listening) before anything says so; uvicorn serves on this socket
            sock = bind_listener(host, port)
        except BindError as exc:
            say(logging.ERROR, f"ccgate: {exc}")
            return 1
    if role is not None:
        from ccgate.cli.supervisor import as_worker

        as_worker(app, role)
    for line in describe(loaded, host, port, app, role):
        say(logging.INFO, line)
    if speaks:
        level, line = console_line(app, host, port)
        say(level, line)
    else:
        from ccgate.console import attach

        attach(app)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    config = uvicorn.Config(
        app, host=host, port=port, loop=loop, http=_client_protocol(app, say), lifespan="on",
        access_log=False, log_config=None, log_level="warning", server_header=False,
        proxy_headers=False,  # we never use the client address; skip X-Forwarded-* parsing
        ws="none", interface="asgi3",  # Gateway.__call__ returns its coroutine (server/app.py)
    )
    if role is None:  # with workers, the supervisor holds the one pidfile
        pidfile = Pidfile(host, port, loaded.source)
        app.on_startup.append(pidfile.write)
        app.on_shutdown.append(pidfile.remove)
    app.on_startup.append(tune_for_serving)  # last: freezes what start-up built (server/gcpolicy.py)
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def _say_nothing(level: int, line: str) -> None:
    """Workers other than the first: the start-up lines are said once, by worker 0."""


def _say_text(level: int, line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _say_json(level: int, line: str) -> None:
    """With ``log.format: json`` every line on stderr is JSON: the start-up lines too."""
    logging.getLogger("ccgate.serve").log(level, line.strip().removeprefix("ccgate: "))


def console_line(app: Gateway, host: str, port: int) -> tuple[int, str]:
    """Where the console is and how to sign in: the admin key, or on a loopback address without
    one a single-use link (on stderr at the start only: never in the access log or a trace).
    The link is said at WARNING: it is the only way in, so ``--log-level warning`` must show it."""
    from ccgate.config.model import local_url
    from ccgate.console import PREFIX, attach

    console = attach(app)
    if console is None:
        return logging.INFO, "  console: off (server.console.enabled: false, or no store)"
    base = local_url(host, port)
    link = console.issue_link(base)
    if link is not None:
        return logging.WARNING, f"  console: {link}  (one-time sign-in link; no admin key is set)"
    if console.admin_digest is None:
        return logging.INFO, f"  console: {base}{PREFIX} needs an admin key on {host} (set server.admin.key)"
    return logging.INFO, f"  console: {base}{PREFIX}  (sign in with the admin key)"


def _client_protocol(app: Gateway, say: Callable[[int, str], None]) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with server.limits (headers, timeouts, connections)."""
    from ccgate.server.protocol import ConnectionGuard, fit_open_files, protocol_for

    guard = ConnectionGuard(lambda: app.runtime.config.server.limits, app.metrics.refuse)
    app.metrics.connections.set_function(lambda: len(guard.connections))
    app.on_shutdown.append(guard.stop)
    warning = fit_open_files(guard.max_connections)
    if warning:
        say(logging.WARNING, f"ccgate: WARNING: {warning}")
    return protocol_for(guard)


def _reload_exposure(authenticated: bool, *, host: str, allow: bool) -> str | None:
    problem = exposure_problem(authenticated, host, allow)
    return f"the new config has no client authentication: {problem}" if problem else None
