from pathlib import Path

import pytest

from ccgate.config.load import find_config_file, load_config
from ccgate.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "ccgate.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    loaded = load_config(None, {})
    assert loaded.path is None
    (provider,) = loaded.config.providers
    assert provider.base_url == "https://api.anthropic.com"
    assert loaded.secrets.provider_keys["anthropic"] == []  # bring-your-own-key
    assert loaded.config.server.port == 4545 and loaded.config.server.host == "127.0.0.1"


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = tmp_path / "xdg" / "ccgate" / "ccgate.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("{}")
    assert find_config_file(None, {}) == user
    local = tmp_path / "ccgate.yaml"
    local.write_text("{}")
    assert find_config_file(None, {}) == local
    other = tmp_path / "other.yaml"
    other.write_text("{}")
    assert find_config_file(None, {"CCGATE_CONFIG": str(other)}) == other
    assert find_config_file(str(user), {"CCGATE_CONFIG": str(other)}) == user
    with pytest.raises(ConfigError, match="not found"):
        find_config_file(str(tmp_path / "missing.yaml"), {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("providers:\n  - name: a\n    base_url: 5\n", "providers[0].base_url: Expected `str`, got `int`"),
        ("providers:\n  - name: a\n    prxy: http://x\n", "unknown field `prxy`"),
        ("server:\n  port: 70000\n", "port 70000 is out of range"),
        ("providers:\n  - name: a\n    base_url: https://x.com/v1\n", "no kind:, so it would be treated as kind: anthropic"),
        ("providers:\n  - name: a\n    kind: anthropic\n    base_url: https://x.com/v1\n", "drop the /v1"),
        ("providers:\n  - name: a\n  - name: a\n", "providers[1].name: duplicate"),
        ("providers:\n  - name: a\nmodels:\n  - match: '*'\n    to: b/m\n", "models[0].to: unknown provider 'b'"),
        ("providers:\n  - name: a\n    proxy: proxy.corp:3128\n", "providers[0].proxy: the proxy URL has no scheme"),
        ("providers:\n  - name: a\n    kind: bogus\n", "providers[0].kind"),
        ("server: [1\n", "invalid YAML (line"),
        ("- 1\n", "top level must be a mapping"),
        ("providers:\n  - name: a\n    api_keys: [env:NOPE_NOT_SET]\n", "providers[0].api_keys[0]: environment variable NOPE_NOT_SET is not set"),
        ("providers:\n  - name: a\n    tls: {ca_file: /nonexistent.pem}\n", "providers[0].tls.ca_file: file not found"),
        ("providers:\n  - preset: deepsek\n", "providers[0].preset: unknown preset 'deepsek' (known: anthropic, deepseek"),
        ("providers:\n  - preset: olama\n", "did you mean 'ollama'?"),
        ("providers:\n  - name: a\n    kind: openai-compatible\n", "providers[0].base_url: required for an openai-compatible"),
        ("providers:\n  - preset: vllm\n    base_url: http://h/v1/chat/completions\n", "appends /chat/completions itself"),
        ("providers:\n  - preset: vllm\n    quirks: {reasoning_ech: true}\n", "quirks.reasoning_ech: unknown quirk"),
        ("providers:\n  - preset: vllm\n    quirks: {tool_name_max: many}\n", "Expected `int`, got `str` - at `$.tool_name_max`"),
        ("providers:\n  - preset: vllm\n    auth_header: none\n    api_keys: [k]\n", "auth_header is none but api_keys"),
        ("providers:\n  - name: a\nmodels:\n  - match: '*'\n    to: a\n    fallbacks: [a, z/m]\n", "models[0].fallbacks[1]: unknown provider 'z'"),
        ("providers:\n  - name: a\nmodels:\n  - match: '*'\n    to: a\n    max_tokens: 0\n", "max_tokens must be positive"),
        ("routing:\n  retries:\n    max_attempts: 0\n", "routing.retries: max_attempts must be at least 1"),
        ("routing:\n  retries:\n    deadline: -1\n", "routing.retries: deadline must not be negative"),
        ("routing:\n  retries:\n    cap: fast\n", "routing.retries.cap: Expected `float`, got `str`"),
        ("routing:\n  breaker:\n    window: 0\n", "routing.breaker: window and open_seconds must be positive"),
        ("routing:\n  breaker:\n    probe_timeout: 5\n", "routing.breaker: Object contains unknown field `probe_timeout`"),
    ],
)
def test_errors_name_file_and_key_path(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value).startswith(path)
    assert message in str(info.value)


def test_client_auth_requires_provider_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  auth:\n    tokens: [tok-123456789]\n")
    with pytest.raises(ConfigError, match="api_keys: client authentication is on"):
        load_config(path, {})


def test_secrets_resolve_and_stay_masked(tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text("sk-from-file-0123456789abcdef\n")
    path = write(
        tmp_path,
        "server:\n  auth:\n    tokens:\n      - {name: alice, token: env:ALICE}\n"
        "providers:\n  - name: a\n    api_keys: [file:key.txt, literal-key-abcdefghijkl]\n",
    )
    loaded = load_config(path, {"ALICE": "alice-secret-token-value"})
    keys = loaded.secrets.provider_keys["a"]
    assert [k.value for k in keys] == ["sk-from-file-0123456789abcdef", "literal-key-abcdefghijkl"]
    assert loaded.secrets.client_tokens["alice"].value == "alice-secret-token-value"
    shown = repr(loaded.secrets)
    assert "alice-secret-token-value" not in shown and "0123456789abcdef" not in shown


def test_presets_fill_what_is_not_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "providers:\n"
        "  - preset: gemini\n    api_keys: [k-gemini-0123456789]\n"
        "  - preset: ollama\n    base_url: http://10.0.0.5:11434/v1\n"
        "  - preset: vllm\n    name: gpu\n    api_keys: [k-vllm-0123456789]\n    quirks: {tool_name_max: 40}\n"
        "  - preset: kimi\n    api_keys: [k-kimi-0123456789]\n",
    )
    providers = {p.name: p for p in load_config(path, {}).config.providers}
    gemini = providers["gemini"]
    assert (gemini.kind, gemini.auth_header) == ("openai-compatible", "bearer")
    assert gemini.base_url == "https://generativelanguage.googleapis.com/v1beta/openai"
    assert "format" in gemini.openai_quirks().schema_strip
    ollama = providers["ollama"]
    assert ollama.base_url == "http://10.0.0.5:11434/v1" and ollama.auth_header == "none"
    assert ollama.openai_quirks().stream_with_tools is False
    gpu = providers["gpu"]  # self-hosted with a key: Bearer, and the user's quirk wins over none
    assert gpu.auth_header == "bearer" and gpu.openai_quirks().tool_name_max == 40
    assert providers["moonshot"].kind == "anthropic-compatible"
    assert providers["moonshot"].anthropic_quirks().max_tools == 128


def test_self_hosted_without_key_allowed_with_client_auth(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server:\n  auth:\n    tokens: [client-token-0123456789]\nproviders:\n  - preset: llamacpp\n",
    )
    loaded = load_config(path, {})
    assert loaded.secrets.provider_keys["llamacpp"] == []


def test_routing_config_is_the_one_source_of_the_policies_settings(tmp_path: Path) -> None:
    # config.model.Retries / BreakerSettings define the fields, defaults and checks once;
    # routing.RetryPolicy is a Retries and Breaker takes its defaults and checks from BreakerSettings.
    import inspect

    import msgspec

    from ccgate.config.model import BreakerSettings, Retries
    from ccgate.routing import Breaker, RetryPolicy

    assert issubclass(RetryPolicy, Retries)
    assert msgspec.structs.fields(RetryPolicy) == msgspec.structs.fields(Retries)
    breaker = inspect.signature(Breaker).parameters
    settings = msgspec.structs.asdict(BreakerSettings())
    assert {name: breaker[name].default for name in settings} == settings
    # What the file says is what the policies get, field for field.
    path = write(tmp_path, "routing:\n  retries: {max_attempts: 5, deadline: 20}\n"
                           "  breaker: {failure_threshold: 2, open_seconds: 7}\n")
    routing = load_config(path, {}).config.routing
    policy = RetryPolicy(**msgspec.structs.asdict(routing.retries))
    assert (policy.max_attempts, policy.deadline, policy.cap) == (5, 20.0, 8.0)
    b = Breaker("p", **msgspec.structs.asdict(routing.breaker))
    assert (b.failure_threshold, b.window, b.open_seconds) == (2, 60.0, 7.0)
    # Both sides reject the same values with the same words.
    for bad in ({"max_attempts": 0}, {"base": -1}):
        with pytest.raises(ValueError) as policy_error:
            RetryPolicy(**bad)
        with pytest.raises(ValueError) as config_error:
            Retries(**bad)
        assert str(policy_error.value) == str(config_error.value)


def test_server_limits_defaults_and_validation() -> None:
    from ccgate.config.model import Limits, Pool

    limits = Limits()
    assert (limits.max_header_bytes, limits.max_headers) == (65536, 100)
    assert limits.max_connections == 10_000 and limits.max_concurrent_requests is None
    assert Pool().max_connections is None  # no silent queue at the 257th stream
    for bad in ({"max_header_bytes": 100}, {"max_headers": 0}, {"header_timeout": 0},
                {"body_timeout": -1}, {"idle_timeout": 0}, {"max_connections": 0},
                {"max_concurrent_requests": 0}):
        with pytest.raises(ValueError, match="limits"):
            Limits(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"pool\.max_connections"):
        Pool(max_connections=0)


def test_a_full_gateway_pool_does_not_trip_the_providers_breaker() -> None:
    from ccgate.errors import UpstreamOverloaded, UpstreamUnreachable
    from ccgate.routing.outcome import classify

    pool = classify(None, UpstreamOverloaded("all busy", hop="pool"), {})
    assert not pool.trips_breaker and pool.failover.value != "none"
    assert classify(None, UpstreamUnreachable("refused", hop="connect"), {}).trips_breaker

@pytest.mark.parametrize(
    ("text", "message"),
    [
        # an unknown key: its own line, the closest known key, and every known key
        ("server:\n  port: 4545\nproviders:\n  - name: a\n    prxy: http://x\n",
         "providers[0]: Object contains unknown field `prxy`; did you mean 'proxy'? (known keys: api_keys, "),
        ("providers:\n  - name: a\n    prxy: http://x\n", "(line 3)"),
        ("server:\n  host: 127.0.0.1\n  prot: 80\n", "did you mean 'port'? (known keys: admin, auth, console, host,"),
        ("server:\n  host: 127.0.0.1\n  prot: 80\n", "(line 3)"),
        ("routing:\n  breaker:\n    probe_timeout: 5\n", "(line 3)"),
        # kind: openai is a preset, not a kind: the valid kinds, the near one, and the preset
        ("providers:\n  - name: a\n    kind: openai\n",
         "providers[0].kind: Invalid enum value 'openai'; did you mean 'openai-compatible'? (valid values: "
         "anthropic, anthropic-compatible, openai-compatible); for the provider itself, write preset: openai (line 3)"),
        ("providers:\n  - name: a\n    kind: antropic\n", "did you mean 'anthropic'?"),
        ("server:\n  port: x\n", "server.port: Expected `int`, got `str` (line 2)"),
        ("providers:\n  - name: a\n  - name: b\n    base_url: 5\n", "providers[1].base_url: Expected `str`, got `int` (line 4)"),
        ("server:\n  port: 1\n  port: 2\n", "invalid YAML (line 3"),  # YAML 1.2: duplicate keys are an error
    ],
)
def test_errors_give_the_line_and_a_did_you_mean(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert message in str(info.value)


def test_yaml_1_2_keeps_off_and_yes_strings(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML) read `proxy: off` as False and `name: no` as False.
    path = write(tmp_path, "providers:\n  - name: no\n    proxy: off\n    ipv4_only: true\n")
    provider = load_config(path, {}).config.providers[0]
    assert (provider.name, provider.proxy, provider.ipv4_only) == ("no", "off", True)
