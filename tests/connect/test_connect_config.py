"""The connect backend without a network: input checks, tier routes, the round-trip YAML edit,
the secrets file, and the verdicts on recorded answers. ``connect(test=False)`` sends nothing."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest

from ccgate.config.load import load_config
from ccgate.config.model import Provider
from ccgate.connect import ConnectError, Connector, ProviderInput, parse_map, plan_tiers
from ccgate.connect.inputs import name_from_url
from ccgate.connect.tiers import SUBAGENT_ID
from ccgate.connect.verdict import Answer, judge, tools_verdict

KEY = "sk-connect-test-0123456789abcdef"
USER_CONFIG = """\
# My gateway. Do not lose this comment.
server:
  port: 4999          # not the default port
  auth:
    tokens:
      - {name: alice, token: env:ALICE_TOKEN}   # flow style stays flow style

providers:
  - name: anthropic     # the team's Anthropic account
    api_keys: [env:ANTHROPIC_API_KEY]
    proxy: http://proxy.corp:3128

models:
  - match: "claude-team-default"   # an alias
    to: anthropic/claude-opus-4-8
"""
ENV = {"ALICE_TOKEN": "alice-token-123456", "ANTHROPIC_API_KEY": "sk-ant-xxxxxxxxxxxx"}


def _connect(path: Path, spec: ProviderInput, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return asyncio.run(Connector(path, ENV if env is None else env).connect(spec, test=False))


def _openai(**kw: object) -> ProviderInput:
    args: dict[str, object] = {"base_url": "http://127.0.0.1:9/v1", "kind": "openai-compatible",
                               "name": "lab", "key": KEY, "models": ("m1",)}
    return ProviderInput(**{**args, **kw})  # type: ignore[arg-type]


def test_round_trip_keeps_comments_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    path.write_text(USER_CONFIG)
    result = _connect(path, _openai())
    assert result.action == "added"
    text = path.read_text()
    for line in USER_CONFIG.splitlines():  # every line of the user's survives as it was
        assert line in text, line
    assert "- {name: lab" not in text and "  - name: lab\n" in text
    loaded = load_config(str(path), ENV)
    assert [p.name for p in loaded.config.providers] == ["anthropic", "lab"]
    assert [(r.match, r.to) for r in loaded.config.models] == [
        ("claude-team-default", "anthropic/claude-opus-4-8"), ("*", "lab/m1")]
    assert loaded.secrets.provider_keys["lab"][0].value == KEY


def test_key_goes_to_a_0600_file_never_into_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    result = _connect(path, _openai())
    assert KEY not in path.read_text()
    assert "file:secrets/lab.key" in path.read_text()
    secret = tmp_path / "secrets" / "lab.key"
    assert result.secret_file == secret and secret.read_text().strip() == KEY
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    assert KEY not in json.dumps(result.to_dict()) and KEY not in repr(_openai())


def test_env_and_file_references_are_stored_as_given(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    _connect(path, _openai(key="env:LAB_KEY"), {"LAB_KEY": KEY})
    assert "api_keys: [env:LAB_KEY]" in path.read_text()
    assert not (tmp_path / "secrets").exists()


def test_reconnect_updates_instead_of_duplicating(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    path.write_text(USER_CONFIG)
    _connect(path, _openai())
    first_backup = sorted((tmp_path / "ccgate-backups").iterdir())
    again = _connect(path, _openai())
    assert again.action == "unchanged"
    assert sorted((tmp_path / "ccgate-backups").iterdir()) == first_backup  # no write, no backup
    updated = _connect(path, _openai(models=("m2",), tiers={"haiku": "small"}, key=None))
    assert updated.action == "updated"
    config = load_config(str(path), ENV).config
    assert [p.name for p in config.providers].count("lab") == 1
    assert [(r.match, r.to) for r in config.models] == [
        ("claude-team-default", "anthropic/claude-opus-4-8"),
        ("claude-*haiku*", "lab/small"), ("*", "lab/m2")]
    assert (tmp_path / "secrets" / "lab.key").read_text().strip() == KEY  # the stored key reused


def test_preset_entry_is_what_a_person_would_write(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    _connect(path, ProviderInput(preset="deepseek", key="env:DS_KEY"), {"DS_KEY": KEY})
    text = path.read_text()
    assert "- preset: deepseek\n" in text and "name:" not in text
    assert "to: deepseek\n" in text or "to: deepseek}" in text  # maps claude-* names itself


@pytest.mark.parametrize(("spec", "fragment"), [
    (ProviderInput(preset="nope", key=KEY), "unknown preset"),
    (ProviderInput(base_url="ftp://x", kind="openai-compatible", key=KEY, models=("m",)), "http"),
    (ProviderInput(base_url="https://h.example/v1", kind="anthropic-compatible", key=KEY), "/v1"),
    (ProviderInput(base_url="https://h.example/v1/chat/completions", kind="openai-compatible",
                   key=KEY, models=("m",)), "appends /chat/completions"),
    (ProviderInput(preset="deepseek"), "needs a key"),
    # no model: the message lists what the provider offers (nothing listens on port 9)
    (ProviderInput(base_url="http://127.0.0.1:9/v1", kind="openai-compatible", key=KEY), "--model"),
    (ProviderInput(base_url="https://h.example/v1", kind="openai-compatible", name="a/b",
                   key=KEY, models=("m",)), "name"),
    (ProviderInput(preset="ollama", key="env:NOT_SET_ANYWHERE", models=("m",)), "NOT_SET_ANYWHERE"),
    (ProviderInput(preset="ollama", models=("m",), tiers={"tiny": "x"}), "unknown tier"),
])
def test_bad_input_changes_nothing_on_disk(tmp_path: Path, spec: ProviderInput, fragment: str) -> None:
    path = tmp_path / "ccgate.yaml"
    path.write_text(USER_CONFIG)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ConnectError) as err:
        asyncio.run(Connector(path, ENV).connect(spec, test=False))
    assert err.value.bad_input and fragment in err.value.message
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert sorted(tmp_path.iterdir()) == [path]


def test_a_result_that_would_not_load_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    path.write_text("providers:\n  - name: lab\n    kind: openai-compatible\n    base_url: http://h/v1\n"
                    "    tls: {ca_file: /nonexistent/ca.pem}   # kept by an update, and invalid\n")
    before = path.read_bytes()
    with pytest.raises(ConnectError, match="ca_file"):
        asyncio.run(Connector(path, ENV).connect(_openai(), test=False))
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


def test_unset_env_reference_of_another_provider_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    path.write_text(USER_CONFIG)
    result = _connect(path, _openai(), {"ALICE_TOKEN": "alice-token-123456"})
    assert result.saved
    assert any("ANTHROPIC_API_KEY" in w for w in result.warnings)


def test_remove_drops_routes_and_fallbacks(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    path.write_text(USER_CONFIG + "  - {match: other, to: anthropic, fallbacks: [lab]}\n")
    _connect(path, _openai())
    result = Connector(path, ENV).remove("lab")
    assert result.routes_removed == ("*",)
    config = load_config(str(path), ENV).config
    assert [p.name for p in config.providers] == ["anthropic"]
    assert [r.fallbacks for r in config.models if r.match == "other"] == [[]]
    assert "# My gateway. Do not lose this comment." in path.read_text()
    with pytest.raises(ConnectError, match="no provider named"):
        Connector(path, ENV).remove("lab")


def test_providers_lists_references_never_values(tmp_path: Path) -> None:
    path = tmp_path / "ccgate.yaml"
    path.write_text(USER_CONFIG)
    _connect(path, _openai())
    listed = {p.name: p for p in Connector(path, ENV).providers()}
    assert listed["lab"].key_refs == ("file:secrets/lab.key",)
    assert listed["anthropic"].key_refs == ("env:ANTHROPIC_API_KEY",)
    assert [r.to for r in listed["lab"].routes] == ["lab/m1"]


# -- tiers ---------------------------------------------------------------------------------


def test_one_model_serves_every_tier() -> None:
    plan = plan_tiers("p", "m", {})
    assert [(r.match, r.to) for r in plan.routes] == [("*", "p/m")] and not plan.claude_code_env


def test_tier_map_routes_and_subagent() -> None:
    plan = plan_tiers("p", "big", parse_map("opus=huge, haiku=small,subagent=helper"))
    assert [(r.match, r.to, r.tier) for r in plan.routes] == [
        (SUBAGENT_ID, "p/helper", "subagent"), ("claude-*opus*", "p/huge", "opus"),
        ("claude-*haiku*", "p/small", "haiku"), ("*", "p/big", "main")]
    assert plan.claude_code_env == {"CLAUDE_CODE_SUBAGENT_MODEL": SUBAGENT_ID}
    aliased = plan_tiers("p", "big", {"haiku": "small", "subagent": "small"})
    assert aliased.claude_code_env == {"CLAUDE_CODE_SUBAGENT_MODEL": "haiku"}


@pytest.mark.parametrize("text", ["opus", "opus=", "giant=x"])
def test_bad_map(text: str) -> None:
    with pytest.raises(ConnectError) as err:
        parse_map(text)
    assert err.value.bad_input


def test_names_from_urls() -> None:
    assert name_from_url("https://api.deepseek.com/v1") == "deepseek"
    assert name_from_url("https://openrouter.ai/api/v1") == "openrouter"
    assert name_from_url("http://127.0.0.1:8000/v1") == "local-8000"


# -- verdicts ------------------------------------------------------------------------------

OPENAI = Provider(name="lab", kind="openai-compatible", base_url="http://h.example", auth_header="bearer")


def test_401_quotes_the_provider_and_masks_the_key() -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}",
                                 "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
    verdict = judge(OPENAI, "http://h.example/chat/completions", "m",
                    Answer(401, [("content-type", "application/json")], body), [KEY])
    assert not verdict.ok and verdict.finding == "api.invalid_key"
    assert "Incorrect API key provided" in verdict.message and KEY not in verdict.message


def test_404_suggests_the_missing_v1() -> None:
    verdict = judge(OPENAI, "http://h.example/chat/completions", "m",
                    Answer(404, [("content-type", "text/plain")], b"404 page not found"), [])
    assert verdict.finding == "api.wrong_path" and "try http://h.example/v1" in verdict.message


def test_html_200_is_not_the_api() -> None:
    verdict = judge(OPENAI, "http://h.example/chat/completions", "m",
                    Answer(200, [("content-type", "text/html")], b"<html><body>Login</body></html>"), [])
    assert verdict.finding == "http.intermediary_response" and "HTML" in verdict.message


def test_tools_verdicts() -> None:
    assert tools_verdict({"content": [{"type": "tool_use", "name": "get_weather"}]})[0] == "tool_call"
    text = {"content": [{"type": "text", "text": '{"name": "get_weather", "arguments": {}}'}]}
    verdict, message = tools_verdict(text)
    assert verdict == "text_instead" and "plain text" in message
    assert tools_verdict({"content": [{"type": "text", "text": "It is sunny."}]})[0] == "no_call"
