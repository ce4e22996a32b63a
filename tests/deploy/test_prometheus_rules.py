"""deploy/prometheus/alerts.yml: valid rules (``promtool check rules``), and every rule tested
firing by ``promtool test rules alerts.test.yml`` (Debian's prometheus package)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.observe.tools import need

pytestmark = pytest.mark.lab

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _alerts() -> list[dict[str, object]]:
    doc = yaml.safe_load((RULES / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_are_valid_and_their_tests_pass() -> None:
    promtool = need("promtool")
    check = subprocess.run([promtool, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0 and f"SUCCESS: {len(_alerts())} rules found" in check.stdout, check.stdout
    tested = subprocess.run([promtool, "test", "rules", "alerts.test.yml"], cwd=RULES, capture_output=True,
                            text=True, timeout=120)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_rule_has_a_firing_case() -> None:
    tests = yaml.safe_load((RULES / "alerts.test.yml").read_text())["tests"]
    firing = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case.get("exp_alerts")}
    names = [str(rule["alert"]) for rule in _alerts()]
    assert len(names) == len(set(names))
    assert set(names) == firing
    for rule in _alerts():
        labels, annotations = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and labels["severity"] in ("warning", "critical")
        assert isinstance(annotations, dict) and annotations["summary"] and annotations["description"]


def test_the_issue_s_alerts_are_there() -> None:
    """4xx and 5xx ratio, breaker open, key disabled, rate-limit refusals, upstream latency,
    time to first token, pool waits."""
    exprs = {str(rule["alert"]): str(rule["expr"]) for rule in _alerts()}
    assert 'status=~"4.."' in exprs["CcgateClientErrorRatioHigh"]
    assert 'status=~"5.."' in exprs["CcgateServerErrorRatioHigh"]
    assert "ccgate_breaker_state" in exprs["CcgateBreakerOpen"]
    assert "ccgate_upstream_key_state" in exprs["CcgateUpstreamKeyDisabled"]
    assert "ccgate_rate_limited_total" in exprs["CcgateRateLimitRefusalsSpike"]
    assert "ccgate_upstream_latency_seconds_bucket" in exprs["CcgateUpstreamLatencyHigh"]
    assert "ccgate_time_to_first_token_seconds_bucket" in exprs["CcgateTimeToFirstTokenHigh"]
    assert "ccgate_upstream_pool_wait_seconds_bucket" in exprs["CcgatePoolWaitsHigh"]
