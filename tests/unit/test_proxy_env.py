import pytest

from ccgate.proxy_env import (
    ProxyURLError,
    no_proxy_matches,
    parse_proxy_url,
    resolve_proxy,
)

API = "https://api.anthropic.com"


def test_precedence_follows_claude_code() -> None:
    env = {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128",
           "HTTP_PROXY": "http://plain:3128", "ALL_PROXY": "socks5://all:1080"}
    assert resolve_proxy(API, None, env).proxy.host == "lower"  # type: ignore[union-attr]
    del env["https_proxy"]
    assert resolve_proxy(API, None, env).proxy.host == "upper"  # type: ignore[union-attr]
    del env["HTTPS_PROXY"]
    assert resolve_proxy(API, None, env).proxy.host == "plain"  # type: ignore[union-attr]
    del env["HTTP_PROXY"]
    decision = resolve_proxy(API, None, env)
    assert decision.proxy is not None and decision.proxy.scheme == "socks5"
    assert decision.proxy.source == "ALL_PROXY"


def test_config_proxy_wins_and_none_disables() -> None:
    env = {"HTTPS_PROXY": "http://env:3128"}
    assert resolve_proxy(API, "http://cfg:8080", env).proxy.host == "cfg"  # type: ignore[union-attr]
    assert resolve_proxy(API, "none", env).proxy is None


def test_no_proxy_exempts_and_explains() -> None:
    env = {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "localhost, .anthropic.com"}
    decision = resolve_proxy(API, None, env)
    assert decision.proxy is None
    assert ".anthropic.com" in decision.reason


@pytest.mark.parametrize(
    ("entries", "host", "port", "hit"),
    [
        (["*"], "api.anthropic.com", 443, "*"),
        (["anthropic.com"], "api.anthropic.com", 443, None),  # Claude Code: exact host only
        (["api.anthropic.com"], "api.anthropic.com", 443, "api.anthropic.com"),
        ([".anthropic.com"], "anthropic.com", 443, ".anthropic.com"),
        (["*.anthropic.com"], "api.anthropic.com", 443, "*.anthropic.com"),
        (["notanthropic.com"], "api.anthropic.com", 443, None),
        (["localhost"], "127.0.0.1", 4545, None),  # names are never resolved
        (["127.0.0.0/8"], "127.0.0.1", 4545, "127.0.0.0/8"),
        (["127.0.0.1:4545"], "127.0.0.1", 4545, "127.0.0.1:4545"),
        (["127.0.0.1:4546"], "127.0.0.1", 4545, None),
        (["::1"], "::1", 80, "::1"),
        (["[::1]:80"], "::1", 80, "[::1]:80"),
        (["API.Anthropic.COM"], "api.anthropic.com", 443, "API.Anthropic.COM"),
    ],
)
def test_no_proxy_matching(entries: list[str], host: str, port: int, hit: str | None) -> None:
    assert no_proxy_matches(entries, host, port) == hit


def test_bare_entry_as_suffix_for_curl_style_clients() -> None:
    assert no_proxy_matches(["anthropic.com"], "api.anthropic.com", 443,
                            bare_covers_subdomains=True) == "anthropic.com"
    assert no_proxy_matches(["127.0.0.1:4545"], "127.0.0.1") == "127.0.0.1:4545"


def test_credentials_are_percent_decoded_and_never_displayed() -> None:
    spec = parse_proxy_url("http://al%40ice:p%40ss%3Aw%2Frd@proxy.corp:3128")
    assert (spec.username, spec.password, spec.port) == ("al@ice", "p@ss:w/rd", 3128)
    assert "p@ss" not in spec.display and "p@ss" not in repr(spec)
    assert spec.display == "http://al@ice:***@proxy.corp:3128"


def test_unencoded_at_sign_in_password_still_finds_host() -> None:
    spec = parse_proxy_url("http://bob:p@ss@proxy.corp:3128")
    assert spec.host == "proxy.corp" and spec.password == "p@ss"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("proxy.corp:3128", "no scheme"),
        ("'http://proxy.corp:3128'", "quotes"),
        ("ftp://proxy.corp:21", "not supported"),
        ("http://proxy.corp:99999", "port"),
        ("http://:3128", "no host"),
    ],
)
def test_bad_proxy_urls(raw: str, fragment: str) -> None:
    with pytest.raises(ProxyURLError, match=fragment):
        parse_proxy_url(raw)


def test_bad_proxy_error_masks_password() -> None:
    with pytest.raises(ProxyURLError) as info:
        parse_proxy_url("bob:hunter22@proxy.corp:3128")
    assert "hunter22" not in str(info.value)


def test_default_ports() -> None:
    assert parse_proxy_url("http://p").port == 80
    assert parse_proxy_url("https://p").port == 443
    assert parse_proxy_url("socks5h://p").port == 1080
