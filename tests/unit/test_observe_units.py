"""Issue 19, without servers: when tracing is on, the metrics' label bounds and token kinds, the
model and stop reason read beside the usage, JSON log lines."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from ccgate.errors import ConfigError
from ccgate.observe import logs, tracing
from ccgate.server.metrics import MAX_MODELS, OTHER, Metrics
from ccgate.wire.usage import UsageTap
from tests.observe.scrape import value


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
])
def test_tracing_enabled_by_the_standard_variables(env: dict[str, str], on: bool) -> None:
    assert tracing.enabled(env) is on
    if not on:
        assert tracing.setup(env) is None  # off: nothing built, nothing imported for it


def test_tracing_refuses_what_it_cannot_export() -> None:
    with pytest.raises(ConfigError, match=r"grpc.*not supported.*OTLP/HTTP"):
        tracing.setup({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
                       "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(ConfigError, match=r"zipkin.*not supported"):
        tracing.setup({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_tracing_off_when_the_extra_is_missing(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    import sys

    import ccgate.observe
    # As if opentelemetry were not installed: its import, and so ccgate's otel module's, fails.
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "ccgate.observe.otel", raising=False)
    monkeypatch.delattr(ccgate.observe, "otel", raising=False)
    assert tracing.setup({"OTEL_TRACES_EXPORTER": "otlp"}) is None
    assert "pip install 'ccgate[otel]'" in caplog.text


def test_token_kinds_and_model_cap() -> None:
    m = Metrics()
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
             "cache_creation_input_tokens": 7, "service_tier": "standard"}
    m.tokens_used("claude-a", "anthropic", usage, "alice")
    m.tokens_used("claude-a", "anthropic", {**usage, "output_tokens": -3}, None)  # a bad number is skipped
    text = m.render().decode()
    for kind, n in (("input", 20), ("output", 5), ("cache_read", 200), ("cache_write", 14)):
        assert value(text, "ccgate_tokens_total", kind=kind, model="claude-a", provider="anthropic") == n
    assert "ccgate_client_tokens" not in text and "alice" not in text  # no key names by default
    for i in range(MAX_MODELS + 5):
        m.tokens_used(f"model-{i}", "p", {"input_tokens": 1}, None)
    text = m.render().decode()
    assert value(text, "ccgate_tokens_total", kind="input", model=OTHER, provider="p") == 6
    models = {line.split('model="')[1].split('"')[0] for line in text.splitlines()
              if line.startswith("ccgate_tokens_total{")}
    assert len(models) == MAX_MODELS + 1  # the cap, plus "other"


def test_key_names_are_opt_in() -> None:
    off, on = Metrics(), Metrics(key_names=True)
    for m in (off, on):
        m.rate_limit_refused("alice")
        m.budget_refusal("alice", "daily")
        m.tokens_used("claude-a", "anthropic", {"input_tokens": 3}, "alice")
    text = off.render().decode()
    assert value(text, "ccgate_rate_limited_total", client="-") == 1
    assert value(text, "ccgate_budget_refused_total", client="-", window="daily") == 1
    assert 'client="alice"' not in text
    text = on.render().decode()
    assert value(text, "ccgate_budget_refused_total", client="alice", window="daily") == 1
    assert value(text, "ccgate_rate_limited_total", client="alice") == 1
    assert value(text, "ccgate_client_tokens_total", client="alice", kind="input") == 3


def test_attempts_by_outcome() -> None:
    m = Metrics()
    m.attempt_done("anthropic", "overloaded", 0.2)
    m.attempt_done("anthropic", "success", 0.3)
    m.attempt_done("anthropic", "success", 0.1)
    text = m.render().decode()
    assert value(text, "ccgate_upstream_attempts_total", provider="anthropic", outcome="success") == 2
    assert value(text, "ccgate_upstream_latency_seconds_count", provider="anthropic") == 3
    assert value(text, "ccgate_upstream_latency_seconds_sum", provider="anthropic") == pytest.approx(0.6)


def test_usage_tap_reads_model_and_stop_reason() -> None:
    tap = UsageTap(sse=True)
    tap.feed(b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-x",'
             b'"usage":{"input_tokens":9,"output_tokens":1}}}\n\n')
    tap.feed(b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use"},'
             b'"usage":{"output_tokens":4}}\n\n')
    assert tap.result() == {"input_tokens": 9, "output_tokens": 4}
    assert (tap.model, tap.stop_reason) == ("claude-x", "tool_use")
    whole = UsageTap(sse=False)
    whole.feed(b'{"model":"claude-y","stop_reason":"end_turn","usage":{"input_tokens":2,"output_tokens":3}}')
    assert whole.result() == {"input_tokens": 2, "output_tokens": 3}
    assert (whole.model, whole.stop_reason) == ("claude-y", "end_turn")
    odd = UsageTap(sse=False)
    odd.feed(b'{"model":7,"stop_reason":["x"],"usage":{"input_tokens":1}}')
    odd.result()
    assert (odd.model, odd.stop_reason) == (None, None)


def test_json_log_lines() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("debug", "json", out)
        logging.getLogger("ccgate").warning("provider %r: %s", "anthropic", 'a "quoted" word')
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("ccgate.x").exception("failed")
    finally:
        root.handlers[:], root.level = saved
        logging.captureWarnings(False)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "warning" and first["logger"] == "ccgate"
    assert first["message"] == "provider 'anthropic': a \"quoted\" word"
    assert first["ts"].endswith("Z") and len(first["ts"]) == 24
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_loop_histogram_exposes_what_prometheus_client_would() -> None:
    """The lock-free families (server/loop_metrics.py) render exactly as prometheus_client's own."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from ccgate.server.loop_metrics import LoopCollector, LoopCounter, LoopHistogram
    from tests.observe.scrape import samples

    buckets = (0.05, 0.5, 1, 2.5, 60)
    values = [0.0, 0.05, 0.051, 0.5, 1.0, 2.4, 2.5, 59.9, 60, 61, 1e6]
    reference = CollectorRegistry()
    theirs = Histogram("h_seconds", "h", ["p"], buckets=buckets, registry=reference)
    ours_registry = CollectorRegistry()
    ours = LoopHistogram("h_seconds", "h", ["p"], buckets)
    count = LoopCounter("c", "c", ["p", "o"])
    ours_registry.register(LoopCollector([ours, count]))
    for v in values:
        theirs.labels("a").observe(v)
        ours.observe(ours.child(("a",)), v)
    count.add(("a", "x"))
    count.add(("a", "x"), 2)
    mine = samples(generate_latest(ours_registry).decode())
    reference_samples = {k: v for k, v in samples(generate_latest(reference).decode()).items()
                         if not k[0].endswith("_created")}
    assert {k: v for k, v in mine.items() if k[0].startswith("h_")} == reference_samples
    assert mine[("c_total", frozenset({("p", "a"), ("o", "x")}))] == 3


def test_request_families_render_line_for_line_as_prometheus_client_would() -> None:
    """requests, their duration and bytes are lock-free (loop_metrics.py) since issue 20's third
    pass; the scrape is the one prometheus_client's Counter and Histogram gave: the same lines in
    the same order, ``_created`` samples included (their values: each series' first use)."""
    import re

    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from ccgate.server.metrics import LATENCY_BUCKETS

    reference = CollectorRegistry()
    requests = Counter("ccgate_requests", "Requests answered, by route, status and upstream provider.",
                       ["route", "status", "provider"], registry=reference)
    latency = Histogram("ccgate_request_duration_seconds", "Time from request to the end of the response, by route.",
                        ["route"], buckets=LATENCY_BUCKETS, registry=reference)
    sent = Counter("ccgate_response_bytes", "Response body bytes sent to clients, by route.", ["route"],
                   registry=reference)
    m = Metrics()
    done = [("messages", 200, "anthropic", 0.004, 512), ("messages", 200, "anthropic", 0.25, 10),
            ("messages", 529, "deepseek", 300.0, 0), ("models", 200, "-", 0.0, 7), ("messages", 200, "anthropic", 1e4, 3)]
    for route, status, provider, seconds, size in done:
        m.request_done(route, status, provider, seconds, size)
        requests.labels(route, str(status), provider).inc()
        latency.labels(route).observe(seconds)
        sent.labels(route).inc(size)

    def family_lines(text: str, families: tuple[str, ...]) -> list[str]:
        names = {f + suffix for f in families for suffix in ("", "_total", "_created", "_bucket", "_count", "_sum")}
        kept = [line for line in text.splitlines()
                if (line.split()[2] if line.startswith("#") else re.split(r"[{ ]", line)[0]) in names]
        return [re.sub(r"(_created(\{[^}]*\})?) \S+$", r"\1 T", line) for line in kept]

    names = ("ccgate_requests", "ccgate_request_duration_seconds", "ccgate_response_bytes")
    ours, theirs = m.render().decode(), generate_latest(reference).decode()
    assert family_lines(ours, names) == family_lines(theirs, names)
    assert value(ours, "ccgate_requests_total", route="messages", status="200", provider="anthropic") == 3
    assert value(ours, "ccgate_request_duration_seconds_bucket", route="messages", le="0.005") == 1
    assert value(ours, "ccgate_response_bytes_total", route="messages") == 525
    created = value(ours, "ccgate_requests_created", route="models", status="200", provider="-")
    assert abs(created - value(theirs, "ccgate_requests_created", route="models", status="200", provider="-")) < 5


def test_key_state_gauge_follows_the_pool() -> None:
    from ccgate.routing import KeyEvent, KeyState

    m = Metrics()
    m.key_pool_built("anthropic", 3)
    m.key_event(KeyEvent("anthropic", 1, "sk-…abcd", KeyState.HEALTHY, KeyState.DISABLED, "401"))
    m.key_event(KeyEvent("anthropic", 2, "sk-…efgh", KeyState.HEALTHY, KeyState.COOLING, "429"))
    text = m.render().decode()
    assert [value(text, "ccgate_upstream_key_state", provider="anthropic", key=k) for k in "012"] == [0, 2, 1]
    assert "abcd" not in text and "efgh" not in text  # the index only, never the key
    m.key_pool_built("anthropic", 2)  # a reload rebuilt the pool with two keys: all healthy, #2 gone
    text = m.render().decode()
    assert [value(text, "ccgate_upstream_key_state", provider="anthropic", key=k) for k in "01"] == [0, 0]
    from tests.observe.scrape import samples
    assert ("ccgate_upstream_key_state", frozenset({("provider", "anthropic"), ("key", "2")})) not in samples(text)


def test_tracing_off_imports_nothing_of_opentelemetry(tmp_path: Path) -> None:
    """Off, the gateway is built and answers without opentelemetry ever being imported."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent('''
        import asyncio, sys
        from ccgate.config.load import load_config
        from ccgate.server.app import Gateway
        app = Gateway(load_config(None, {}), {"CCGATE_DB": sys.argv[1]})
        sent = []
        async def main():
            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}
            async def send(message):
                sent.append(message)
            await app({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""},
                      receive, send)
        asyncio.run(main())
        assert sent[0]["status"] == 200 and app.tracing is None
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry") or m == "ccgate.observe.otel"))
    ''')
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "db")], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
