"""Issued keys, rate limits, usage and the admin API through the real ``ccgate serve`` (issue #5).

The CLI runs for real (``python -m ccgate keys|usage`` subprocesses) against the same SQLite
file as the gateway (``CCGATE_DB``), while the gateway runs. Upstream: a scripted Anthropic
provider (tests/lab/scripted.py) with a provider key of its own; clients only ever present
gateway keys.

Propagation of CLI changes to a running gateway is polled with bounded loops (the key cache
polls the store about once a second; usage is committed in batches within ~200 ms); nothing
asserts on the wall clock.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import GatewayFactory
from tests.gateway.harness import Gateway, clean_env
from tests.lab.procs import wait_for
from tests.lab.scripted import AnthropicText, ScriptedUpstream

pytestmark = [pytest.mark.lab, pytest.mark.slow]

MakeUpstream = Callable[..., ScriptedUpstream]
UPSTREAM_KEY = "sk-ant-lab-keys-e2e-upstream-000000000001"
ADMIN_KEY = "ccgate-admin-key-for-tests-0123456789"
SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5"
VERSION = {"anthropic-version": "2023-06-01"}


def msg(model: str = SONNET, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **extra}


# --- helpers -----------------------------------------------------------------------------------
def ccgate(db: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The real CLI, on ``db``."""
    return subprocess.run([sys.executable, "-m", "ccgate", *args], capture_output=True, text=True,
                          env=clean_env({"CCGATE_DB": str(db)}), cwd=db.parent.parent, timeout=timeout)


def create_key(db: Path, name: str, *options: str) -> str:
    done = ccgate(db, "keys", "create", "--name", name, *options)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert done.stdout == secret + "\n" and secret.startswith("ccg_")
    return secret


def usage_json(db: Path, by: str = "key") -> dict[str, Any]:
    done = ccgate(db, "usage", "--since", "all", "--by", by, "--json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def total_requests(report: dict[str, Any]) -> int:
    return sum(int(g["requests"]) for g in report["data"])


def provider(up: ScriptedUpstream) -> dict[str, Any]:
    return {"name": "primary", "kind": "anthropic", "base_url": up.http_url, "api_keys": [UPSTREAM_KEY]}


def start(gateway: GatewayFactory, up: ScriptedUpstream, db: Path, **server: Any) -> Gateway:
    """A gateway whose store is ``db`` (no config tokens: issued keys only)."""
    config: dict[str, Any] = {"providers": [provider(up)]}
    if server:
        config["server"] = server
    return gateway(config, env={"CCGATE_DB": str(db)})


def post(gw: Gateway, key: str | None, body: dict[str, Any] | None = None, *, bearer: bool = False,
         headers: dict[str, str] | None = None) -> httpx.Response:
    sent = {**VERSION, **(headers or {})}
    if key is not None:
        sent.update({"authorization": f"Bearer {key}"} if bearer else {"x-api-key": key})
    return httpx.post(gw.url + "/v1/messages", json=body or msg(), headers=sent, timeout=20)


def check_auth(gw: Gateway, key: str) -> httpx.Response:
    """Authenticate without spending a key's requests-per-minute (count_tokens is not limited)."""
    return httpx.post(gw.url + "/v1/messages/count_tokens", json={"model": SONNET, "messages": [
        {"role": "user", "content": "hi"}]}, headers={**VERSION, "x-api-key": key}, timeout=20)


def error_of(r: httpx.Response) -> tuple[int, str, str]:
    body = r.json()
    assert body["type"] == "error", body
    return r.status_code, body["error"]["type"], body["error"]["message"]


def assert_secrets_not_logged(gw: Gateway, *secret_values: str) -> None:
    log = gw.log
    assert log, "the gateway wrote no log at all"
    for value in (UPSTREAM_KEY, ADMIN_KEY, *secret_values):
        assert value not in log, "a secret reached the gateway log"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "ccgate.db"


@pytest.fixture
def up(scripted_upstream: MakeUpstream) -> ScriptedUpstream:
    return scripted_upstream(name="primary")


# --- keys from the CLI, at the gateway ------------------------------------------------------------
def test_cli_keys_authenticate_refuse_revoke_and_rotate(
    db: Path, up: ScriptedUpstream, gateway: GatewayFactory,
) -> None:
    alice = create_key(db, "alice", "--rpm", "5")
    haiku = create_key(db, "haiku-only", "--models", "claude-*haiku*")
    gw = start(gateway, up, db)

    # x-api-key and Bearer both work; the upstream sees only the provider key.
    for bearer in (False, True):
        r = post(gw, alice, bearer=bearer)
        assert r.status_code == 200, r.text
        seen = up.requests_to("/v1/messages")[-1]
        assert seen.header("x-api-key") == UPSTREAM_KEY and seen.header("authorization") is None
        assert alice not in str(seen.headers)

    # Unknown keys (ours in shape, or not) and no key: 401 with a specific message.
    for token, fragment in ((f"ccg_{secrets.token_urlsafe(32)}", "invalid gateway credential"),
                            ("sk-ant-not-a-gateway-key-000000", "invalid gateway credential"),
                            (None, "missing gateway credential")):
        assert error_of(post(gw, token))[:2] == (401, "authentication_error")
        assert fragment in error_of(post(gw, token))[2]

    # Model globs: haiku allowed, sonnet refused (never reaching the upstream).
    before = len(up.requests_to("/v1/messages"))
    status, kind, message = error_of(post(gw, haiku, msg(SONNET)))
    assert (status, kind) == (403, "permission_error")
    assert "haiku-only" in message and SONNET in message and "claude-*haiku*" in message
    assert len(up.requests_to("/v1/messages")) == before
    assert post(gw, haiku, msg(HAIKU)).status_code == 200

    # Revoke from the CLI while the gateway runs: refused within a couple of seconds.
    done = ccgate(db, "keys", "revoke", "alice")
    assert done.returncode == 0 and "Revoked key alice" in done.stdout, done.stderr
    r = wait_for("the revocation to reach the gateway",
                 lambda: (resp := check_auth(gw, alice)).status_code == 401 and resp)
    assert error_of(r) == (401, "authentication_error", "this gateway key was revoked")
    assert error_of(post(gw, alice))[2] == "this gateway key was revoked"

    # Rotate with grace: old and new both work during the grace period.
    bob_old = create_key(db, "bob")
    wait_for("bob to reach the gateway", lambda: check_auth(gw, bob_old).status_code == 200)
    done = ccgate(db, "keys", "rotate", "bob", "--grace", "1h")
    assert done.returncode == 0, done.stderr
    bob_new = done.stdout.strip()
    assert bob_new.startswith("ccg_") and bob_new != bob_old and "keeps working until" in done.stderr
    wait_for("the rotated secret to reach the gateway", lambda: check_auth(gw, bob_new).status_code == 200)
    assert post(gw, bob_old).status_code == 200 and post(gw, bob_new).status_code == 200
    # Rotating again without grace: only the newest secret works; the others stop at once.
    done = ccgate(db, "keys", "rotate", "bob")
    assert done.returncode == 0 and "no longer works" in done.stderr, done.stderr
    bob_newest = done.stdout.strip()
    wait_for("the second rotation", lambda: check_auth(gw, bob_newest).status_code == 200)
    for stale in (bob_old, bob_new):
        assert error_of(post(gw, stale))[:2] == (401, "authentication_error")
    listed = {k["name"]: k for k in json.loads(ccgate(db, "keys", "list", "--json").stdout)}
    assert listed["alice"]["status"] == "revoked" and listed["bob"]["status"] == "active"
    assert_secrets_not_logged(gw, alice, haiku, bob_old, bob_new, bob_newest)


def test_key_created_after_the_gateway_started_turns_auth_on(
    db: Path, up: ScriptedUpstream, gateway: GatewayFactory,
) -> None:
    """A gateway started on an empty store (no config tokens) serves without auth; once a key
    is issued from the CLI, it must require one within the poll interval, as it would for a
    key that existed at start (docs/keys.md: "Running gateways pick it up within about a
    second"; auth.py: "Once a key has been issued it stays on")."""
    gw = start(gateway, up, db)
    assert post(gw, None).status_code == 200  # nothing issued yet: open, as configured
    key = create_key(db, "late")

    def enforced() -> bool:
        return post(gw, None).status_code == 401

    try:
        wait_for("the gateway to require the newly issued key", enforced, timeout=5, every=0.2)
    except AssertionError:
        pytest.fail("BUG: a key issued by `ccgate keys create` while the gateway runs is never "
                    "picked up when the gateway started with no keys: requests without any "
                    "credential still get 200 (ClientAuth.enabled reads len(KeyCache) without "
                    "polling the store, and the cache only polls inside authenticate)")
    assert post(gw, key).status_code == 200
    assert error_of(post(gw, "ccg_" + secrets.token_urlsafe(32)))[:2] == (401, "authentication_error")


# --- rate limits ----------------------------------------------------------------------------------
def test_rpm_limit_is_exact_under_40_concurrent_requests(
    db: Path, up: ScriptedUpstream, gateway: GatewayFactory,
) -> None:
    secret = create_key(db, "burst", "--rpm", "10")
    gw = start(gateway, up, db, metrics={"key_names": True})  # key names in metrics are opt-in

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            return await asyncio.gather(*(
                client.post(gw.url + "/v1/messages", json=msg(),
                            headers={**VERSION, "x-api-key": secret})
                for _ in range(40)))

    responses = asyncio.run(fire())
    assert collections.Counter(r.status_code for r in responses) == {200: 10, 429: 30}
    for r in responses:
        if r.status_code != 429:
            continue
        _, kind, message = error_of(r)
        assert kind == "rate_limit_error" and "10 requests per minute" in message and "burst" in message
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["anthropic-ratelimit-requests-limit"] == "10"
        assert r.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert r.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
        assert r.headers["x-should-retry"] == "true"
    assert len(up.requests_to("/v1/messages")) == 10  # refused requests never went upstream
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'ccgate_rate_limited_total{client="burst"} 30.0' in metrics


def test_tpm_limit_counts_the_upstreams_tokens_json_and_stream(
    db: Path, scripted_upstream: MakeUpstream, gateway: GatewayFactory,
) -> None:
    """Each answer reports 21 input + 9 output = 30 tokens; at --tpm 50 the first two requests
    (one JSON, one SSE stream) are admitted, after which 60 tokens are recorded and the third
    is refused for tokens."""
    up = scripted_upstream(default=AnthropicText("counted"), name="primary")
    secret = create_key(db, "tokens", "--tpm", "50")
    gw = start(gateway, up, db)
    assert post(gw, secret).status_code == 200
    streamed = post(gw, secret, msg(stream=True))
    assert streamed.status_code == 200 and b"message_stop" in streamed.content
    r = post(gw, secret)
    status, kind, message = error_of(r)
    assert (status, kind) == (429, "rate_limit_error") and "50 tokens per minute" in message, message
    assert r.headers["anthropic-ratelimit-tokens-limit"] == "50"
    assert r.headers["anthropic-ratelimit-tokens-remaining"] == "0"
    assert int(r.headers["retry-after"]) >= 1
    assert len(up.requests_to("/v1/messages")) == 2


# --- usage ----------------------------------------------------------------------------------------
def test_usage_by_key_model_and_session(db: Path, scripted_upstream: MakeUpstream, gateway: GatewayFactory) -> None:
    big = {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 7,
           "cache_creation_input_tokens": 3}
    up = scripted_upstream(AnthropicText("one", usage=big), AnthropicText("two", usage=big),
                           AnthropicText("three", usage={"input_tokens": 50, "output_tokens": 5}),
                           AnthropicText("four", usage={"input_tokens": 1, "output_tokens": 2}),
                           name="primary")
    u1 = create_key(db, "u1")
    u2 = create_key(db, "u2")
    gw = start(gateway, up, db)
    s1 = {"x-claude-code-session-id": "s1"}
    assert post(gw, u1, msg(SONNET), headers=s1).status_code == 200
    assert post(gw, u1, msg(SONNET), headers=s1).status_code == 200
    streamed = post(gw, u1, msg(HAIKU, stream=True), headers=s1)  # tokens from the SSE events
    assert streamed.status_code == 200 and b"message_stop" in streamed.content
    assert post(gw, u2, msg(HAIKU), headers={"x-claude-code-session-id": "s2"}).status_code == 200

    by_key = wait_for("4 usage rows to be committed",
                      lambda: rep if total_requests(rep := usage_json(db, "key")) >= 4 else None)
    assert total_requests(by_key) == 4
    rows = {g["name"]: g for g in by_key["data"]}
    assert set(rows) == {"u1", "u2"}
    tokens = ("requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    assert [rows["u1"][t] for t in tokens] == [3, 0, 250, 45, 14, 6]
    assert [rows["u2"][t] for t in tokens] == [1, 0, 1, 2, 0, 0]

    by_model = {g["group"]: g for g in usage_json(db, "model")["data"]}
    assert [by_model[SONNET][t] for t in tokens] == [2, 0, 200, 40, 14, 6]
    assert [by_model[HAIKU][t] for t in tokens] == [2, 0, 51, 7, 0, 0]

    by_session = {g["group"]: g for g in usage_json(db, "session")["data"]}
    assert {s: (g["requests"], g["input_tokens"], g["output_tokens"]) for s, g in by_session.items()} == {
        "s1": (3, 250, 45), "s2": (1, 1, 2)}
    by_provider = usage_json(db, "provider")["data"]
    assert [(g["group"], g["requests"]) for g in by_provider] == [("primary", 4)]

    # The human table: one line per session and a TOTAL.
    table = ccgate(db, "usage", "--since", "all", "--by", "session")
    assert table.returncode == 0, table.stderr
    lines = {ln.split()[0]: ln.split() for ln in table.stdout.splitlines()[1:]}
    assert lines["s1"][1:5] == ["3", "0", "250", "45"]
    assert lines["TOTAL"][1:5] == ["4", "0", "251", "47"]
    assert_secrets_not_logged(gw, u1, u2)


# --- the admin API ---------------------------------------------------------------------------------
ADMIN_PATHS = {
    "/admin/keys": {"get", "post"},
    "/admin/keys/{key}": {"get", "patch"},
    "/admin/keys/{key}/revoke": {"post"},
    "/admin/keys/{key}/rotate": {"post"},
    "/admin/usage": {"get"},
    "/admin/config/reload": {"post"},
    "/admin/routes": {"get"},
    "/admin/providers": {"get", "post"},
    "/admin/providers/{name}": {"delete"},
    "/admin/providers/{name}/test": {"post"},
    "/admin/providers/{name}/models": {"get"},
    "/admin/openapi.json": {"get"},
}


def admin(gw: Gateway, method: str, path: str, key: str | None = ADMIN_KEY, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.request(method, gw.url + path, headers=headers, timeout=20, **kw)


def test_admin_api(db: Path, up: ScriptedUpstream, gateway: GatewayFactory) -> None:
    gw = start(gateway, up, db, admin={"key": ADMIN_KEY})

    # Without or with a wrong admin key: 401, and nothing is created.
    for key in (None, "wrong-admin-key-0000000000", f"ccg_{secrets.token_urlsafe(32)}"):
        r = admin(gw, "POST", "/admin/keys", key, json={"name": "nope"})
        assert error_of(r)[:2] == (401, "authentication_error")
        assert admin(gw, "GET", "/admin/not-a-route", key).status_code == 401  # no map for anonymous callers

    r = admin(gw, "POST", "/admin/keys", json={"name": "carol", "models": ["claude-*"], "rpm": 100})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("ccg_") and created["key"]["name"] == "carol"
    assert created["key"]["prefix"] == secret[:12]
    # Applied in this process at once: no poll.
    assert post(gw, secret).status_code == 200
    # An issued client key is never an admin key.
    assert admin(gw, "GET", "/admin/keys", secret).status_code == 401

    dup = admin(gw, "POST", "/admin/keys", json={"name": "carol"})
    assert dup.status_code == 409
    bad = admin(gw, "POST", "/admin/keys", json={"name": "dave", "rpm": 0})
    assert error_of(bad)[:2] == (400, "invalid_request_error") and "rpm" in error_of(bad)[2]

    listing = admin(gw, "GET", "/admin/keys")
    assert listing.status_code == 200
    assert secret not in listing.text and secret[12:] not in listing.text and "digest" not in listing.text
    assert [k["name"] for k in listing.json()["data"]] == ["carol"]
    one = admin(gw, "GET", f"/admin/keys/{created['key']['id']}")
    assert one.status_code == 200 and one.json()["name"] == "carol" and secret not in one.text

    rotated = admin(gw, "POST", "/admin/keys/carol/rotate", json={"grace": "1h"})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert post(gw, new_secret).status_code == 200 and post(gw, secret).status_code == 200
    revoked = admin(gw, "POST", "/admin/keys/carol/revoke")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert error_of(post(gw, new_secret))[2] == "this gateway key was revoked"  # at once
    assert admin(gw, "POST", "/admin/keys/carol/revoke").status_code == 409

    usage = wait_for("usage to show in the admin API", lambda: rep if total_requests(
        rep := admin(gw, "GET", "/admin/usage?since=all&by=key").json()) >= 3 else None)
    assert [(g["name"], g["requests"]) for g in usage["data"]] == [("carol", 3)]

    doc = admin(gw, "GET", "/admin/openapi.json", None)  # served without the admin key
    assert doc.status_code == 200
    spec = json.loads(doc.content)
    assert spec["openapi"].startswith("3.1")
    assert {p: set(ops) & {"get", "post", "put", "patch", "delete"} for p, ops in spec["paths"].items()} == ADMIN_PATHS
    assert_secrets_not_logged(gw, secret, new_secret)

    # The CLI sees what the API did, on the same file.
    listed = json.loads(ccgate(db, "keys", "list", "--json").stdout)
    assert [(k["name"], k["status"]) for k in listed] == [("carol", "revoked")]


def test_admin_api_is_absent_without_an_admin_key(db: Path, up: ScriptedUpstream, gateway: GatewayFactory) -> None:
    gw = start(gateway, up, db)
    for method, path in (("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/admin/openapi.json"),
                         ("GET", "/admin/usage")):
        for key in (None, ADMIN_KEY):
            r = admin(gw, method, path, key, json={"name": "x"} if method == "POST" else None)
            assert error_of(r)[:2] == (404, "not_found_error"), (method, path, r.text)


# --- CLI: every keys command, bad input included, against a live gateway's store ------------
def test_cli_every_keys_command_and_bad_input(db: Path, up: ScriptedUpstream, gateway: GatewayFactory) -> None:
    erin = create_key(db, "erin", "--models", "claude-*", "gpt-[45]*", "--rpm", "60", "--tpm", "100000",
                      "--expires", "90d")
    gw = start(gateway, up, db)
    assert post(gw, erin).status_code == 200
    before = json.loads(ccgate(db, "keys", "list", "--json").stdout)

    # A representative case per command through the real process (tests/store/test_cli.py has
    # the full table in-process): (args, exit code, words in stderr). Bad input is refused by
    # argparse before the file is opened (exit 2); well-formed but wrong requests exit 1.
    bad_input = [
        (["keys", "create", "--name", "key_x"], 2, "--name"),
        (["keys", "create", "--name", "g", "--models", "claude-[3"], 2, "--models"),
        (["keys", "create", "--name", "r", "--rpm", "0"], 2, "--rpm"),
        (["keys", "create", "--name", "e", "--expires", "10x"], 2, "--expires"),
        (["keys", "rotate", "erin", "--grace", "soon"], 2, "--grace"),
        (["usage", "--by", "colour"], 2, "--by"),
        (["keys", "create", "--name", "erin"], 1, "erin"),
        (["keys", "revoke", "nobody"], 1, "nobody"),
        (["keys", "rotate", "nobody"], 1, "nobody"),
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda case: ccgate(db, *case[0]), bad_input))
    for (args, code, words), done in zip(bad_input, results, strict=True):
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert words in done.stderr and done.stdout == "", (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert json.loads(ccgate(db, "keys", "list", "--json").stdout) == before  # nothing changed
    assert post(gw, erin).status_code == 200

    table = ccgate(db, "keys", "list")
    assert table.returncode == 0 and erin not in table.stdout
    header, row = table.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "ID", "PREFIX"] and row.split()[0] == "erin"
    assert "claude-*,gpt-[45]*" in row and erin[:12] + "..." in row

    done = ccgate(db, "keys", "revoke", before[0]["id"])  # by id
    assert done.returncode == 0, done.stderr
    again = ccgate(db, "keys", "revoke", "erin")
    assert again.returncode == 1 and "already revoked" in again.stderr
    rotate_revoked = ccgate(db, "keys", "rotate", before[0]["id"])
    assert rotate_revoked.returncode == 1 and "revoked" in rotate_revoked.stderr
    wait_for("the revocation", lambda: check_auth(gw, erin).status_code == 401)
    # A revoked key's name can be reused.
    erin2 = create_key(db, "erin")
    wait_for("the new erin", lambda: check_auth(gw, erin2).status_code == 200)
    assert error_of(post(gw, erin))[2] == "this gateway key was revoked"
    assert_secrets_not_logged(gw, erin, erin2)


# --- SIGKILL mid-traffic --------------------------------------------------------------------------
def _kill(gw: Gateway) -> None:
    assert gw.proc is not None
    os.kill(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait(10)
    assert gw.proc.returncode == -signal.SIGKILL


def _committed_request_ids(db: Path) -> set[str]:
    """Usage rows another process can read: committed ones only (WAL readers never see an
    uncommitted transaction)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT request_id FROM usage")}
    finally:
        conn.close()


@pytest.fixture
def restarted() -> Iterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    for gw in started:
        gw.stop()


def test_sigkill_mid_traffic_keeps_every_committed_key_and_usage_row(
    db: Path, up: ScriptedUpstream, gateway: GatewayFactory, restarted: list[Gateway],
) -> None:
    """What is asserted, precisely:

    * Keys: every ``POST /admin/keys`` that returned 201 before the kill was committed (the
      admin API answers after the transaction). After a restart on the same file, every one of
      those secrets authenticates, and a key revoked (200) before the kill is still refused.
    * Usage: rows are committed in batches (<= 200 ms). While traffic runs, a separate
      process (``ccgate usage --json``) is polled until it reports at least 60 rows;
      at that moment the request ids of the committed rows are read with a separate read-only
      SQLite connection. Traffic and key creation continue (100 more answers), then the server
      gets SIGKILL while six workers are still sending and creating keys. After
      the restart ``ccgate usage`` reports at least as many rows as observed, and every
      observed request id is still there. Rows still queued at the kill may be lost (docs/keys.md).
    * The file passes ``PRAGMA integrity_check`` right after the kill, before the restart.
    * No secret (issued key, provider key, admin key) appears in either gateway's log.
    """
    min_rows = 60
    config: dict[str, Any] = {"server": {"admin": {"key": ADMIN_KEY}}, "providers": [provider(up)]}
    gw = gateway(config, env={"CCGATE_DB": str(db)})

    created: dict[str, str] = {}  # key id -> secret, only for 201s
    lock = threading.Lock()
    stop = threading.Event()
    killing = threading.Event()
    answered = [0]
    failures: list[str] = []

    def create(client: httpx.Client, name: str) -> None:
        try:
            r = client.post(gw.url + "/admin/keys", json={"name": name},
                            headers={"x-api-key": ADMIN_KEY})
        except httpx.HTTPError as exc:
            if not killing.is_set():
                failures.append(f"create {name}: {exc!r}")
            return
        with lock:
            if r.status_code == 201:
                body = r.json()
                created[body["key"]["id"]] = body["secret"]
            else:
                failures.append(f"create {name}: {r.status_code} {r.text[:200]}")

    with httpx.Client(timeout=10) as setup:
        for i in range(4):
            create(setup, f"seed-{i}")
        doomed = setup.post(gw.url + "/admin/keys", json={"name": "doomed"},
                            headers={"x-api-key": ADMIN_KEY}).json()
        revoked = setup.post(gw.url + f"/admin/keys/{doomed['key']['id']}/revoke",
                             headers={"x-api-key": ADMIN_KEY})
        assert revoked.status_code == 200
    assert len(created) == 4

    def traffic(worker: int) -> None:
        n = 0
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                n += 1
                if n % 7 == 0:
                    create(client, f"w{worker}-{n}")
                    continue
                with lock:
                    secret = list(created.values())[n % len(created)]
                try:
                    r = client.post(gw.url + "/v1/messages", json=msg(),
                                    headers={**VERSION, "x-api-key": secret,
                                             "x-claude-code-session-id": f"crash-{worker}"})
                except httpx.HTTPError as exc:
                    if not killing.is_set():
                        failures.append(f"worker {worker}: {exc!r}")
                    return
                with lock:
                    if r.status_code == 200:
                        answered[0] += 1
                    else:
                        failures.append(f"worker {worker}: {r.status_code} {r.text[:200]}")

    workers = [threading.Thread(target=traffic, args=(i,), daemon=True) for i in range(6)]
    for w in workers:
        w.start()
    try:
        observed_rows = wait_for(f"{min_rows} committed usage rows", lambda: (
            n if (n := total_requests(usage_json(db))) >= min_rows else None), timeout=30, every=0.05)
        observed_ids = _committed_request_ids(db)
        assert len(observed_ids) >= observed_rows
        with lock:
            target = answered[0] + 100
        wait_for("more traffic after the observation", lambda: answered[0] >= target, timeout=30, every=0.01)
        with lock:
            keys_before_kill = dict(created)
        killing.set()
        _kill(gw)  # mid-traffic: workers are sending and creating keys right now
    finally:
        killing.set()
        stop.set()
        for w in workers:
            w.join(15)
    assert not failures, failures[:5]
    with lock:
        keys_at_kill = dict(created)
    assert len(keys_before_kill) > 4  # keys were created during the traffic, too

    conn = sqlite3.connect(db, timeout=10)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()

    again = Gateway(gw.config_path.parent, config, env={"CCGATE_DB": str(db)})
    restarted.append(again)
    again.start()

    with ThreadPoolExecutor(8) as pool:
        checks = list(pool.map(lambda s: check_auth(again, s).status_code, keys_at_kill.values()))
    lost = [key_id for key_id, status in zip(keys_at_kill, checks, strict=True) if status != 200]
    assert not lost, f"{len(lost)} of {len(keys_at_kill)} committed keys no longer authenticate"
    assert error_of(check_auth(again, doomed["secret"]))[2] == "this gateway key was revoked"

    after = usage_json(db)
    assert total_requests(after) >= observed_rows
    missing = observed_ids - _committed_request_ids(db)
    assert not missing, f"{len(missing)} committed usage rows were lost"
    assert_secrets_not_logged(gw, *keys_at_kill.values(), doomed["secret"])
    assert_secrets_not_logged(again, *keys_at_kill.values(), doomed["secret"])
