"""deploy/grafana/ccgate.json and deploy/prometheus/alerts.yml against a real gateway (lab):
the dashboard is well formed, and every metric a panel or an alert reads is one that a running
``ccgate serve`` exports (its scrape is the reference, not a list in the test)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory, authed_config
from tests.lab.fake_anthropic import FakeAnthropic
from tests.observe.promql import exported_names, metric_names

pytestmark = pytest.mark.lab

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# Metrics another branch adds, which an alert may read before that branch is merged. Empty:
# every alert (the pool-wait one too) is checked against the real scrape.
FROM_OTHER_BRANCHES: set[str] = set()
# What the dashboard is for (issue 19): each of these is read by at least one panel.
REQUIRED = ("ccgate_requests_total", "ccgate_upstream_errors_total", "ccgate_tokens_total",
            "ccgate_request_duration_seconds_bucket", "ccgate_time_to_first_token_seconds_bucket",
            "ccgate_upstream_latency_seconds_bucket", "ccgate_open_streams", "ccgate_upstream_key_state",
            "ccgate_breaker_state", "ccgate_upstream_attempts_total")


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana" / "ccgate.json").read_text())
    return data


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_structure() -> None:
    d = _dashboard()
    assert d["title"] and d["uid"] and isinstance(d["schemaVersion"], int)
    variables = {v["name"] for v in d["templating"]["list"]}
    assert variables == {"datasource", "job"}
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for panel in d["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat") and panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert metric_names(target["expr"]), target["expr"]
            assert 'job=~"$job"' in target["expr"], target["expr"]  # the job picker applies everywhere
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var in variables or var.startswith("__"), var
    # Panels do not overlap.
    cells: set[tuple[int, int]] = set()
    for panel in d["panels"]:
        g = panel["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine
    read = set().union(*(metric_names(e) for e in _exprs(d)))
    assert set(REQUIRED) <= read


def test_dashboard_and_alerts_read_what_the_gateway_exports(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    gw = gateway(authed_config(upstream.url, gw_ca_file))
    body = {"model": "claude-opus-4-8", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"}
    assert httpx.post(gw.url + "/v1/messages", json=body, headers=headers).status_code == 200
    with httpx.stream("POST", gw.url + "/v1/messages", json={**body, "stream": True}, headers=headers) as r:
        r.read()
    exported = exported_names(httpx.get(gw.url + "/metrics").text)

    for expr in _exprs(_dashboard()):
        missing = metric_names(expr) - exported
        assert not missing, f"dashboard reads {missing}, which ccgate does not export: {expr}"
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        missing = metric_names(rule["expr"]) - exported - FROM_OTHER_BRANCHES
        assert not missing, f"alert {rule['alert']} reads {missing}, which ccgate does not export"
