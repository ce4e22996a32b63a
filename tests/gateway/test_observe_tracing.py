"""OpenTelemetry traces of a real ``ccgate serve`` (lab), exported over OTLP/HTTP to a receiver
the test runs: a server span per request, a client span per upstream attempt as its child, GenAI
attributes and the Claude Code session id, ``traceparent`` sent upstream, a client's own
``traceparent`` honoured as the parent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory, authed_config
from tests.lab.fake_anthropic import FakeAnthropic
from tests.observe.otlp_receiver import CLIENT, SERVER, OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.lab

MODEL = "claude-opus-4-8"
MSG = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"}
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def _otel_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_SERVICE_NAME": "", "OTEL_RESOURCE_ATTRIBUTES": "", "OTEL_TRACES_EXPORTER": "",
            "OTEL_TRACES_SAMPLER": "", "OTEL_SDK_DISABLED": "", "OTEL_PROPAGATORS": ""}


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.kind == CLIENT and s.parent_span_id == parent.span_id]


def test_spans_attributes_parentage_and_propagation(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path, receiver: OtlpReceiver,
) -> None:
    config = authed_config(upstream.url, gw_ca_file)
    config["routing"] = {"retries": {"base": 0, "cap": 0}}
    gw = gateway(config, env=_otel_env(receiver))

    plain = httpx.post(gw.url + "/v1/messages", json=MSG,
                       headers={**AUTH, "x-claude-code-session-id": "session-otel"})
    assert plain.status_code == 200
    usage = plain.json()["usage"]
    upstream.fail_times = 1  # a 529, then a 200: two attempts, two client spans
    retried = httpx.post(gw.url + "/v1/messages", json=MSG,
                         headers={**AUTH, "x-fake-scenario": "overloaded",
                                  "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"})
    assert retried.status_code == 200

    spans = receiver.wait_for(lambda s: len([x for x in s if x.kind == SERVER]) >= 2
                              and len([x for x in s if x.kind == CLIENT]) >= 3)
    servers = [s for s in spans if s.kind == SERVER and s.name == "POST /v1/messages"]
    assert len(servers) == 2
    (second,) = [s for s in servers if s.trace_id == CLIENT_TRACE]
    (first,) = [s for s in servers if s is not second]
    assert second.trace_id == CLIENT_TRACE and second.parent_span_id == CLIENT_PARENT  # the client's context
    assert first.parent_span_id == ""  # no traceparent: a root span

    # The request's span: HTTP and GenAI attributes, the Claude Code session, the usage.
    assert first.resource["service.name"] == "ccgate"
    attrs = first.attributes
    assert attrs["http.request.method"] == "POST" and attrs["http.response.status_code"] == 200
    assert attrs["gen_ai.request.model"] == MODEL and attrs["session.id"] == "session-otel"
    assert attrs["gen_ai.usage.input_tokens"] == usage["input_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == usage["output_tokens"]

    # One client span per attempt, each a child of its request's span, in the same trace.
    (only,) = _children(spans, first)
    assert only.trace_id == first.trace_id and only.name == f"chat {MODEL}"
    a = only.attributes
    assert a["gen_ai.system"] == "anthropic" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == MODEL and a["gen_ai.response.model"] == MODEL
    assert a["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert a["gen_ai.usage.input_tokens"] == usage["input_tokens"]
    assert a["http.response.status_code"] == 200 and a["ccgate.outcome"] == "success"
    assert a["server.address"] == "127.0.0.1"
    assert a["ccgate.upstream.request_id"] == upstream.requests[0].request_id

    attempts = sorted(_children(spans, second), key=lambda s: s.attributes["ccgate.attempt"])
    assert [s.attributes["http.response.status_code"] for s in attempts] == [529, 200]
    assert attempts[0].status_code == 2 and attempts[0].attributes["error.type"] == "529"  # error
    assert attempts[0].attributes["ccgate.outcome"] == "overloaded"
    assert attempts[1].status_code != 2 and all(s.trace_id == CLIENT_TRACE for s in attempts)

    # W3C trace context went upstream: each attempt's own span is the provider's parent, and the
    # client's traceparent was replaced, not sent twice.
    sent = [r for r in upstream.requests if r.path.startswith("/v1/messages")]
    parents = [(r.header("traceparent") or "").split("-") for r in sent]
    assert [p[:3] for p in parents] == [["00", s.trace_id, s.span_id] for s in [only, *attempts]]
    assert all(int(p[3], 16) & 1 for p in parents)  # sampled
    assert all(r.header_names.count("traceparent") == 1 for r in sent)


def test_quiet_routes_have_no_spans(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path, receiver: OtlpReceiver,
) -> None:
    gw = gateway(authed_config(upstream.url, gw_ca_file), env=_otel_env(receiver))
    for path in ("/healthz", "/readyz", "/metrics"):
        httpx.get(gw.url + path)
    assert httpx.get(gw.url + "/nope").status_code == 404
    spans = receiver.wait_for(lambda s: bool(s))
    assert [(s.name, s.attributes["http.response.status_code"]) for s in spans] == [("GET", 404)]
