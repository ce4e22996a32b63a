"""The command line around the gateway: config errors, safe exposure, config check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.harness import clean_env

pytestmark = pytest.mark.lab


def ccgate(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccgate", *args], capture_output=True, text=True,
                          env=clean_env(env), cwd=cwd, timeout=30)


def test_bad_config_stops_start_with_file_and_key_path(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("providers:\n  - name: main\n    base_url: https://api.example.test/v1\n")
    served = ccgate("serve", "--config", str(config))
    checked = ccgate("config", "check", "--config", str(config))
    assert served.returncode == 2 and checked.returncode == 1
    for result in (served, checked):
        assert f"{config}: providers[0]" in result.stderr and "/v1" in result.stderr


def test_config_check_ok_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "ccgate.yaml"
    config.write_text(
        "server:\n  auth:\n    tokens: [env:TOK]\n"
        "providers:\n  - name: main\n    api_keys: [env:KEY]\n    proxy: http://bob:s3cr%40t@proxy.corp.test:3128\n"
    )
    result = ccgate("config", "check", env={"TOK": "client-token-value-123", "KEY": "sk-ant-key-value-456"},
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "config ok" in result.stdout and "http://bob:***@proxy.corp.test:3128" in result.stdout
    for secret in ("client-token-value-123", "sk-ant-key-value-456", "s3cr"):
        assert secret not in result.stdout + result.stderr


def test_bad_proxy_in_environment_is_a_clear_error(tmp_path: Path) -> None:
    result = ccgate("config", "check", env={"HTTPS_PROXY": "proxy.corp.test:3128"}, cwd=tmp_path)
    assert result.returncode == 1
    assert "HTTPS_PROXY: the proxy URL has no scheme" in result.stderr


def test_refuses_public_address_without_auth(tmp_path: Path) -> None:
    # The check happens before binding, so nothing listens beyond loopback here.
    result = ccgate("serve", "--host", "0.0.0.0", "--port", "4599", cwd=tmp_path)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "--dangerously-allow-unauthenticated" in result.stderr


def test_exposure_rule() -> None:
    from ccgate.cli.serve import exposure_problem

    assert exposure_problem(False, "127.0.0.1", False) is None
    assert exposure_problem(False, "::1", False) is None
    assert exposure_problem(False, "10.1.2.3", False) is not None
    assert exposure_problem(False, "10.1.2.3", True) is None
    assert exposure_problem(True, "10.1.2.3", False) is None  # tokens or issued keys


def test_version_and_help() -> None:
    assert ccgate("--version").stdout.startswith("ccgate ")
    result = ccgate()
    assert result.returncode == 2 and "serve" in result.stderr
