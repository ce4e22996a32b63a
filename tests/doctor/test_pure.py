"""Unit tests for the doctor's pure parts: catalogue, masking, lint, classifiers, explain,
report/JSON and exit codes. No sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ccgate.doctor import CATALOGUE, REQUIRED_IDS, DoctorOptions
from ccgate.doctor.catalogue import LAYER_ORDER
from ccgate.doctor.classify import (
    ApiContext,
    auth_schemes,
    classify_api,
    classify_connect,
    classify_dns,
    classify_preflight,
    classify_tcp,
)
from ccgate.doctor.explain import decode
from ccgate.doctor.inputs import gather, preflight_reason
from ccgate.doctor.lint import lint, lint_proxy_value, plan_route
from ccgate.doctor.mask import mask_header, mask_secret, mask_url_userinfo
from ccgate.doctor.model import Report, Severity, finding, order_findings
from ccgate.doctor.net import ConnectAttempt, ConnectReply, HttpResponse, Resolution, parse_head
from ccgate.doctor.tlscheck import CertInfo, classify_tls_failure
from ccgate.proxy_env import parse_proxy_url

KEY = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-wxyz"


def opts(tmp_path: Path, env: dict[str, str], **kw: object) -> DoctorOptions:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return DoctorOptions(env={"HOME": str(home), **env}, home=home, cwd=tmp_path,
                         managed_dir=tmp_path / "no-managed", **kw)  # type: ignore[arg-type]


def ids(findings: list) -> list[str]:  # type: ignore[type-arg]
    return [f.id for f in findings]


# -- catalogue --------------------------------------------------------------------------


def test_catalogue_has_every_product_id_and_valid_layers() -> None:
    product = (Path(__file__).resolve().parents[2] / ".." / "shared" / "PRODUCT.md")
    for fid in REQUIRED_IDS:
        assert fid in CATALOGUE, fid
    if product.exists():  # keep REQUIRED_IDS in step with the brief
        text = product.read_text()
        block = text.split("## Doctor findings", 1)[1].split("##", 1)[0]
        import re

        listed = set(re.findall(r"\b[a-z]+\.[a-z0-9_]+\b", block)) - {"e.g"}
        assert listed <= set(REQUIRED_IDS), listed - set(REQUIRED_IDS)
    for fid, entry in CATALOGUE.items():
        assert entry.layer in LAYER_ORDER, fid
        assert entry.severity in ("ok", "warn", "fail")
        f = finding(fid, subject="x")
        assert f.summary and f.layer == entry.layer


# -- masking ----------------------------------------------------------------------------


def test_masking() -> None:
    assert mask_secret(KEY) == "sk-ant-...wxyz"
    assert mask_secret("short") == "***"
    assert mask_header("x-api-key", KEY) == "sk-ant-...wxyz"
    assert mask_header("Authorization", f"Bearer {KEY}") == "Bearer sk-ant-...wxyz"
    assert mask_header("Proxy-Authorization", "Basic dXNlcjpwYXNz") == "Basic ***"
    assert mask_url_userinfo("http://bob:s3cr@t@proxy:3128") == "http://bob:***@proxy:3128"
    assert mask_url_userinfo("http://proxy:3128") == "http://proxy:3128"


def test_report_json_scrubs_every_secret() -> None:
    f = finding("api.invalid_key", subject="h", evidence=[f"x-api-key: {KEY}", "pw=p%40ss"],
                host="h", credential=KEY, status=401, message="bad", var="ANTHROPIC_API_KEY")
    report = Report(findings=[f], secrets=[KEY, "p%40ss"])
    text = report.to_json()
    assert KEY not in text and "p%40ss" not in text
    data = json.loads(text)
    assert data["findings"][0]["id"] == "api.invalid_key"
    assert set(data["findings"][0]) >= {"id", "severity", "layer", "summary", "evidence", "fix"}
    assert data["exit_code"] == 1 and data["ok"] is False


def test_order_root_cause_first_and_dedup() -> None:
    a = finding("api.rate_limited", subject="h", host="h")
    b = finding("proxy.denied", subject="p", proxy="p", host="h", port=443, status=403, vendor="")
    c = finding("env.base_url_has_v1", url="u", fixed="f")
    d = finding("proxy.denied", subject="p", proxy="p", host="h", port=443, status=403, vendor="")
    out = order_findings([a, b, c, d])
    assert ids(out) == ["env.base_url_has_v1", "proxy.denied", "api.rate_limited"]
    assert Report(findings=[a]).exit_code == 0
    assert Report(findings=out).exit_code == 1


# -- lint -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fid", "severity"),
    [
        ("proxy.corp:3128", "env.proxy_malformed", "fail"),
        ('"http://proxy.corp:3128"', "env.proxy_malformed", "fail"),
        ("http://bob:s3cr@t:p/w@proxy.corp:3128", "env.proxy_malformed", "fail"),
        ("socks5://proxy.corp:1080", "env.proxy_scheme_unsupported", "fail"),
        ("socks5h://proxy.corp:1080", "env.proxy_scheme_unsupported", "fail"),
        ("https://proxy.corp:3128", "env.proxy_scheme_unsupported", "warn"),
        ("http://proxy.corp", "env.proxy_malformed", "warn"),
        ("ftp://proxy.corp:21", "env.proxy_malformed", "fail"),
        ("http://proxy.corp:3128 ", "env.proxy_malformed", "warn"),
    ],
)
def test_proxy_value_lint(value: str, fid: str, severity: str) -> None:
    found = lint_proxy_value("HTTPS_PROXY", value)
    assert found, value
    assert found[0].id == fid
    assert str(found[0].severity) == severity
    assert "s3cr" not in json.dumps([f.to_dict() for f in found])


def test_proxy_value_ok() -> None:
    assert lint_proxy_value("HTTPS_PROXY", "http://bob:s3cr%40t@proxy.corp:3128") == []


def test_lint_case_conflict_and_route_precedence(tmp_path: Path) -> None:
    o = opts(tmp_path, {"https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:2",
                        "ANTHROPIC_AUTH_TOKEN": "t" * 20})
    inputs = gather(o)
    assert "env.proxy_case_conflict" in ids(lint(inputs, o))
    route = plan_route("https://api.anthropic.com/v1/messages", inputs, o)
    assert route.proxy is not None and route.proxy.host == "a"  # lowercase wins, as in CC


def test_lint_base_url_v1(tmp_path: Path) -> None:
    o = opts(tmp_path, {"ANTHROPIC_BASE_URL": "https://api.deepseek.com/anthropic/v1/",
                        "ANTHROPIC_AUTH_TOKEN": "t" * 20})
    found = lint(gather(o), o)
    f = next(f for f in found if f.id == "env.base_url_has_v1")
    assert f.severity is Severity.FAIL
    assert "https://api.deepseek.com/anthropic'" in f.fix[0]


def test_lint_no_proxy_misses_gateway_exact_host(tmp_path: Path) -> None:
    o = opts(tmp_path, {"ANTHROPIC_BASE_URL": "http://127.0.0.1:4545",
                        "HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "localhost",
                        "ANTHROPIC_AUTH_TOKEN": "t" * 20})
    inputs = gather(o)
    f = next(f for f in lint(inputs, o) if f.id == "env.no_proxy_misses_gateway")
    assert any("localhost' in NO_PROXY does not cover 127.0.0.1" in e for e in f.evidence)
    assert "localhost,127.0.0.1" in f.fix[0]
    o2 = opts(tmp_path, {**dict(o.env or {}), "NO_PROXY": "localhost,127.0.0.1"})
    assert "env.no_proxy_misses_gateway" not in ids(lint(gather(o2), o2))
    assert plan_route("http://127.0.0.1:4545/v1/messages", gather(o2), o2).proxy is None


def test_lint_no_proxy_bypasses_api(tmp_path: Path) -> None:
    o = opts(tmp_path, {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".com",
                        "ANTHROPIC_AUTH_TOKEN": "t" * 20})
    f = next(f for f in lint(gather(o), o) if f.id == "env.no_proxy_bypasses_api")
    assert f.subject == "api.anthropic.com" and ".com" in f.summary


def test_lint_auth_conflict(tmp_path: Path) -> None:
    o = opts(tmp_path, {"ANTHROPIC_AUTH_TOKEN": "t" * 20, "ANTHROPIC_API_KEY": KEY})
    f = next(f for f in lint(gather(o), o) if f.id == "env.auth_conflict")
    assert f.fix == ["unset ANTHROPIC_API_KEY"]
    o2 = opts(tmp_path, {"ANTHROPIC_AUTH_TOKEN": "t" * 20, "ANTHROPIC_API_KEY": "",
                         "SHELL": "/usr/bin/fish"})
    assert "env.auth_conflict" not in ids(lint(gather(o2), o2))


def test_lint_ca_file(tmp_path: Path) -> None:
    der = tmp_path / "corp.cer"
    der.write_bytes(b"\x30\x82\x01\x00" + b"\x00" * 20)
    o = opts(tmp_path, {"NODE_EXTRA_CA_CERTS": str(der), "ANTHROPIC_AUTH_TOKEN": "t" * 20})
    f = next(f for f in lint(gather(o), o) if f.id == "env.ca_file_invalid")
    assert "DER" in f.summary and any("openssl x509 -inform der" in x for x in f.fix)
    o2 = opts(tmp_path, {"NODE_EXTRA_CA_CERTS": str(tmp_path / "missing.pem"),
                         "ANTHROPIC_AUTH_TOKEN": "t" * 20})
    assert "does not exist" in next(f for f in lint(gather(o2), o2)
                                    if f.id == "env.ca_file_invalid").summary


def test_settings_env_and_claude_config_dir(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "settings.json").write_text(json.dumps(
        {"env": {"ANTHROPIC_BASE_URL": "https://gw.example/v1"}}))
    (cfg / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "settings.local.json").write_text("{not json")
    o = opts(tmp_path, {"CLAUDE_CONFIG_DIR": str(cfg), "ANTHROPIC_API_KEY": KEY})
    inputs = gather(o)
    assert inputs.base_url == "https://gw.example/v1"
    assert inputs.base_url_source.endswith("settings.json")
    found = lint(inputs, o)
    f = next(f for f in found if f.id == "env.base_url_has_v1")
    assert f.fix[0].startswith("In ") and "settings.json" in f.fix[0]
    assert "claude.settings_unreadable" in ids(found)
    assert preflight_reason(inputs) is None  # onboarding done


@pytest.mark.parametrize(
    ("env", "claude_json", "runs"),
    [
        ({"ANTHROPIC_API_KEY": KEY}, None, True),
        ({"ANTHROPIC_API_KEY": KEY}, {"hasCompletedOnboarding": True}, False),
        ({"ANTHROPIC_AUTH_TOKEN": KEY}, None, False),
        ({"ANTHROPIC_API_KEY": KEY}, {"customApiKeyResponses": {"approved": [KEY[-20:]]}}, False),
        ({"ANTHROPIC_API_KEY": KEY, "CLAUDE_CODE_USE_BEDROCK": "1"}, None, False),
        ({"ANTHROPIC_API_KEY": KEY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}, None, True),
        ({}, None, True),
    ],
)
def test_preflight_prediction(tmp_path: Path, env: dict[str, str], claude_json: object,
                              runs: bool) -> None:
    o = opts(tmp_path, env)
    if claude_json is not None:
        (tmp_path / "home" / ".claude.json").write_text(json.dumps(claude_json))
    assert (preflight_reason(gather(o)) is not None) is runs


# -- classifiers ------------------------------------------------------------------------


def resp(status: int, body: bytes | str = b"", headers: list[tuple[str, str]] | None = None,
         reason: str = "") -> HttpResponse:
    raw = body.encode() if isinstance(body, str) else body
    return HttpResponse(status, reason, "HTTP/1.1", headers or [], raw)


PROXY = parse_proxy_url("http://127.0.0.1:3128", source="HTTPS_PROXY")
PROXY_AUTH = parse_proxy_url("http://bob:p%40ss@127.0.0.1:3128", source="HTTPS_PROXY")


def connect_reply(r: HttpResponse) -> ConnectReply:
    return ConnectReply(r, b"HTTP/1.1", None, ["> CONNECT api.anthropic.com:443 HTTP/1.1"])


def test_classify_connect() -> None:
    squid407 = resp(407, "<html>", [("Server", "squid/5.7"),
                                    ("X-Squid-Error", "ERR_CACHE_ACCESS_DENIED 0"),
                                    ("Proxy-Authenticate", 'Basic realm="corp"')])
    f = classify_connect(PROXY, "HTTPS_PROXY", "api.anthropic.com", 443, connect_reply(squid407))
    assert ids(f) == ["proxy.auth_required"] and "no credentials" in f[0].summary
    f = classify_connect(PROXY_AUTH, "HTTPS_PROXY", "api.anthropic.com", 443,
                         connect_reply(squid407))
    assert "rejected the credentials" in f[0].summary and "percent-encoded" in f[0].summary
    ntlm = resp(407, "", [("Proxy-Authenticate", "NTLM"), ("Proxy-Authenticate", "Negotiate")])
    f = classify_connect(PROXY, "HTTPS_PROXY", "h", 443, connect_reply(ntlm))
    assert ids(f) == ["proxy.auth_scheme_unsupported"] and "NTLM/Negotiate" in f[0].summary
    denied = resp(403, "", [("X-Squid-Error", "ERR_ACCESS_DENIED 0")])
    f = classify_connect(PROXY, "HTTPS_PROXY", "h", 443, connect_reply(denied))
    assert ids(f) == ["proxy.denied"] and "squid ERR_ACCESS_DENIED" in f[0].summary
    dnsfail = resp(503, "", [("X-Squid-Error", "ERR_DNS_FAIL 0")])
    assert ids(classify_connect(PROXY, "V", "h", 443, connect_reply(dnsfail))) == [
        "proxy.upstream_failed"]
    assert classify_connect(PROXY, "V", "h", 443, connect_reply(resp(200))) == []
    socks = ConnectReply(None, b"\x05\xff", "the answer is not HTTP")
    assert "SOCKS" in classify_connect(PROXY, "V", "h", 443, socks)[0].summary


def test_auth_schemes_parses_combined_headers() -> None:
    assert auth_schemes(['Basic realm="a, b"', "NTLM, Negotiate"]) == [
        "Basic", "NTLM", "Negotiate"]


def test_classify_dns_tcp() -> None:
    f = classify_dns(Resolution("x.invalid", error="NXDOMAIN: the name does not exist"))
    assert ids(f) == ["dns.unresolvable"]
    f = classify_dns(Resolution("api.anthropic.com", v4=["0.0.0.0"]))
    assert "sinkholed" in f[0].summary
    assert classify_dns(Resolution("api.anthropic.com", v4=["127.0.0.1"], overridden=True)) == []
    attempts = [ConnectAttempt("127.0.0.1", True), ConnectAttempt("::1", False, "timed out",
                                                                  "timeout")]
    assert ids(classify_tcp("h", 443, attempts)) == ["net.ipv6_broken"]
    assert ids(classify_tcp("h", 443, [ConnectAttempt("127.0.0.1", False, "refused")])) == [
        "net.tcp_blocked"]
    assert ids(classify_tcp("p", 3128, [ConnectAttempt("127.0.0.1", False, "refused")],
                            proxy=PROXY)) == ["proxy.unreachable"]


REGION = b'{"error":{"type":"forbidden","message":"Request not allowed"}}'
CTX = ApiContext(url="https://gw/v1/messages/count_tokens", base="https://gw", host="gw",
                 model="claude-sonnet-4-5", credential_display="k", credential_var="K",
                 sent_header="x-api-key")
RID = [("request-id", "req_1"), ("content-type", "application/json")]


def env_err(etype: str, message: str) -> str:
    return json.dumps({"type": "error", "error": {"type": etype, "message": message}})


@pytest.mark.parametrize(
    ("response", "fid"),
    [
        (resp(200, '{"input_tokens": 3}', RID), "api.ok"),
        (resp(403, REGION, [("content-type", "application/json")]), "api.region_blocked"),
        (resp(401, env_err("authentication_error", "invalid x-api-key"), RID), "api.invalid_key"),
        (resp(404, env_err("not_found_error", "model: claude-x"), RID), "api.model_not_found"),
        (resp(404, "404 page not found", [("content-type", "text/plain")]), "api.wrong_path"),
        (resp(404, env_err("not_found_error", "Not Found"), RID), "api.wrong_path"),
        (resp(400, '{"error":{"message":"Model Not Exist","type":"invalid_request_error"}}'),
         "api.model_not_found"),
        (resp(429, env_err("rate_limit_error", "slow down"), [*RID, ("retry-after", "7")]),
         "api.rate_limited"),
        (resp(529, env_err("overloaded_error", "Overloaded"), RID), "api.overloaded"),
        (resp(403, json.dumps({"error": {"message": "分组 default 已被弃用 (request id: x)",
                                         "type": "new_api_error"}}, ensure_ascii=False)),
         "relay.account_config_error"),
        (resp(403, "<html><title>Internet Security by Zscaler</title></html>",
              [("Server", "Zscaler/6.2"), ("content-type", "text/html")]),
         "http.intermediary_response"),
        (resp(500, env_err("api_error", "boom"), RID), "api.server_error"),
        (resp(502, "<html>Bad Gateway</html>", [("content-type", "text/html")]),
         "http.intermediary_response"),
    ],
)
def test_classify_api(response: HttpResponse, fid: str) -> None:
    found = classify_api(CTX, response, sent=["> POST x"])
    assert found[0].id == fid, found[0]


def test_classify_preflight() -> None:
    url = "https://api.anthropic.com/api/hello"
    assert classify_preflight(url, "api.anthropic.com", resp(200, "{}", RID)) == []
    f = classify_preflight(url, "api.anthropic.com", resp(403, REGION))
    assert ids(f) == ["api.region_blocked"]
    assert any("Status 403" in e and "ERR_BAD_REQUEST" in e for e in f[0].evidence)
    block = resp(403, "<html>blocked</html>", [("Server", "Zscaler/6.2"),
                                              ("content-type", "text/html")])
    f = classify_preflight(url, "api.anthropic.com", block)
    assert ids(f) == ["http.intermediary_response"] and "Zscaler" in f[0].summary


def test_parse_head_keeps_repeated_headers() -> None:
    r = parse_head(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: NTLM\r\n"
                   b"Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n")
    assert r is not None and r.status == 407
    assert r.getall("proxy-authenticate") == ["NTLM", 'Basic realm="x"']
    assert parse_head(b"\x05\x00") is None


def cert(nb: datetime, na: datetime, issuer: str = "CN=Corp Root,O=Corp") -> CertInfo:
    return CertInfo("CN=api.anthropic.com", issuer, nb, na, ["api.anthropic.com"])


def test_classify_tls() -> None:
    now = datetime.now(UTC)
    leaf = cert(now - timedelta(days=30), now - timedelta(days=1))
    f = classify_tls_failure("api.anthropic.com", 443, verify_code=10,
                             verify_message="certificate has expired", chain=[leaf], now=now,
                             reference_date=now)
    assert f.id == "tls.expired_or_clock_skew" and "expired" in f.summary
    skewed_now = now + timedelta(days=400)
    ok_leaf = cert(now - timedelta(days=1), now + timedelta(days=300))
    f = classify_tls_failure("api.anthropic.com", 443, verify_code=10,
                             verify_message="certificate has expired", chain=[ok_leaf],
                             now=skewed_now, reference_date=now, reference_source="server")
    assert "CLOCK SKEW" in f.summary and "timedatectl" in f.fix[0]
    z = cert(now - timedelta(days=1), now + timedelta(days=30),
             issuer="CN=Zscaler Intermediate Root CA,O=Zscaler Inc.")
    f = classify_tls_failure("api.anthropic.com", 443, verify_code=20,
                             verify_message="unable to get local issuer certificate", chain=[z],
                             now=now, reference_date=None)
    assert f.id == "tls.intercepted_untrusted" and "Zscaler" in f.summary
    assert any("NODE_EXTRA_CA_CERTS" in x for x in f.fix)
    f = classify_tls_failure("gw.internal", 443, verify_code=18,
                             verify_message="self-signed certificate", chain=[], now=now,
                             reference_date=None)
    assert f.id == "tls.untrusted" and "self-signed" in f.summary


# -- explain ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Unable to connect to Anthropic services\nFailed to connect to api.anthropic.com: "
         "ERR_BAD_REQUEST\nPlease check your internet connection", "api.region_blocked"),
        ("Failed to connect to api.anthropic.com: Status 403\nA proxy is configured via "
         "HTTPS_PROXY.", "http.intermediary_response"),
        ("Failed to connect to api.anthropic.com: ERR_SOCKET_CLOSED", "proxy.auth_required"),
        ("Failed to connect to api.anthropic.com: SELF_SIGNED_CERT_IN_CHAIN",
         "tls.intercepted_untrusted"),
        ('API Error: 403 {"error":{"type":"forbidden","message":"Request not allowed"}}',
         "api.region_blocked"),
        ("There's an issue with the selected model (claude-x).", "api.wrong_path"),
        ("Auth conflict: Both a token (ANTHROPIC_AUTH_TOKEN) and an API key", "env.auth_conflict"),
        ('API Error: 401 {"detail":"Invalid API key"} · Please run /login', "api.invalid_key"),
        ("API Error: 403 分组 default 已被弃用", "relay.account_config_error"),
        ("API Error: 529 Overloaded", "api.overloaded"),
        ("Connection to api.anthropic.com timed out after 10 seconds", "net.tcp_blocked"),
        ("certificate has expired (CERT_HAS_EXPIRED)", "tls.expired_or_clock_skew"),
    ],
)
def test_explain(text: str, expected: str) -> None:
    exp = decode(text)
    assert expected in exp.candidates, exp


def test_explain_extracts_host_and_status() -> None:
    exp = decode("Failed to connect to api.anthropic.com: Status 403")
    assert exp.host == "api.anthropic.com" and exp.status == 403
    assert "4xx" in exp.meaning
    unknown = decode("something odd happened")
    assert unknown.candidates == [] and "not in the doctor's table" in unknown.meaning


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("OAuth token has expired. Please obtain a new token or refresh your existing token. "
         "· Please run /login", "api.oauth_expired"),
        ("API Error: Request timed out.", "http.no_response"),
        ("API returned an empty or malformed response (HTTP 200) — check for a proxy",
         "http.intermediary_response"),
        ("API Error: 400 Unexpected value(s) `claude-code-20250219,interleaved-thinking-2025-05-14`"
         " for the `anthropic-beta` header", "api.beta_rejected"),
    ],
)
def test_explain_issue17_messages(text: str, first: str) -> None:
    exp = decode(text)
    assert exp.candidates[0] == first, exp
    assert len(set(exp.meaning.split(". "))) == len(exp.meaning.split(". "))  # no repeats
    if first == "api.oauth_expired":  # not a wrong key: the fix is /login, not a console key
        assert "api.invalid_key" not in exp.candidates


# -- issue 17 item 9: the doctor reads Claude Code's files through ccgate.claude_code ----------


def test_inputs_apply_managed_settings_drop_ins(tmp_path: Path) -> None:
    managed = tmp_path / "managed"
    (managed / "managed-settings.d").mkdir(parents=True)
    (managed / "managed-settings.json").write_text(
        json.dumps({"env": {"ANTHROPIC_BASE_URL": "https://base.example"}}))
    drop_in = managed / "managed-settings.d" / "50-gateway.json"
    drop_in.write_text(json.dumps({"env": {"ANTHROPIC_BASE_URL": "https://gw.example"}}))
    options = opts(tmp_path, {})
    options.managed_dir = managed
    inputs = gather(options)
    assert inputs.base_url == "https://gw.example"  # drop-ins win, in name order
    assert inputs.base_url_source == str(drop_in)
    assert drop_in in inputs.settings_files


def test_inputs_locate_windows_managed_settings(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from ccgate.claude_code import files

    monkeypatch.setattr(files.sys, "platform", "win32")
    options = opts(tmp_path, {})
    options.managed_dir = None  # the system's: the doctor asks the shared model
    located: list[Path] = []
    real_locate = files.ClaudeFiles.locate

    def spy(env: dict[str, str], home: Path, managed_dir: Path | None = None) -> files.ClaudeFiles:
        found = real_locate(env, home, managed_dir)
        located.append(found.managed_dir)
        return found

    monkeypatch.setattr(files.ClaudeFiles, "locate", staticmethod(spy))
    gather(options)
    assert located == [Path("C:/Program Files/ClaudeCode")]


def test_docs_list_every_finding_id_with_an_example() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "doctor.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in doc.splitlines()
            if line.startswith("| `")}
    for fid in CATALOGUE:
        assert fid in rows, f"{fid} missing from docs/doctor.md"
        cells = [c.strip() for c in rows[fid].strip("|").split(" | ")]
        assert len(cells) == 5 and cells[4], f"{fid}: no example column"


def test_beta_values_follow_the_version_and_the_model() -> None:
    from ccgate.doctor.claude_request import beta_values

    newest = beta_values({}, model="claude-opus-5-5", version=None, count_tokens=False)
    assert "per-turn-control-2026-07-01" in newest and newest[-1] == "effort-2025-11-24"
    older_cli = beta_values({}, model="claude-opus-5-5", version="2.1.200", count_tokens=False)
    assert "prompt-caching-scope-2026-01-05" in older_cli
    assert "per-turn-control-2026-07-01" not in older_cli
    older_model = beta_values({}, model="claude-sonnet-4-5-20250929", version="2.1.330",
                              count_tokens=False)
    assert "effort-2025-11-24" not in older_model
    oauth = beta_values({"ANTHROPIC_BETAS": "x-1"}, model="claude-opus-5-5", count_tokens=True,
                        oauth=True)
    assert oauth[:2] == ["claude-code-20250219", "oauth-2025-04-20"]
    assert oauth[-2:] == ["token-counting-2024-11-01", "x-1"]
