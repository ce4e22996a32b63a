"""The real Claude Code CLI (pinned 2.1.330, ``claude -p``) in the same lab: it fails, and
the doctor, given what the CLI printed (``--explain``), names the cause it printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.doctor.conftest import DoctorRun
from tests.lab.claude_cli import run_claude
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic
from tests.lab.squid import SquidProxy

pytestmark = pytest.mark.lab


@pytest.fixture
def onboarded_home(lab_home: Path) -> Path:
    (lab_home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    return lab_home


async def test_cli_region_block(claude_bin: Path, doctor: DoctorRun, onboarded_home: Path,
                                fake_anthropic: FakeAnthropic, lab_ca_file: Path) -> None:
    fake_anthropic.scenario = "region_block"
    cli = run_claude("hi", base_url=fake_anthropic.url, api_key=LAB_API_KEY,
                     ca_file=lab_ca_file, max_retries=0)
    printed = cli.stdout + cli.stderr
    assert cli.returncode != 0 and "403" in printed
    report = await doctor({"ANTHROPIC_API_KEY": LAB_API_KEY,
                           "NODE_EXTRA_CA_CERTS": str(lab_ca_file)},
                          base_url=fake_anthropic.url, explain=printed)
    assert report.findings[0].id == "api.region_blocked"
    assert report.explanation is not None
    assert "api.region_blocked" in report.explanation.explained_by


async def test_cli_proxy_wants_credentials(claude_bin: Path, doctor: DoctorRun,
                                           onboarded_home: Path, fake_anthropic: FakeAnthropic,
                                           squid_auth_proxy: SquidProxy,
                                           lab_ca_file: Path) -> None:
    env = {"HTTPS_PROXY": squid_auth_proxy.url}
    cli = run_claude("hi", base_url=fake_anthropic.host_url(), api_key=LAB_API_KEY,
                     ca_file=lab_ca_file, max_retries=0, env=env)
    printed = cli.stdout + cli.stderr
    assert cli.returncode != 0 and "proxy" in printed.lower()
    report = await doctor({"ANTHROPIC_API_KEY": LAB_API_KEY,
                           "NODE_EXTRA_CA_CERTS": str(lab_ca_file), **env},
                          base_url=fake_anthropic.host_url(), explain=printed)
    assert report.findings[0].id == "proxy.auth_required"
    assert report.explanation is not None
    assert report.explanation.explained_by[0] == "proxy.auth_required"


async def test_cli_base_url_with_v1(claude_bin: Path, doctor: DoctorRun, onboarded_home: Path,
                                    fake_anthropic: FakeAnthropic, lab_ca_file: Path) -> None:
    base = fake_anthropic.url + "/v1"
    cli = run_claude("hi", base_url=base, api_key=LAB_API_KEY, ca_file=lab_ca_file,
                     max_retries=0)
    printed = cli.stdout + cli.stderr
    assert "issue with the selected model" in printed
    report = await doctor({"ANTHROPIC_API_KEY": LAB_API_KEY, "ANTHROPIC_BASE_URL": base,
                           "NODE_EXTRA_CA_CERTS": str(lab_ca_file)}, explain=printed)
    assert report.ids()[:2] == ["env.base_url_has_v1", "api.wrong_path"]
    assert report.explanation is not None
    assert report.explanation.explained_by[:2] == ["env.base_url_has_v1", "api.wrong_path"]


async def test_doctor_reads_claude_version(claude_bin: Path, doctor: DoctorRun,
                                           onboarded_home: Path, fake_anthropic: FakeAnthropic,
                                           lab_ca_file: Path) -> None:
    report = await doctor({"ANTHROPIC_API_KEY": LAB_API_KEY}, base_url=fake_anthropic.url,
                          ca_file=str(lab_ca_file), claude_bin=str(claude_bin),
                          claude_version=None)
    assert report.context["claude_version"] == "2.1.330"
    req = fake_anthropic.requests_to("/v1/messages/count_tokens")[0]
    assert req.header("user-agent") == "claude-cli/2.1.330 (external, cli)"
