from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.harness import Gateway
from tests.lab.certs import LabPKI
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic

CLIENT_TOKEN = "ccgate-test-client-token-0123456789"


@pytest.fixture(scope="session")
def gw_pki() -> LabPKI:
    return LabPKI()


@pytest.fixture(scope="session")
def gw_ca_file(gw_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gw_pki.write_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def upstream(gw_pki: LabPKI) -> Iterator[FakeAnthropic]:
    with FakeAnthropic(gw_pki.server_context()) as fake:
        yield fake


# The admin key of authed_config: /readyz shows its detail only to the admin (server/access.py).
OPS_ADMIN_KEY = "ops-admin-key-for-gateway-tests-0123456789"


def readyz(gw: Gateway, timeout: float = 5.0) -> httpx.Response:
    """GET /readyz with the admin key: status and the per-provider detail."""
    return httpx.get(gw.url + "/readyz", headers={"authorization": f"Bearer {OPS_ADMIN_KEY}"},
                     timeout=timeout)


def provider_config(base_url: str, ca_file: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "anthropic", "kind": "anthropic", "base_url": base_url,
            "api_keys": [LAB_API_KEY], "tls": {"ca_file": str(ca_file)}, **extra}


def authed_config(base_url: str, ca_file: Path, **provider_extra: Any) -> dict[str, Any]:
    return {
        "server": {"auth": {"tokens": [{"name": "tester", "token": CLIENT_TOKEN}]},
                   "admin": {"key": OPS_ADMIN_KEY}},
        "providers": [provider_config(base_url, ca_file, **provider_extra)],
    }


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    started: list[Gateway] = []

    def make(config: dict[str, Any], env: dict[str, str] | None = None,
             args: list[str] | None = None) -> Gateway:
        gw = Gateway(tmp_path / f"gw{len(started)}", config, env, args)
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.stop()
