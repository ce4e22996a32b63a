"""``ccgate serve``: validate the config, refuse unsafe exposure, run uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from ccgate.config.load import LoadedConfig, load_config
from ccgate.errors import ConfigError
from ccgate.upstream.proxy_env import resolve_proxy

UNSAFE_FLAG = "--dangerously-allow-unauthenticated"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config file (else $CCGATE_CONFIG, "
                        "./ccgate.yaml, ~/.config/ccgate/ccgate.yaml, else embedded defaults)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 4545)")
    parser.add_argument(
        UNSAFE_FLAG, action="store_true", dest="allow_unauthenticated",
        help="listen on a non-loopback address without client authentication: anyone who "
             "can reach the port can spend your provider keys",
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(loaded: LoadedConfig, host: str, allow: bool) -> str | None:
    if is_loopback(host) or loaded.secrets.client_tokens or allow:
        return None
    return (
        f"refusing to listen on {host} without client authentication: anyone who can reach "
        f"this port could use the gateway and its provider keys.\n"
        f"Add client tokens under server.auth.tokens in the config, listen on 127.0.0.1, "
        f"or pass {UNSAFE_FLAG} if another layer already authenticates clients."
    )


def describe(loaded: LoadedConfig, host: str, port: int) -> list[str]:
    lines = [f"ccgate listening on http://{host}:{port} (config: {loaded.source})"]
    for provider in loaded.config.providers:
        decision = resolve_proxy(provider.base_url, provider.proxy, os.environ)
        via = f"via {decision.proxy.display} ({decision.reason})" if decision.proxy else (
            f"direct ({decision.reason})")
        keys = loaded.secrets.provider_keys[provider.name]
        cred = f"{len(keys)} key(s)" if keys else "client's own key (bring-your-own-key)"
        lines.append(f"  provider {provider.name}: {provider.base_url} {via}; {cred}")
    auth = "on" if loaded.secrets.client_tokens else "off"
    lines.append(f"  client authentication: {auth}")
    lines.append(f"  Claude Code: ANTHROPIC_BASE_URL=http://{host}:{port}")
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        print(f"ccgate: config error: {exc}", file=sys.stderr)
        return 2
    server = loaded.config.server
    host = args.host or server.host
    port = args.port if args.port is not None else server.port
    problem = exposure_problem(loaded, host, args.allow_unauthenticated)
    if problem:
        print(f"ccgate: {problem}", file=sys.stderr)
        return 2
    if args.allow_unauthenticated and not is_loopback(host) and not loaded.secrets.client_tokens:
        print(f"ccgate: WARNING: serving {host}:{port} with NO client authentication "
              f"({UNSAFE_FLAG})", file=sys.stderr)

    import uvicorn

    from ccgate.server.app import Gateway

    logging.basicConfig(level=loaded.config.log.level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Gateway(loaded, os.environ)
    for line in describe(loaded, host, port):
        print(line, file=sys.stderr, flush=True)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    config = uvicorn.Config(
        app, host=host, port=port, loop=loop, http="httptools", lifespan="on",
        access_log=False, log_config=None, log_level="warning", server_header=False,
        proxy_headers=False,  # we never use the client address; skip X-Forwarded-* parsing
        timeout_keep_alive=75,
    )
    uvicorn.Server(config).run()
    return 0
