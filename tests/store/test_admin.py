"""Admin API handlers called as ASGI callables with a fake scope/receive/send (no server)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from ccgate.config.secrets import Secret
from ccgate.errors import GatewayError, new_request_id
from ccgate.server.admin import AdminApi, admin_key_from
from ccgate.server.asgi import Message
from ccgate.server.openapi import openapi_document
from ccgate.server.response import Response
from ccgate.store import KeyCache, SQLiteStore, UsageRow
from tests.store.conftest import T0, FakeClock

ADMIN_KEY = "test-admin-key-0123456789"  # a fixed test value


@dataclass
class Ctx:
    request_id: str = field(default_factory=new_request_id)
    client: str | None = None
    bytes_in: int = 0


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    raw: bytes


async def call(api: AdminApi, method: str, path: str, body: bytes | dict[str, Any] | None = None, *,
               auth: str | None = "bearer", key: str = ADMIN_KEY, query: bytes = b"") -> Reply:
    """What Gateway.handle does for an /admin/ path: dispatch, and GatewayError -> envelope."""
    raw_body = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    headers = [(b"content-length", str(len(raw_body)).encode())]
    if auth == "bearer":
        headers.append((b"authorization", f"Bearer {key}".encode()))
    elif auth == "x-api-key":
        headers.append((b"x-api-key", key.encode()))
    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": headers}
    incoming = [{"type": "http.request", "body": raw_body, "more_body": False}]

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    ctx = Ctx()
    response = Response(send)
    try:
        await api.dispatch(scope, receive, response, ctx)
        assert response.bytes_out == len(sent[1]["body"])
    except GatewayError as err:
        await response.error(err, ctx.request_id)
    start, payload = sent
    assert response.status == start["status"] and response.finished
    hdrs = {k.decode(): v.decode() for k, v in start["headers"]}
    return Reply(start["status"], hdrs, json.loads(payload["body"]), payload["body"])


@pytest.fixture
def api(store: SQLiteStore, clock: FakeClock) -> tuple[AdminApi, KeyCache]:
    cache = KeyCache(store, clock=clock, monotonic=clock)
    cache.reload()
    return AdminApi(store, cache, ADMIN_KEY, clock=clock), cache


# Auth ----------------------------------------------------------------------------------------


async def test_disabled_without_an_admin_key(store: SQLiteStore) -> None:
    api = AdminApi(store, None, None)
    assert not api.enabled and api.routes() == {}
    for path in ("/admin/keys", "/admin/openapi.json", "/admin/keys/key_x/revoke"):
        reply = await call(api, "GET", path)
        assert reply.status == 404 and reply.body["error"]["type"] == "not_found_error"


async def test_admin_key_required(api: tuple[AdminApi, KeyCache]) -> None:
    admin, _ = api
    missing = await call(admin, "GET", "/admin/keys", auth=None)
    assert missing.status == 401 and "missing admin credential" in missing.body["error"]["message"]
    assert missing.headers["x-should-retry"] == "false"
    wrong = await call(admin, "GET", "/admin/keys", key=ADMIN_KEY + "x")
    assert wrong.status == 401 and wrong.body["error"]["message"] == "invalid admin credential"
    # An unknown path is 401 too for an anonymous caller: no map of the API without the key.
    assert (await call(admin, "GET", "/admin/secret-stuff", auth=None)).status == 401
    assert (await call(admin, "GET", "/admin/keys", auth="x-api-key")).status == 200
    assert (await call(admin, "GET", "/admin/keys")).status == 200


async def test_issued_client_key_is_not_an_admin_key(api: tuple[AdminApi, KeyCache]) -> None:
    admin, _ = api
    created = await call(admin, "POST", "/admin/keys", {"name": "alice"})
    reply = await call(admin, "GET", "/admin/keys", key=created.body["secret"])
    assert reply.status == 401


def test_admin_key_sources_and_minimum_length(store: SQLiteStore) -> None:
    assert admin_key_from(Secret("from-config-0123456789"), {"CCGATE_ADMIN_KEY": "env"}) == "from-config-0123456789"
    assert admin_key_from(None, {"CCGATE_ADMIN_KEY": "from-env"}) == "from-env"
    assert admin_key_from(None, {}) is None
    with pytest.raises(ValueError, match="the admin key is 5 characters") as info:
        AdminApi(store, None, "short")
    assert "short" not in str(info.value).replace("characters", "")
    assert AdminApi(store, None, Secret(ADMIN_KEY)).enabled


# Key operations --------------------------------------------------------------------------------


async def test_create_list_get_revoke(api: tuple[AdminApi, KeyCache], caplog: pytest.LogCaptureFixture) -> None:
    admin, cache = api
    caplog.set_level(logging.DEBUG)
    created = await call(admin, "POST", "/admin/keys",
                         {"name": "alice", "models": ["claude-*"], "rpm": 60, "expires": "90d"})
    assert created.status == 201 and created.headers["cache-control"] == "no-store"
    secret, key = created.body["secret"], created.body["key"]
    assert secret.startswith("ccg_") and key["prefix"] == secret[:12]
    assert key["rpm"] == 60 and key["models"] == ["claude-*"] and key["status"] == "active"
    assert key["expires_at"] == "2027-04-15T08:00:00Z"
    assert cache.authenticate(secret) is not None  # same process: no poll needed

    listing = await call(admin, "GET", "/admin/keys")
    assert listing.status == 200 and [k["id"] for k in listing.body["data"]] == [key["id"]]
    assert secret.encode() not in listing.raw

    for ref in (key["id"], "alice"):
        got = await call(admin, "GET", f"/admin/keys/{ref}")
        assert got.status == 200 and got.body == key

    revoked = await call(admin, "POST", f"/admin/keys/{key['id']}/revoke")
    assert revoked.status == 200 and revoked.body["status"] == "revoked"
    assert cache.authenticate(secret) is None and cache.check(secret).verdict == "revoked"
    again = await call(admin, "POST", f"/admin/keys/{key['id']}/revoke")
    assert again.status == 409 and "already revoked" in again.body["error"]["message"]
    assert secret not in caplog.text and "created key alice" in caplog.text


async def test_rotate_with_grace(api: tuple[AdminApi, KeyCache], clock: FakeClock) -> None:
    admin, cache = api
    old = (await call(admin, "POST", "/admin/keys", {"name": "alice"})).body
    rotated = await call(admin, "POST", f"/admin/keys/{old['key']['id']}/rotate", {"grace": "1h"})
    assert rotated.status == 200 and rotated.headers["cache-control"] == "no-store"
    new_secret = rotated.body["secret"]
    assert rotated.body["key"]["status"] == "rotating" and rotated.body["key"]["grace_until"] is not None
    assert cache.authenticate(old["secret"]) is not None and cache.authenticate(new_secret) is not None
    clock.advance(3600)
    assert cache.authenticate(old["secret"]) is None and cache.authenticate(new_secret) is not None
    no_grace = await call(admin, "POST", "/admin/keys/alice/rotate")  # empty body: no grace
    assert no_grace.status == 200 and cache.authenticate(new_secret) is None


BAD_REQUESTS = [
    ("POST", "/admin/keys", {"name": "bad name"}, 400, "name: 'bad name' is not a valid key name"),
    ("POST", "/admin/keys", {"name": "a", "rpm": -5}, 400, "rpm: must be a whole number"),
    ("POST", "/admin/keys", {"name": "a", "rpm": "60"}, 400, "Expected `int | float | null`, got `str` - at `$.rpm`"),
    ("POST", "/admin/keys", {"name": "a", "rpm": 60.5}, 400, "rpm must be a whole number, got 60.5"),
    ("POST", "/admin/keys", {"name": "a", "expires": "0d"}, 400, "expires: '0d' is zero"),
    ("POST", "/admin/keys", {"name": "a", "expires": " 1d"}, 400, "expires: ' 1d' is not a duration"),
    ("POST", "/admin/keys/taken/rotate", b"\x0c", 400, "request body is not valid JSON"),  # not "no body"
    ("GET", "/admin/usage?since=0d", None, 400, "since: '0d' is zero"),
    ("POST", "/admin/keys", {"name": "a", "models": ["claude-[x"]}, 400, "unclosed '['"),
    ("POST", "/admin/keys", {"name": "a", "expires": "3 months"}, 400, "expires: '3 months' is not a duration"),
    ("POST", "/admin/keys", {"nmae": "a"}, 400, "unknown field `nmae`"),
    ("POST", "/admin/keys", {"models": []}, 400, "missing required field `name`"),
    ("POST", "/admin/keys", b"{not json", 400, "request body is not valid JSON"),
    ("POST", "/admin/keys", b"", 400, "expected a JSON object"),
    ("POST", "/admin/keys", {"name": "taken"}, 409, "a key named 'taken' already exists"),
    ("GET", "/admin/keys/key_0123456789abcdef", None, 404, "no key with id 'key_0123456789abcdef'"),
    ("GET", "/admin/keys/nobody", None, 404, "no key with id or name 'nobody'"),
    ("POST", "/admin/keys/nobody/revoke", None, 404, "no key with id or name 'nobody'"),
    ("POST", "/admin/keys/taken/rotate", {"grace": "forever"}, 400, "grace: 'forever' is not a duration"),
    ("POST", "/admin/keys/taken/rotate", {"grace": 60}, 400, "Expected `str | null`, got `int`"),
    ("POST", "/admin/keys/taken/explode", None, 404, "no such endpoint"),
    ("GET", "/admin/keys/", None, 404, "no such endpoint"),
    ("DELETE", "/admin/keys/taken", None, 405, "method DELETE is not allowed on /admin/keys/taken; use GET"),
    ("PUT", "/admin/keys", None, 405, "use GET, POST"),
    ("GET", "/admin/keys/taken/revoke", None, 405, "use POST"),
    ("GET", "/admin/usage?by=user", None, 400, "by: 'user' is not one of key, model, provider, session"),
    ("GET", "/admin/usage?since=soon", None, 400, "since: 'soon' is not a duration"),
    ("GET", "/admin/usage?sinse=7d", None, 400, "unknown query parameter 'sinse'"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD_REQUESTS,
                         ids=[f"{m} {p} {s}" for m, p, _, s, _ in BAD_REQUESTS])
async def test_bad_requests(api: tuple[AdminApi, KeyCache], store: SQLiteStore, method: str, path: str,
                            body: Any, status: int, message: str) -> None:
    admin, _ = api
    await call(admin, "POST", "/admin/keys", {"name": "taken"})
    before = store.list_keys()
    path, _, query = path.partition("?")
    reply = await call(admin, method, path, body, query=query.encode())
    assert reply.status == status and message in reply.body["error"]["message"], reply.body
    assert reply.body["type"] == "error" and reply.body["request_id"].startswith("req_")
    assert store.list_keys() == before


async def test_usage(api: tuple[AdminApi, KeyCache], store: SQLiteStore) -> None:
    admin, _ = api
    created = (await call(admin, "POST", "/admin/keys", {"name": "alice"})).body["key"]
    store.add_usage([
        UsageRow(ts=T0 - 60, status=200, key_id=created["id"], model="claude-opus", provider="anthropic",
                 session_id="s1", input_tokens=100, output_tokens=50),
        UsageRow(ts=T0 - 30 * 86400, status=200, key_id=created["id"], model="claude-opus", input_tokens=1),
    ])
    reply = await call(admin, "GET", "/admin/usage", query=b"since=7d&by=key")
    assert reply.status == 200
    [group] = reply.body["data"]
    assert (group["group"], group["name"], group["requests"], group["input_tokens"]) == (created["id"], "alice", 1, 100)
    everything = await call(admin, "GET", "/admin/usage", query=b"since=all&by=model")
    assert everything.body["since"] is None and everything.body["data"][0]["requests"] == 2
    default = await call(admin, "GET", "/admin/usage")
    assert default.body["by"] == "key" and default.body["since"] == "2027-01-08T08:00:00Z"


# OpenAPI ---------------------------------------------------------------------------------------


def _openapi_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method != "parameters"}


async def test_openapi_is_served_without_auth_and_matches_the_routes(api: tuple[AdminApi, KeyCache]) -> None:
    admin, _ = api
    reply = await call(admin, "GET", "/admin/openapi.json", auth=None)
    assert reply.status == 200 and reply.body["openapi"] == "3.1.0"
    documented = _openapi_routes(reply.body)
    fixed = set(admin.routes())
    templated = {("GET", "/admin/keys/{key}"), ("PATCH", "/admin/keys/{key}"), ("POST", "/admin/keys/{key}/revoke"),
                 ("POST", "/admin/keys/{key}/rotate"), ("DELETE", "/admin/providers/{name}"),
                 ("POST", "/admin/providers/{name}/test"), ("GET", "/admin/providers/{name}/models")}
    assert documented == fixed | templated
    for method, path in templated:  # every templated route really is served
        concrete = path.replace("{key}", "nobody").replace("{name}", "nobody")
        body = {"budget_day": 1} if method == "PATCH" else None
        assert (await call(admin, method, concrete, body)).status == 404  # routed, key unknown (not 405)
    refs = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(reply.body))
    assert refs and set(refs) <= set(reply.body["components"]["schemas"])


def conforms(value: Any, schema: dict[str, Any], schemas: dict[str, Any], where: str = "$") -> None:
    """A small JSON Schema subset check (type, enum, const, required, properties,
    additionalProperties false, items, $ref): enough to keep the document honest."""
    if "$ref" in schema:
        conforms(value, schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas, where)
        return
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        python = {"string": str, "integer": int, "object": dict, "array": list, "null": type(None), "boolean": bool,
                  "number": (int, float)}
        assert any(isinstance(value, python[n]) and not (n == "integer" and isinstance(value, bool))
                   for n in names), f"{where}: {value!r} is not {names}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "const" in schema:
        assert value == schema["const"], where
    if isinstance(value, dict):
        for name in schema.get("required", []):
            assert name in value, f"{where}: missing {name}"
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(props), f"{where}: undocumented {set(value) - set(props)}"
        for name, sub in props.items():
            if name in value:
                conforms(value[name], sub, schemas, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            conforms(item, schema["items"], schemas, f"{where}[{i}]")


async def test_responses_conform_to_the_document(api: tuple[AdminApi, KeyCache], store: SQLiteStore) -> None:
    admin, _ = api
    doc = openapi_document("test")
    schemas = doc["components"]["schemas"]
    paths = doc["paths"]

    def check(reply: Reply, path: str, method: str) -> None:
        response = paths[path][method]["responses"][str(reply.status)]
        conforms(reply.body, response["content"]["application/json"]["schema"], schemas)

    created = await call(admin, "POST", "/admin/keys", {"name": "alice", "rpm": 5, "expires": "1w"})
    check(created, "/admin/keys", "post")
    key_id = created.body["key"]["id"]
    store.add_usage([UsageRow(ts=T0, status=200, key_id=key_id, model="m", session_id="s")])
    check(await call(admin, "GET", "/admin/keys"), "/admin/keys", "get")
    check(await call(admin, "GET", f"/admin/keys/{key_id}"), "/admin/keys/{key}", "get")
    check(await call(admin, "POST", f"/admin/keys/{key_id}/rotate", {"grace": "1h"}), "/admin/keys/{key}/rotate", "post")
    check(await call(admin, "GET", "/admin/usage", query=b"by=session"), "/admin/usage", "get")
    check(await call(admin, "PATCH", f"/admin/keys/{key_id}", {"budget_day": 2.5}), "/admin/keys/{key}", "patch")
    check(await call(admin, "PATCH", f"/admin/keys/{key_id}", {"budget_day": -1}), "/admin/keys/{key}", "patch")
    check(await call(admin, "POST", f"/admin/keys/{key_id}/revoke"), "/admin/keys/{key}/revoke", "post")
    check(await call(admin, "POST", f"/admin/keys/{key_id}/revoke"), "/admin/keys/{key}/revoke", "post")  # 409
    check(await call(admin, "POST", "/admin/keys", {"name": 5}), "/admin/keys", "post")  # 400
    check(await call(admin, "GET", "/admin/keys", auth=None), "/admin/keys", "get")  # 401
    check(await call(admin, "GET", "/admin/keys/nobody"), "/admin/keys/{key}", "get")  # 404


async def test_fixed_routes_are_guarded(api: tuple[AdminApi, KeyCache]) -> None:
    """``routes()`` handlers authorize by themselves, for a gateway that wires them directly."""
    admin, _ = api
    handler = admin.routes()[("GET", "/admin/keys")]
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/admin/keys", "query_string": b"", "headers": []}
    with pytest.raises(GatewayError) as info:
        await handler(scope, receive, Response(send), Ctx())
    assert info.value.status == 401 and not sent
    scope["headers"] = [(b"x-api-key", ADMIN_KEY.encode())]
    ctx = Ctx()
    response = Response(send)
    await handler(scope, receive, response, ctx)
    assert response.status == 200 and response.finished and ctx.client == "admin"


# Budgets and cost ------------------------------------------------------------------------------


async def test_budgets_set_at_create_changed_by_patch_and_cleared_with_null(
        api: tuple[AdminApi, KeyCache], store: SQLiteStore) -> None:
    admin, _ = api
    created = await call(admin, "POST", "/admin/keys", {"name": "bob", "budget_day": 5, "budget_month": 100.5})
    assert created.status == 201
    key = created.body["key"]
    assert (key["budget_day"], key["budget_month"]) == (5.0, 100.5)
    patched = await call(admin, "PATCH", f"/admin/keys/{key['id']}", {"budget_month": None})
    assert patched.status == 200 and (patched.body["budget_day"], patched.body["budget_month"]) == (5.0, None)
    stored = store.get_key(key["id"])
    assert stored is not None and (stored.budget_day, stored.budget_month) == (5.0, None)
    by_name = await call(admin, "PATCH", "/admin/keys/bob", {"budget_day": 7})
    assert by_name.status == 200 and by_name.body["budget_day"] == 7.0


@pytest.mark.parametrize(("body", "status", "message"), [
    ({}, 400, "nothing to change"),
    ({"budget_day": 0}, 400, "budget_day: must be an amount"),
    ({"budget_month": -3}, 400, "budget_month: must be an amount"),
    ({"budget_day": 2e12}, 400, "budget_day: must be an amount"),
    ({"budget_day": "ten"}, 400, "request body"),
    ({"rpm": 5}, 400, "request body"),
])
async def test_patch_refuses_bad_budgets(api: tuple[AdminApi, KeyCache], store: SQLiteStore,
                                         body: dict[str, Any], status: int, message: str) -> None:
    admin, _ = api
    await call(admin, "POST", "/admin/keys", {"name": "carol", "budget_day": 1})
    before = store.list_keys()
    reply = await call(admin, "PATCH", "/admin/keys/carol", body)
    assert reply.status == status and message in reply.body["error"]["message"], reply.body
    assert store.list_keys() == before


async def test_patch_on_a_revoked_key_is_a_conflict(api: tuple[AdminApi, KeyCache]) -> None:
    admin, _ = api
    key = (await call(admin, "POST", "/admin/keys", {"name": "dave"})).body["key"]
    await call(admin, "POST", f"/admin/keys/{key['id']}/revoke")
    reply = await call(admin, "PATCH", f"/admin/keys/{key['id']}", {"budget_day": 1})
    assert reply.status == 409 and "revoked" in reply.body["error"]["message"]


async def test_usage_report_carries_cost_and_unpriced_requests(api: tuple[AdminApi, KeyCache],
                                                               store: SQLiteStore) -> None:
    admin, _ = api
    store.add_usage([
        UsageRow(ts=T0 - 60, status=200, model="claude-sonnet-4-5", input_tokens=1000, cost_usd=0.003),
        UsageRow(ts=T0 - 50, status=200, model="claude-sonnet-4-5", input_tokens=1000, cost_usd=0.003),
        UsageRow(ts=T0 - 40, status=200, model="mystery", input_tokens=10),  # unpriced
        UsageRow(ts=T0 - 30, status=500, model="mystery"),  # no tokens: costs nothing, not unpriced
    ])
    reply = await call(admin, "GET", "/admin/usage", query=b"by=model")
    rows = {r["group"]: r for r in reply.body["data"]}
    assert rows["claude-sonnet-4-5"]["cost_usd"] == pytest.approx(0.006)
    assert rows["claude-sonnet-4-5"]["unpriced_requests"] == 0
    assert rows["mystery"]["cost_usd"] is None and rows["mystery"]["unpriced_requests"] == 1
