"""The fault lab: every failure built for real on loopback, the doctor names it.

Servers: tests/lab (fake Anthropic upstream with TLS from a trustme CA, real squid in
open/basic/deny/ntlm modes whose hosts_file maps api.anthropic.com and platform.claude.com
to 127.0.0.1). The doctor's preflight replay is pointed at the fake upstream's port with
``preflight_urls`` (the names stay api.anthropic.com / platform.claude.com, so a proxy sees
the same CONNECT host as from Claude Code); DNS for those names is pinned to 127.0.0.1 with
``resolve`` (like curl --resolve). Nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ccgate.doctor import Report, Severity
from tests.doctor.conftest import DoctorRun
from tests.lab.certs import LabPKI
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic
from tests.lab.squid import SquidProxy

pytestmark = pytest.mark.lab

KEY_ENV = {"ANTHROPIC_API_KEY": LAB_API_KEY}


def preflight(up: FakeAnthropic) -> tuple[str, str]:
    return (up.host_url("api.anthropic.com") + "/api/hello",
            up.host_url("platform.claude.com") + "/v1/oauth/hello")


def onboarded(home: Path) -> None:
    (home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))


def root(report: Report) -> str:
    assert report.findings, report
    return report.findings[0].id


def assert_secret_free(report: Report, *secrets: str) -> None:
    text = report.to_json()
    from ccgate.doctor.render import render

    text += render(report)
    for s in (LAB_API_KEY, *secrets):
        assert s not in text


# -- healthy paths ------------------------------------------------------------------------


async def test_healthy_direct(doctor: DoctorRun, fake_anthropic: FakeAnthropic,
                              lab_ca_file: Path) -> None:
    report = await doctor(KEY_ENV, base_url=fake_anthropic.url, ca_file=str(lab_ca_file),
                          preflight_urls=preflight(fake_anthropic))
    assert report.exit_code == 0, report.findings
    assert report.get("api.ok") is not None
    assert report.get("claude.preflight_will_run") is not None  # fresh home, unapproved key
    hello = fake_anthropic.requests_to("/api/hello")
    assert hello and hello[0].header("user-agent") == "claude-cli/2.1.330 (external, cli)"
    assert hello[0].header("x-api-key") is None  # the preflight sends no credentials
    count = fake_anthropic.requests_to("/v1/messages/count_tokens")
    assert count and count[0].header("x-api-key") == LAB_API_KEY
    assert_secret_free(report)


async def test_healthy_through_squid_with_basic_auth(
    doctor: DoctorRun, fake_anthropic: FakeAnthropic, squid_auth_proxy: SquidProxy,
    lab_ca_file: Path, lab_home: Path,
) -> None:
    onboarded(lab_home)
    proxy_url = squid_auth_proxy.url_with_auth()
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": proxy_url},
                          base_url=fake_anthropic.host_url(), ca_file=str(lab_ca_file))
    assert report.exit_code == 0, [f.to_dict() for f in report.findings]
    assert report.ids() == ["api.ok"]
    assert squid_auth_proxy.wait_access("CONNECT api.anthropic.com")
    assert report.context["proxy"].endswith(f"@127.0.0.1:{squid_auth_proxy.port}")
    assert_secret_free(report, squid_auth_proxy.password, proxy_url)


# -- proxy faults -----------------------------------------------------------------------


async def test_squid_denies_connect(doctor: DoctorRun, fake_anthropic: FakeAnthropic,
                                    squid_deny_proxy: SquidProxy, lab_ca_file: Path) -> None:
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": squid_deny_proxy.url},
                          base_url=fake_anthropic.host_url(), ca_file=str(lab_ca_file),
                          preflight_urls=preflight(fake_anthropic))
    assert report.exit_code == 1
    f = report.findings[0]
    assert f.id == "proxy.denied"
    assert "ERR_ACCESS_DENIED" in f.summary
    assert any("X-Squid-Error" in e for e in f.evidence)
    assert "allow CONNECT to api.anthropic.com:443" in f.fix[0]


async def test_squid_basic_auth_without_credentials(
    doctor: DoctorRun, fake_anthropic: FakeAnthropic, squid_auth_proxy: SquidProxy,
    lab_ca_file: Path, lab_home: Path,
) -> None:
    onboarded(lab_home)
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": squid_auth_proxy.url},
                          base_url=fake_anthropic.host_url(), ca_file=str(lab_ca_file))
    f = report.findings[0]
    assert f.id == "proxy.auth_required" and "no credentials" in f.summary
    assert any("Basic" in e for e in f.evidence)
    assert f"HTTPS_PROXY=http://USER:PASSWORD@127.0.0.1:{squid_auth_proxy.port}" in f.fix[0]


async def test_squid_basic_auth_wrong_password(
    doctor: DoctorRun, fake_anthropic: FakeAnthropic, squid_auth_proxy: SquidProxy,
    lab_ca_file: Path, lab_home: Path,
) -> None:
    onboarded(lab_home)
    url = squid_auth_proxy.url_with_auth(password="wrong:pw")
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": url}, base_url=fake_anthropic.host_url(),
                          ca_file=str(lab_ca_file))
    f = report.findings[0]
    assert f.id == "proxy.auth_required" and "rejected the credentials" in f.summary
    assert_secret_free(report, "wrong:pw", "wrong%3Apw")


async def test_squid_basic_auth_unencoded_credentials(
    doctor: DoctorRun, fake_anthropic: FakeAnthropic, squid_auth_proxy: SquidProxy,
    lab_ca_file: Path, lab_home: Path,
) -> None:
    onboarded(lab_home)
    raw = (f"http://{squid_auth_proxy.username}:{squid_auth_proxy.password}"
           f"@127.0.0.1:{squid_auth_proxy.port}")
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": raw}, base_url=fake_anthropic.host_url(),
                          ca_file=str(lab_ca_file))
    f = report.findings[0]
    assert f.id == "env.proxy_malformed" and "unencoded" in f.summary
    assert "%40" in f.fix[0]
    assert_secret_free(report, squid_auth_proxy.password)


async def test_squid_ntlm_only(doctor: DoctorRun, fake_anthropic: FakeAnthropic,
                               squid_ntlm_proxy: SquidProxy, lab_ca_file: Path,
                               lab_home: Path) -> None:
    onboarded(lab_home)
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": squid_ntlm_proxy.url_with_auth("bob", "x")},
                          base_url=fake_anthropic.host_url(), ca_file=str(lab_ca_file))
    f = report.findings[0]
    assert f.id == "proxy.auth_scheme_unsupported" and "NTLM" in f.summary
    assert any("px-proxy" in x or "cntlm" in x for x in f.fix)


async def test_proxy_port_closed(doctor: DoctorRun, fake_anthropic: FakeAnthropic,
                                 lab_ca_file: Path, lab_home: Path) -> None:
    onboarded(lab_home)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": f"http://127.0.0.1:{port}"},
                          base_url=fake_anthropic.host_url(), ca_file=str(lab_ca_file))
    f = report.findings[0]
    assert f.id == "proxy.unreachable" and "refused" in f.summary


async def test_plain_proxy_given_as_https(doctor: DoctorRun, fake_anthropic: FakeAnthropic,
                                          squid_proxy: SquidProxy, lab_ca_file: Path,
                                          lab_home: Path) -> None:
    onboarded(lab_home)
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": f"https://127.0.0.1:{squid_proxy.port}"},
                          base_url=fake_anthropic.host_url(), ca_file=str(lab_ca_file))
    f = report.findings[0]
    assert f.id == "env.proxy_scheme_unsupported" and f.severity is Severity.FAIL
    assert "plain HTTP" in f.summary
    assert f"http://127.0.0.1:{squid_proxy.port}" in f.fix[0]
    assert report.ids().count("env.proxy_scheme_unsupported") == 1


async def test_proxy_cannot_reach_upstream(doctor: DoctorRun, squid_proxy: SquidProxy,
                                           lab_home: Path) -> None:
    onboarded(lab_home)
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": squid_proxy.url},
                          base_url="https://gone.invalid")
    f = report.findings[0]
    assert f.id == "proxy.upstream_failed" and "squid ERR_" in f.summary
    assert any("X-Squid-Error" in e for e in f.evidence)


async def test_interception_with_untrusted_ca(
    doctor: DoctorRun, fake_anthropic_factory: Any, lab_pki: LabPKI, squid_proxy: SquidProxy,
    lab_ca_file: Path,
) -> None:
    # the "API" presents a certificate from the corporate inspection CA nobody trusts
    up = fake_anthropic_factory(leaf=lab_pki.interceptor_server)
    report = await doctor({**KEY_ENV, "HTTPS_PROXY": squid_proxy.url},
                          base_url=up.host_url(), ca_file=str(lab_ca_file),
                          preflight_urls=preflight(up))
    f = report.findings[0]
    assert f.id == "tls.intercepted_untrusted"
    assert "Corp TLS Inspection" in f.summary
    assert any("NODE_EXTRA_CA_CERTS" in x for x in f.fix)
    assert any("UNABLE_TO_GET_ISSUER_CERT_LOCALLY" in e for e in f.evidence)
    # and with the inspection CA given, the same path is healthy
    ca2 = lab_ca_file.parent / "interceptor-ca.pem"
    ok = await doctor({**KEY_ENV, "HTTPS_PROXY": squid_proxy.url, "NODE_EXTRA_CA_CERTS": str(ca2)},
                      base_url=up.host_url(), preflight_urls=preflight(up))
    assert ok.exit_code == 0, ok.findings


async def test_expired_certificate(doctor: DoctorRun, fake_anthropic_factory: Any,
                                   lab_pki: LabPKI, lab_ca_file: Path, lab_home: Path) -> None:
    onboarded(lab_home)
    up = fake_anthropic_factory(leaf=lab_pki.expired)
    report = await doctor(KEY_ENV, base_url=up.url, ca_file=str(lab_ca_file))
    f = report.findings[0]
    assert f.id == "tls.expired_or_clock_skew" and "expired" in f.summary
    assert any("Date header" in e for e in f.evidence)  # server Date read as reference


# -- DNS / TCP --------------------------------------------------------------------------


async def test_name_does_not_resolve(doctor: DoctorRun, lab_home: Path) -> None:
    onboarded(lab_home)
    report = await doctor(KEY_ENV, base_url="https://api.ccgate-lab.invalid")
    f = report.findings[0]
    assert f.id == "dns.unresolvable" and "api.ccgate-lab.invalid" in f.summary


async def test_tcp_refused(doctor: DoctorRun, lab_home: Path) -> None:
    onboarded(lab_home)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = await doctor(KEY_ENV, base_url=f"https://127.0.0.1:{port}")
    f = report.findings[0]
    assert f.id == "net.tcp_blocked" and "refused" in f.summary


# -- API faults -------------------------------------------------------------------------


async def test_region_block_on_preflight_names_the_onboarding_trap(
    doctor: DoctorRun, fake_anthropic_factory: Any, lab_ca_file: Path,
) -> None:
    """Base URL = a working gateway; api.anthropic.com region-blocked; fresh machine with an
    unapproved ANTHROPIC_API_KEY: the root cause is the preflight that ignores the base URL."""
    gateway = fake_anthropic_factory()
    blocked = fake_anthropic_factory()
    blocked.scenario = "region_block"
    report = await doctor(KEY_ENV, base_url=gateway.url, ca_file=str(lab_ca_file),
                          preflight_urls=preflight(blocked))
    assert report.ids()[:2] == ["claude.preflight_will_run", "api.region_blocked"]
    pf = report.findings[0]
    assert pf.severity is Severity.FAIL and "hasCompletedOnboarding" in pf.fix[0]
    assert report.get("api.ok") is not None


async def test_region_block_on_api(doctor: DoctorRun, fake_anthropic: FakeAnthropic,
                                   lab_ca_file: Path, lab_home: Path) -> None:
    onboarded(lab_home)
    fake_anthropic.scenario = "region_block"
    report = await doctor(KEY_ENV, base_url=fake_anthropic.host_url(), ca_file=str(lab_ca_file))
    f = report.findings[0]
    assert f.id == "api.region_blocked" and "supported-countries" in f.fix[0]


@pytest.mark.parametrize(
    ("env", "kw", "expected", "exit_code"),
    [
        ({"ANTHROPIC_API_KEY": "sk-ant-api03-revoked-000000000000000000000000"}, {},
         "api.invalid_key", 1),
        ({"ANTHROPIC_AUTH_TOKEN": LAB_API_KEY}, {}, "api.wrong_credential_header", 1),
        (KEY_ENV, {"model": "fail-429"}, "api.rate_limited", 0),
        (KEY_ENV, {"model": "fail-529"}, "api.overloaded", 0),
        (KEY_ENV, {"model": "no-such-model"}, "api.model_not_found", 1),
        (KEY_ENV, {"path": "/v1"}, "env.base_url_has_v1", 1),
        (KEY_ENV, {"path": "/compatible-mode"}, "api.wrong_path", 1),
    ],
)
async def test_api_faults(doctor: DoctorRun, fake_anthropic: FakeAnthropic, lab_ca_file: Path,
                          lab_home: Path, env: dict[str, str], kw: dict[str, Any],
                          expected: str, exit_code: int) -> None:
    onboarded(lab_home)
    path = kw.pop("path", "")
    report = await doctor(env, base_url=fake_anthropic.url + path, ca_file=str(lab_ca_file),
                          **kw)
    assert root(report) == expected, [f.to_dict() for f in report.findings]
    assert report.exit_code == exit_code
    if expected == "env.base_url_has_v1":
        assert "api.wrong_path" in report.ids()
        assert report.findings[0].fix == [f"export ANTHROPIC_BASE_URL='{fake_anthropic.url}'"]
    if expected == "api.wrong_credential_header":
        f = report.findings[0]
        assert "x-api-key" in f.summary and "unset ANTHROPIC_AUTH_TOKEN" in f.fix
    assert_secret_free(report)


NEW_API_BODY = {"error": {"message": "分组 default 已被弃用 (request id: 20261121abc)",
                          "type": "new_api_error", "param": "", "code": None}}


async def test_new_api_relay_group_error(doctor: DoctorRun, lab_home: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(NEW_API_BODY, status=403,
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        onboarded(lab_home)
        report = await doctor({"ANTHROPIC_AUTH_TOKEN": "sk-relay-0000000000000000000000"},
                              base_url=f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    f = report.findings[0]
    assert f.id == "relay.account_config_error" and "分组 default 已被弃用" in f.summary
    assert "relay" in f.fix[0]


# -- JSON / CLI ---------------------------------------------------------------------------


def test_cli_json_and_exit_codes(fake_anthropic: FakeAnthropic, lab_ca_file: Path,
                                 lab_home: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from ccgate.cli import doctor as cli
    from ccgate.cli.main import main

    def doctor_cli(argv: list[str]) -> int:
        return main(["doctor", *argv])

    onboarded(lab_home)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                "no_proxy", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CONFIG_DIR",
                "NODE_EXTRA_CA_CERTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(lab_home))
    monkeypatch.setenv("ANTHROPIC_API_KEY", LAB_API_KEY)
    monkeypatch.chdir(lab_home)
    args = ["--json", "--base-url", fake_anthropic.url, "--ca-file", str(lab_ca_file)]
    assert doctor_cli(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["findings"][-1]["id"] == "api.ok" and data["exit_code"] == 0
    assert doctor_cli([*args, "--model", "fail-401"]) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["findings"][0]["id"] == "api.invalid_key"
    assert LAB_API_KEY not in out
    # human output with --explain
    assert doctor_cli(["--base-url", fake_anthropic.url, "--ca-file", str(lab_ca_file),
                      "--model", "fail-401", "--explain", "API Error: 401 invalid x-api-key"]) == 1
    human = capsys.readouterr().out
    assert "Your message means" in human and "explained by the root cause below: [api.invalid_key]" in human
    assert LAB_API_KEY not in human

    def boom(_: object) -> None:
        raise RuntimeError("kaputt")

    monkeypatch.setattr(cli, "run_checks", boom)
    assert doctor_cli(["--json"]) == 2
    assert "could not run" in capsys.readouterr().err
