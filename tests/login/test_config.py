"""The ``login:`` section is checked whole when the config loads: a broken policy, a URL
Claude Code would refuse, or a weak secret is a ConfigError at ``config check``, serve and
reload, never something served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ccgate.config.load import load_config
from ccgate.errors import ConfigError
from ccgate.login.policy import checksum, compile_policy
from ccgate.login.urls import check_public_url
from tests.gateway.inprocess import InProcessGateway
from tests.login.harness import login_config


def load(tmp_path: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "ccgate.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_config(str(path), env or {})


@pytest.mark.parametrize(("policy", "message"), [
    ({"settings": {"availableModel": ["x"]}}, "policies[0].settings: Object contains unknown field `availableModel`"),
    ({"settings": {"env": {"OTEL_METRICS_EXPORTER": 1}}}, "policies[0].settings.env.OTEL_METRICS_EXPORTER: must be a string"),
    ({"settings": {"availableModels": []}}, "availableModels: list at least one"),
    ({"settings": {"permissions": {"defaultMode": "yolo"}}}, "permissions.defaultMode"),
    ({"settings": {}}, "give at least one managed setting"),
    ({"groups": [""], "settings": {"model": "x"}}, "groups: group names must not be empty"),
    ({"match": {"groups": ["a"]}, "settings": {"model": "x"}}, "unknown field `match`"),
])
def test_a_broken_policy_is_refused_at_load(tmp_path: Path, policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, login_config(tmp_path, policies=[policy]))
    assert message in str(err.value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("public_url", "http://10.1.2.3:4545", "plain http only for localhost"),
    ("public_url", "https://8.8.8.8", "public address"),
    ("public_url", "https://gw.corp.internal/ccgate", "origin only"),
    ("session", {"jwt_secret": "short", "ttl": 3600}, "at least 32"),
    ("session", {"jwt_secret": "env:MISSING_SECRET"}, "MISSING_SECRET is not set"),
    ("session", {"jwt_secret": "x" * 40, "ttl": "1y"}, "not a duration"),
    ("session", {"jwt_secret": "x" * 40, "ttl": 10}, "outside"),
    ("oidc", {"issuer": "http://idp.corp.example", "client_id": "c"}, "over https"),
    ("oidc", {"issuer": "https://idp.example", "client_id": "c", "scopes": ["email"]}, "must include openid"),
])
def test_login_settings_claude_code_would_refuse_are_errors(tmp_path: Path, field: str, value: Any,
                                                            message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, login_config(tmp_path, **{field: value}))
    assert message in str(err.value) and "login." in str(err.value)


def test_accepted_urls_and_secret_references(tmp_path: Path) -> None:
    assert check_public_url("http://localhost:4545/") == "http://localhost:4545"
    assert check_public_url("https://10.0.0.5") == "https://10.0.0.5"
    assert check_public_url("https://ccgate.corp.internal") == "https://ccgate.corp.internal"
    assert check_public_url("https://[fd00::1]:8443") == "https://[fd00::1]:8443"
    assert check_public_url("https://100.64.1.1") == "https://100.64.1.1"
    assert check_public_url("https://8.8.8.8", allow_public_address=True) == "https://8.8.8.8"
    config = login_config(tmp_path, session={"jwt_secret": "env:CCGATE_JWT", "ttl": "30m"})
    config["login"]["oidc"]["client_secret"] = "file:idp.secret"
    (tmp_path / "idp.secret").write_text("from-a-file\n")
    loaded = load(tmp_path, config, {"CCGATE_JWT": "j" * 48})
    assert loaded.login.ttl == 1800 and loaded.login.oidc.client_secret == "from-a-file"
    assert "from-a-file" not in repr(loaded.login) and "j" * 48 not in repr(loaded.login)


def test_login_needs_provider_keys_and_the_store(tmp_path: Path) -> None:
    config = login_config(tmp_path)
    config["providers"][0]["api_keys"] = []
    with pytest.raises(ConfigError, match="client authentication is on"):
        load(tmp_path, config)
    config = login_config(tmp_path)
    config["store"] = {"enabled": False}
    with pytest.raises(ConfigError, match="enable the store"):
        InProcessGateway(tmp_path, config)


def test_checksum_is_the_documented_rule() -> None:
    settings = {"permissions": {"deny": ["WebFetch"]}, "availableModels": ["claude-opus-4-7"],
                "env": {"B": "2", "A": "1"}}
    # The value Anthropic's gateway computes: sorted keys, compact separators.
    canonical = '{"availableModels":["claude-opus-4-7"],"env":{"A":"1","B":"2"},"permissions":{"deny":["WebFetch"]}}'
    import hashlib

    assert checksum(settings) == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    policy = compile_policy(0, ["eng"], settings)
    assert policy.checksum == checksum(settings) and policy.etag == f'"{policy.checksum}"'


@pytest.mark.parametrize(("allowed", "model", "ok"), [
    (["claude-haiku-4-5"], "claude-haiku-4-5", True),
    (["claude-haiku-4-5"], "claude-haiku-4-5-20251001", True),
    (["claude-haiku-4-5"], "claude-haiku-4-5-evil", False),
    (["claude-haiku-4-5"], "claude-opus-4-7", False),
    (["sonnet"], "claude-sonnet-4-6", True),
    (["sonnet"], "claude-opus-4-7", False),
    (["claude-*-4-5*"], "claude-sonnet-4-5-20250929", True),
])
def test_available_models_matching(allowed: list[str], model: str, ok: bool) -> None:
    assert compile_policy(0, [], {"availableModels": allowed}).allows_model(model) is ok


async def test_a_reload_with_a_broken_policy_is_refused_and_the_old_one_serves(tmp_path: Path) -> None:
    from tests.lab.oidc_idp import TestIdP
    from tests.login.harness import bearer, sign_in, with_idp

    idp = TestIdP("http://127.0.0.1:9")
    config = login_config(tmp_path)
    async with InProcessGateway(tmp_path, config) as gw:
        with_idp(gw, idp)
        tokens = await sign_in(gw, idp)
        before = (await gw.request("GET", "/managed/settings", headers=bearer(tokens["access_token"]))).json()
        config["login"]["policies"] = [{"groups": ["engineering"], "settings": {"availableModels": "all"}}]
        gw.write_config(config)
        outcome = await gw.app.reload("test")
        assert not outcome.reloaded and "login.policies[0].settings" in outcome.message
        after = await gw.request("GET", "/managed/settings", headers=bearer(tokens["access_token"]))
        assert after.status == 200 and after.json() == before
        # A good change applies at once, and pending sign-ins survive the reload.
        config["login"]["policies"] = [{"settings": {"permissions": {"deny": ["Bash"]}}}]
        gw.write_config(config)
        assert (await gw.app.reload("test")).reloaded
        changed = await gw.request("GET", "/managed/settings", headers=bearer(tokens["access_token"]))
        assert changed.json()["settings"] == {"permissions": {"deny": ["Bash"]}}


def test_config_check_refuses_a_broken_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ccgate.cli.main import main

    path = tmp_path / "ccgate.yaml"
    path.write_text(yaml.safe_dump(login_config(tmp_path, policies=[{"settings": {"env": {"X": True}}}])))
    assert main(["config", "check", "--config", str(path)]) == 1  # config errors exit 1
    err = capsys.readouterr().err
    assert "login.policies[0].settings.env.X: must be a string" in err


def test_config_check_describes_the_login_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ccgate.cli.main import main

    path = tmp_path / "ccgate.yaml"
    path.write_text(yaml.safe_dump(login_config(tmp_path)))
    assert main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Claude Code /login: http://127.0.0.1:4545 via http://127.0.0.1:9; session 3600 s; " \
           "policies: contractors, engineering" in out
    assert "jwt-secret-for-the-login-tests" not in out and "idp-client-secret" not in out
