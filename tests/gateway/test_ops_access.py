"""/readyz and /metrics access (server/access.py), in-process: status for everyone, the
readiness detail for the admin, /metrics open on loopback and behind a credential elsewhere."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from ccgate.errors import ConfigError
from ccgate.server.readiness import Readiness
from tests.gateway.inprocess import InProcessGateway
from tests.gateway.test_inprocess import KEY, anthropic

ADMIN_KEY = "ops-admin-key-for-inprocess-0123456789"
METRICS_TOKEN = "prometheus-scrape-token-0123456789"


def server(**extra: Any) -> dict[str, Any]:
    return {"server": {"admin": {"key": ADMIN_KEY}, **extra}, "providers": [anthropic()]}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_readyz_without_the_admin_key_is_status_only(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, server()) as gw:
        for headers in ({}, bearer("wrong-key-wrong-key-wrong"), {"x-api-key": "sk-client-own-key"}):
            answer = await gw.request("GET", "/readyz", headers=headers)
            assert answer.status == 200 and answer.json() == {"status": "ready"}


async def test_readyz_detail_for_the_admin_names_references_not_keys(tmp_path: Path) -> None:
    config = {**server(), "providers": [anthropic(api_keys=["env:CCGATE_TEST_PROVIDER_KEY"])]}
    async with InProcessGateway(tmp_path, config, env={"CCGATE_TEST_PROVIDER_KEY": KEY}) as gw:
        for headers in (bearer(ADMIN_KEY), {"x-api-key": ADMIN_KEY}):
            answer = await gw.request("GET", "/readyz", headers=headers)
            body = answer.json()
            assert answer.status == 200 and body["status"] == "ready" and body["config"]
            keys = body["providers"]["anthropic"]["keys"]
            assert keys == [{"index": 0, "source": "env:CCGATE_TEST_PROVIDER_KEY", "state": "healthy",
                             "requests": 0, "failures": 0}]
            # Neither the key nor its masked tail: nothing derived from a secret's value.
            assert KEY not in answer.body.decode() and KEY[-4:] not in answer.body.decode()


async def test_readyz_not_ready_is_503_without_detail(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, server()) as gw:
        gw.app.runtime.upstreams["anthropic"].pool.disable(0, "401 from the provider")
        answer = await gw.request("GET", "/readyz")
        assert answer.status == 503 and answer.json() == {"status": "not ready"}


class _AnsweringTransport:
    """A transport whose probe is an HTTP answer, which stamps last_success as the real one does."""

    name = "anthropic"

    def __init__(self) -> None:
        self.last_success: float | None = None

    async def probe(self, timeout: float = 5.0) -> str | None:
        await asyncio.sleep(0.2)  # the answer comes after the check began
        self.last_success = time.monotonic()
        return None


async def test_seen_seconds_ago_is_never_negative() -> None:
    transport = _AnsweringTransport()
    readiness = Readiness([transport], window=60.0)  # type: ignore[list-item]
    ready, detail = await readiness.check()
    assert ready and detail["anthropic"]["reachable"] is True
    seen = detail["anthropic"].get("seen_seconds_ago", 0.0)
    assert isinstance(seen, float) and seen >= 0.0


@pytest.mark.parametrize(("host", "auth", "open_"), [
    ("127.0.0.1", "auto", True), ("::1", "auto", True), ("localhost", "auto", True),
    ("0.0.0.0", "auto", False), ("10.1.2.3", "auto", False),
    ("127.0.0.1", "required", False), ("0.0.0.0", "none", True),
])
async def test_metrics_access_follows_the_listen_address(tmp_path: Path, host: str, auth: str,
                                                         open_: bool) -> None:
    config = server(metrics={"auth": auth, "token": "env:CCGATE_TEST_METRICS_TOKEN"})
    async with InProcessGateway(tmp_path, config, env={"CCGATE_TEST_METRICS_TOKEN": METRICS_TOKEN}) as gw:
        gw.app.listen_host = host  # as ccgate serve sets it (--host may override server.host)
        anonymous = await gw.request("GET", "/metrics")
        assert anonymous.status == (200 if open_ else 401), anonymous.body
        for credential in (METRICS_TOKEN, ADMIN_KEY):
            answer = await gw.request("GET", "/metrics", headers=bearer(credential))
            assert answer.status == 200 and b"ccgate_requests_total" in answer.body
        wrong = await gw.request("GET", "/metrics", headers=bearer("not-the-token-0123456789"))
        assert wrong.status == (200 if open_ else 401)
        assert METRICS_TOKEN not in gw.app.metrics.render().decode()


async def test_metrics_on_a_public_address_without_any_credential_says_what_to_set(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, {"providers": [anthropic()]}) as gw:
        gw.app.listen_host = "0.0.0.0"
        answer = await gw.request("GET", "/metrics")
        assert answer.status == 401
        message = answer.json()["error"]["message"]
        assert "server.metrics.token" in message and "server.metrics.auth: none" in message


def test_metrics_token_must_be_long_enough(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.metrics\.token"):
        InProcessGateway(tmp_path, server(metrics={"token": "short"}))


async def test_a_reload_applies_a_new_metrics_token(tmp_path: Path) -> None:
    env = {"CCGATE_TEST_METRICS_TOKEN": METRICS_TOKEN}
    async with InProcessGateway(tmp_path, server(metrics={"auth": "required"}), env=env) as gw:
        assert (await gw.request("GET", "/metrics", headers=bearer(METRICS_TOKEN))).status == 401
        gw.write_config(server(metrics={"auth": "required", "token": "env:CCGATE_TEST_METRICS_TOKEN"}))
        assert (await gw.app.reload("test")).reloaded
        assert (await gw.request("GET", "/metrics", headers=bearer(METRICS_TOKEN))).status == 200
        assert json.loads((await gw.request("GET", "/readyz")).body) == {"status": "ready"}
