"""``ccgate setup claude-code --login URL``: the two keys that make /login offer the gateway,
in user settings or (``--managed``) the managed-settings file; backup, undo, the URL rules."""

from __future__ import annotations

import json
from typing import Any

from tests.setup.conftest import Home

URL = "http://127.0.0.1:4545"


def test_login_writes_user_settings_with_backup_and_undo(home: Home, cli: Any) -> None:
    home.write_settings('{\n  "model": "opus",\n  "env": {"ANTHROPIC_AUTH_TOKEN": "ccg_old-token-0123456789"}\n}\n')
    before = home.settings.read_bytes()
    result = cli("--login", URL + "/", "--no-verify")
    assert result.code == 0, result.err
    data = json.loads(home.settings.read_text())
    assert data["forceLoginMethod"] == "gateway" and data["forceLoginGatewayUrl"] == URL
    assert data["model"] == "opus"  # everything else kept
    assert "ignores it while signed in" in result.out and "ccg_old-token-0123456789" not in result.out
    assert "undo with: ccgate setup claude-code --undo" in result.out
    again = cli("--login", URL, "--no-verify")
    assert again.code == 0 and "Nothing to change" in again.out
    undone = cli("--undo", "--yes")
    assert undone.code == 0, undone.err
    assert home.settings.read_bytes() == before


def test_login_managed_writes_the_managed_file(home: Home, cli: Any) -> None:
    result = cli("--login", "https://ccgate.corp.internal", "--managed", "--no-verify")
    assert result.code == 0, result.err
    managed = json.loads((home.managed / "managed-settings.json").read_text())
    assert managed == {"forceLoginMethod": "gateway", "forceLoginGatewayUrl": "https://ccgate.corp.internal"}
    assert not home.settings.exists()
    user = cli("--login", URL, "--no-verify")  # the managed file wins: the developer is told
    assert user.code == 0 and "already configures the sign-in" in user.out


def test_login_refuses_urls_claude_code_refuses(home: Home, cli: Any) -> None:
    for url, why in (("http://10.0.0.5:4545", "plain http only for localhost"),
                     ("https://8.8.8.8", "public address"), ("ftp://x", "absolute http(s) URL")):
        result = cli("--login", url, "--no-verify")
        assert result.code == 2 and why in result.err, result.err
    assert not home.settings.exists()
    mixed = cli("--login", URL, "--key", "ccg_x")
    assert mixed.code == 2 and "--login replaces" in mixed.err
    assert cli("--managed").code == 2


def test_login_checks_the_gateway_answers_discovery(home: Home, cli: Any) -> None:
    result = cli("--login", "http://127.0.0.1:9", "--yes")  # nothing listens on port 9
    assert result.code == 1 and "FAIL cannot read http://127.0.0.1:9/.well-known/oauth-authorization-server" in result.out
    assert json.loads(home.settings.read_text())["forceLoginGatewayUrl"] == "http://127.0.0.1:9"
