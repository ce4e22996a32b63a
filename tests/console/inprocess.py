"""The console in-process: ``InProcessGateway`` (scripted providers, no sockets) with the console
attached, and an httpx client speaking ASGI to it (cookies kept like a browser's)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from ccgate.console import Console, attach
from ccgate.upstream.mock import Step
from tests.gateway.inprocess import InProcessGateway

ADMIN_KEY = "console-admin-key-0123456789abcdef"
BASE = "http://127.0.0.1:4545"
PAGES = ("overview", "providers", "models", "keys", "usage", "requests", "doctor")


def console_config(tmp: Path, **extra: Any) -> dict[str, Any]:
    server = {"admin": {"key": "env:CCGATE_TEST_ADMIN"}, **extra.pop("server", {})}
    return {"server": server, "store": {"path": str(tmp / "ccgate.db")}, **extra}


@asynccontextmanager
async def console_gateway(
    tmp: Path, config: dict[str, Any], scripts: Mapping[str, Iterable[Step]] | None = None, *,
    admin_key: str | None = ADMIN_KEY, base: str = BASE, listen_host: str = "127.0.0.1",
) -> AsyncIterator[tuple[InProcessGateway, Console, httpx.AsyncClient]]:
    env = {"CCGATE_TEST_ADMIN": admin_key} if admin_key else {}
    if admin_key is None:
        config = {**config, "server": {k: v for k, v in config.get("server", {}).items() if k != "admin"}}
    async with InProcessGateway(tmp, config, scripts, env=env) as gw:
        gw.app.listen_host = listen_host
        console = attach(gw.app)
        assert console is not None
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url=base, follow_redirects=False) as client:
            yield gw, console, client


async def sign_in(client: httpx.AsyncClient, key: str = ADMIN_KEY) -> httpx.Response:
    answer = await client.post("/console/signin", data={"admin_key": key})
    assert answer.status_code == 303, answer.text
    return answer


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def csrf(client: httpx.AsyncClient, page: str = "keys") -> str:
    answer = await client.get(f"/console/{page}")
    assert answer.status_code == 200, answer.text
    return csrf_of(answer.text)
