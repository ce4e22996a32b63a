"""Hot reload and model discovery through a real ``ccgate serve`` (tests/gateway/harness.py) in
front of scripted upstreams: SIGHUP under load, a stream across a reload, a refused config,
the admin endpoint, the config watch, the pidfile and ``server.control.request_reload``, and
``GET /v1/models`` aliases as Claude Code's discovery sees them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ccgate.server.control import ReloadError, pidfile_path, request_reload
from tests.gateway.conftest import GatewayFactory
from tests.gateway.harness import Gateway
from tests.lab.scripted import AnthropicText, Auto, Callback, Chunks, ScriptedRequest, Status, anthropic_sse

pytestmark = pytest.mark.lab

KEY = "sk-upstream-key-0123456789"
ADMIN_KEY = "lab-admin-key-0123456789abcdef"
MSG = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


def provider(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "up", "kind": "anthropic", "base_url": url, "api_keys": [KEY], **extra}


def rewrite(gw: Gateway, config: dict[str, Any]) -> None:
    """Replace the gateway's config file atomically, keeping its port (as the harness writes it)."""
    config = {**config, "server": {**config.get("server", {}), "port": gw.port}}
    tmp = gw.config_path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config))
    tmp.replace(gw.config_path)


def wait_log(gw: Gateway, text: str, count: int = 1, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.log.count(text) >= count:
            return
        time.sleep(0.02)
    raise TimeoutError(f"expected {count} x {text!r} in the gateway log:\n{gw.log}")


def sighup(gw: Gateway) -> None:
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGHUP)


def post(gw: Gateway, client: httpx.Client | None = None, **kw: Any) -> httpx.Response:
    return (client or httpx).post(gw.url + "/v1/messages", json=MSG, headers=HEADERS, timeout=20, **kw)


def test_sighup_reloads_under_load_without_a_failed_request(
    scripted_upstream: Callable[..., Any], gateway: GatewayFactory,
) -> None:
    first, second = scripted_upstream(name="first"), scripted_upstream(name="second")
    config = {"log": {"access": False}}
    gw = gateway({**config, "providers": [provider(first.url)]})
    failures: list[str] = []
    done = threading.Event()
    sent = [0]

    def load() -> None:
        with httpx.Client() as client:
            while not done.is_set():
                r = post(gw, client)
                sent[0] += 1
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for i in range(1, 6):
            rewrite(gw, {**config, "providers": [provider((second if i % 2 else first).url)]})
            sighup(gw)
            wait_log(gw, "config reloaded (SIGHUP)", i)
            before = sent[0]
            while sent[0] < before + 8:  # requests on the new config before the next reload
                time.sleep(0.01)
    finally:
        done.set()
        for w in workers:
            w.join(30)
    assert not failures, failures[:5]
    assert first.requests and second.requests and sent[0] >= 40
    assert "up changed" in gw.log


def test_a_stream_in_flight_finishes_on_the_old_provider(
    scripted_upstream: Callable[..., Any], gateway: GatewayFactory,
) -> None:
    start = anthropic_sse({"type": "message_start", "message": {"id": "msg_old", "type": "message",
                                                               "role": "assistant", "content": [],
                                                               "model": "m", "usage": {"input_tokens": 1}}})
    stop = anthropic_sse({"type": "message_stop"})
    old = scripted_upstream(Chunks([start, 1.0, stop]), name="old")
    new = scripted_upstream(AnthropicText("from the new provider"), name="new")
    gw = gateway({"providers": [provider(old.url)]})
    with httpx.Client() as client, client.stream(
        "POST", gw.url + "/v1/messages", json={**MSG, "stream": True}, headers=HEADERS, timeout=20,
    ) as stream:
        chunks = stream.iter_bytes()
        received = next(chunks)
        rewrite(gw, {"providers": [provider(new.url)]})
        sighup(gw)
        wait_log(gw, "config reloaded (SIGHUP)")
        after = post(gw)
        received += b"".join(chunks)
    assert after.status_code == 200 and "from the new provider" in after.text
    assert received == start + stop  # the whole stream, from the old provider
    assert len(old.requests) == 1 and len(new.requests) == 1


def test_a_bad_config_is_refused_with_config_checks_message(
    scripted_upstream: Callable[..., Any], gateway: GatewayFactory,
) -> None:
    up = scripted_upstream(name="up")
    gw = gateway({"providers": [provider(up.url)]})
    rewrite(gw, {"providers": [provider(up.url)], "models": [{"match": "*", "to": "nowhere"}]})
    check = subprocess.run([sys.executable, "-m", "ccgate", "config", "check", "--config", str(gw.config_path)],
                           capture_output=True, text=True, env=gw.env, timeout=60)
    assert check.returncode == 1
    message = check.stderr.strip().removeprefix("ccgate: ")
    sighup(gw)
    wait_log(gw, "config reload (SIGHUP) refused")
    assert message.startswith("config error: ") and message in gw.log
    assert post(gw).status_code == 200 and len(up.requests) == 1  # the old config serves on


def test_admin_endpoint_watch_pidfile_and_request_reload(
    scripted_upstream: Callable[..., Any], gateway: GatewayFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # the pidfile, for us and the gateway
    first, second = scripted_upstream(name="first"), scripted_upstream(name="second")
    base = {"server": {"admin": {"key": "env:CCGATE_ADMIN_KEY"}, "watch_config": True}}
    gw = gateway({**base, "providers": [provider(first.url)]},
                 env={"CCGATE_ADMIN_KEY": ADMIN_KEY, "XDG_RUNTIME_DIR": str(tmp_path)})
    pidfile = pidfile_path(gw.port)
    assert pidfile.is_relative_to(tmp_path) and json.loads(pidfile.read_text())["pid"] == gw.proc.pid  # type: ignore[union-attr]

    # The watch: a changed file is reloaded with no signal.
    rewrite(gw, {**base, "providers": [provider(second.url)]})
    wait_log(gw, "config reloaded (config file changed)")
    assert post(gw).status_code == 200 and len(second.requests) == 1

    # The admin endpoint, directly and through request_reload; then by SIGHUP from the pidfile.
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    r = httpx.post(gw.url + "/admin/config/reload", headers=auth, timeout=10)
    assert r.status_code == 200 and r.json()["reloaded"] and r.json()["providers"] == {"up": "kept"}
    routes = httpx.get(gw.url + "/admin/routes", headers=auth, timeout=10).json()
    assert routes["providers"][0]["base_url"] == second.url
    assert request_reload("127.0.0.1", gw.port, ADMIN_KEY).startswith("reloaded ")
    assert "sent SIGHUP" in request_reload("127.0.0.1", gw.port)
    wait_log(gw, "config reloaded (SIGHUP)")

    # A refused config through the admin API: 422 and config check's message; request_reload raises.
    rewrite(gw, {**base, "providers": [provider(second.url)], "models": [{"match": "*", "to": "gone"}]})
    wait_log(gw, "config reload (config file changed) refused")
    refused = httpx.post(gw.url + "/admin/config/reload", headers=auth, timeout=10)
    assert refused.status_code == 422 and "unknown provider 'gone'" in refused.json()["error"]["message"]
    with pytest.raises(ReloadError, match="unknown provider 'gone'"):
        request_reload("127.0.0.1", gw.port, ADMIN_KEY)
    assert post(gw).status_code == 200

    gw.stop()
    assert not pidfile.exists()
    assert "no ccgate answers" in request_reload("127.0.0.1", gw.port)


MODEL_LIST = {"object": "list", "data": [{"id": "qwen3:8b", "object": "model"},
                                         {"id": "vendor/coder-model", "object": "model"}]}


def answer_models_or_auto(request: ScriptedRequest) -> Any:
    return Status(200, MODEL_LIST) if request.path.endswith("/models") else Auto()


def test_models_lists_routable_aliases_for_a_translated_provider(
    scripted_upstream: Callable[..., Any], gateway: GatewayFactory,
) -> None:
    local = scripted_upstream(default=Callback(answer_models_or_auto), name="local")
    config = {"providers": [{"name": "local", "kind": "openai-compatible", "base_url": local.openai_base_url,
                             "api_keys": [KEY]}],
              "models": [{"match": "*", "to": "local/default-model"}]}
    gw = gateway(config)
    listing = httpx.get(gw.url + "/v1/models?limit=1000", headers=HEADERS, timeout=10)
    assert listing.status_code == 200
    models = listing.json()["data"]
    ids = [m["id"] for m in models]
    assert ids == ["claude-via-local/qwen3:8b", "claude-via-local/vendor/coder-model"]
    # What Claude Code's discovery keeps (2.1.223+): ids containing "claude" or "anthropic".
    assert [i for i in ids if "claude" in i or "anthropic" in i] == ids
    assert [m["display_name"] for m in models] == ["qwen3:8b (local)", "vendor/coder-model (local)"]
    for alias, real in (("claude-via-local/qwen3:8b", "qwen3:8b"),
                        ("claude-via-local/vendor/coder-model", "vendor/coder-model")):
        r = httpx.post(gw.url + "/v1/messages", json={**MSG, "model": alias}, headers=HEADERS, timeout=20)
        assert r.status_code == 200, r.text
        assert local.last.path == "/v1/chat/completions" and local.last.json["model"] == real
    assert len(local.requests_to("/models")) == 1  # cached


def test_admin_providers_connect_test_models_and_remove_through_a_running_gateway(
    scripted_upstream: Callable[..., Any], gateway: GatewayFactory,
) -> None:
    first = scripted_upstream(name="first")
    local = scripted_upstream(default=Callback(answer_models_or_auto), name="local")
    gw = gateway({"server": {"admin": {"key": "env:CCGATE_ADMIN_KEY"}}, "providers": [provider(first.url)]},
                 env={"CCGATE_ADMIN_KEY": ADMIN_KEY})
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    spec = {"base_url": local.openai_base_url, "kind": "openai-compatible", "name": "local",
            "key": "sk-local-key-0123456789", "models": ["qwen3:8b"], "tools": False}
    added = httpx.post(gw.url + "/admin/providers", json=spec, headers=auth, timeout=30)
    assert added.status_code == 201, added.text
    assert added.json()["check"]["ok"] and added.json()["reload"]["providers"]["local"] == "added"
    assert "sk-local-key" not in gw.config_path.read_text()

    # Claude Code's requests now go to the new provider (the tier routes connect wrote), no restart.
    assert post(gw).status_code == 200
    assert local.last.path == "/v1/chat/completions" and local.last.json["model"] == "qwen3:8b"
    listed = httpx.get(gw.url + "/admin/providers/local/models", headers=auth, timeout=30).json()
    assert "qwen3:8b" in [m["id"] for m in listed["models"]]
    tested = httpx.post(gw.url + "/admin/providers/local/test", json={}, headers=auth, timeout=30)
    assert tested.status_code == 200 and tested.json()["ok"]

    removed = httpx.delete(gw.url + "/admin/providers/local", headers=auth, timeout=30)
    assert removed.status_code == 200 and removed.json()["reload"]["providers"]["local"] == "removed"
    before = len(first.requests)
    assert post(gw).status_code == 200 and len(first.requests) == before + 1
    assert httpx.delete(gw.url + "/admin/providers/local", headers=auth, timeout=30).status_code == 404
