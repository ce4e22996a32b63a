"""The console without a browser: access (sessions, CSRF, headers), and each page's data, through
the gateway's real ASGI entry point with scripted providers (tests/console/inprocess.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ccgate.console.views.assets import FILES, read_asset
from ccgate.upstream.mock import Reply
from tests.console.inprocess import ADMIN_KEY, PAGES, console_config, console_gateway, csrf, sign_in

KEY = "sk-ant-provider-key-0123456789"
JSON = {"content-type": "application/json"}
ANSWER = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
          "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
          "usage": {"input_tokens": 11, "output_tokens": 7, "cache_read_input_tokens": 3}}
XSS = "<script>alert('x')</script>"


def anthropic(name: str = "anthropic") -> dict[str, Any]:
    return {"name": name, "kind": "anthropic", "base_url": "https://anthropic.test", "api_keys": [KEY]}


def message(model: str = "claude-sonnet-4-5") -> dict[str, Any]:
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def ok() -> Reply:
    return Reply(200, JSON, json.dumps(ANSWER).encode())


# Access ------------------------------------------------------------------------------------


async def test_nothing_works_without_a_session(tmp_path: Path) -> None:
    async with console_gateway(tmp_path, console_config(tmp_path, providers=[anthropic()])) as (_, _, client):
        for page in ("", *PAGES):
            answer = await client.get(f"/console/{page}")
            assert answer.status_code == 303 and answer.headers["location"] == "/console/signin", page
        for path in ("/console/overview/live", "/console/usage.csv"):
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get("/console/overview", headers={"hx-request": "true"})).status_code == 401
        for path in ("/console/keys", "/console/keys/k1/revoke", "/console/keys/k1/rotate", "/console/doctor",
                     "/console/providers/test", "/console/providers/save", "/console/providers/x/remove",
                     "/console/providers/x/test", "/console/signout"):
            answer = await client.post(path, data={"name": "x"})
            assert answer.status_code == 401, path
            assert answer.json()["error"]["type"] == "authentication_error"
        # A made-up cookie is no session either.
        client.cookies.set("ccgate_console", "forged-session-value", path="/console")
        assert (await client.get("/console/keys")).status_code == 303
        # The sign-in page and the vendored assets are all that is served.
        assert (await client.get("/console/signin")).status_code == 200
        assert (await client.get("/console/static/htmx.min.js")).status_code == 200
        assert (await client.get("/console/static/../app.py")).status_code == 404


async def test_sign_in_sets_a_strict_cookie_and_sign_out_ends_it(tmp_path: Path) -> None:
    async with console_gateway(tmp_path, console_config(tmp_path, providers=[anthropic()])) as (gw, _, client):
        wrong = await client.post("/console/signin", data={"admin_key": "not-the-admin-key-at-all"})
        assert wrong.status_code == 401 and "not the admin key" in wrong.text and "set-cookie" not in wrong.headers
        answer = await sign_in(client)
        cookie = answer.headers["set-cookie"]
        assert answer.headers["location"] == "/console/overview"
        for part in ("HttpOnly", "SameSite=Strict", "Path=/console"):
            assert part in cookie
        assert "Secure" not in cookie  # plain http on loopback; over https it is Secure (below)
        assert ADMIN_KEY not in cookie
        page = await client.get("/console/overview")
        assert page.status_code == 200 and "Overview" in page.text
        old = client.cookies.get("ccgate_console")
        token = await csrf(client)
        out = await client.post("/console/signout", data={"csrf": token})
        assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
        assert gw.app.kv.live_keys("console:session:") == []  # type: ignore[attr-defined]
        client.cookies.set("ccgate_console", old or "", path="/console")  # replaying the old cookie
        assert (await client.get("/console/keys")).status_code == 303


async def test_cookie_is_secure_over_https(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config, base="https://gw.example.test") as (_, _, client):
        answer = await sign_in(client)
        assert "Secure" in answer.headers["set-cookie"]


async def test_pages_carry_csp_and_no_store(tmp_path: Path) -> None:
    async with console_gateway(tmp_path, console_config(tmp_path, providers=[anthropic()])) as (_, _, client):
        await sign_in(client)
        for page in PAGES:
            answer = await client.get(f"/console/{page}")
            assert answer.status_code == 200, (page, answer.text)
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["cache-control"] == "no-store"
            assert "<script>" not in answer.text  # no inline script: every script has a src
            for link in ("Overview", "Providers", "Models", "Keys", "Usage", "Requests", "Doctor"):
                assert f">{link}</a>" in answer.text


async def test_changes_need_the_csrf_token(tmp_path: Path) -> None:
    async with console_gateway(tmp_path, console_config(tmp_path, providers=[anthropic()])) as (gw, _, client):
        await sign_in(client)
        token = await csrf(client)
        for data in ({"name": "nocsrf"}, {"name": "wrong", "csrf": "x" * 43}):
            refused = await client.post("/console/keys", data=data)
            assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
        cross = await client.post("/console/keys", data={"name": "cross", "csrf": token},
                                  headers={"origin": "https://evil.example"})
        assert cross.status_code == 403
        assert gw.app.store is not None and gw.app.store.list_keys() == []  # nothing was created
        by_header = await client.post("/console/keys", data={"name": "viaheader"}, headers={"x-csrf-token": token})
        assert by_header.status_code == 201
        same_origin = await client.post("/console/keys", data={"name": "same", "csrf": token},
                                        headers={"origin": "http://127.0.0.1:4545"})
        assert same_origin.status_code == 201


# The one-time link ----------------------------------------------------------------------------


async def test_one_time_link_on_loopback_without_admin_key(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config, admin_key=None) as (_, console, client):
        link = console.issue_link("http://127.0.0.1:4545")
        assert link is not None
        path = link.removeprefix("http://127.0.0.1:4545")
        assert (await client.post("/console/signin", data={"admin_key": "x" * 20})).status_code == 403
        first = await client.get(path)
        assert first.status_code == 303 and "ccgate_console=" in first.headers["set-cookie"]
        assert (await client.get("/console/keys")).status_code == 200
        client.cookies.clear()
        again = await client.get(path)  # single use
        assert again.status_code == 401 and "set-cookie" not in again.headers


async def test_no_admin_key_off_loopback_serves_nothing(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config, admin_key=None, listen_host="0.0.0.0") as (_, console, client):
        assert console.issue_link("http://10.0.0.1:4545") is None
        console.sessions.issue_link()  # even a token that exists in memory does not sign in here
        page = await client.get("/console/signin")
        assert "needs an admin key" in page.text
        assert (await client.get("/console/signin/link", params={"token": "x"})).status_code == 401
        for page_name in PAGES:
            assert (await client.get(f"/console/{page_name}")).status_code == 303


# Keys ---------------------------------------------------------------------------------------


async def test_create_shows_the_secret_once_and_revoke_locks_the_key_out(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config, {"anthropic": [ok(), ok()]}) as (gw, _, client):
        await sign_in(client)
        token = await csrf(client)
        created = await client.post("/console/keys", data={"name": "alice", "models": "claude-*", "rpm": "60",
                                                            "tpm": "", "expires": "30d", "csrf": token})
        assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
        secret = created.text.split('class="secret-value" readonly value="')[1].split('"')[0]
        assert secret.startswith("ccg_")
        listed = await client.get("/console/keys")
        assert secret not in listed.text and 'data-key="alice" data-status="active"' in listed.text
        assert "claude-*" in listed.text
        answer = await gw.post("/v1/messages", message(), headers={"x-api-key": secret})
        assert answer.status == 200
        denied = await gw.post("/v1/messages", message("gpt-4o"), headers={"x-api-key": secret})
        assert denied.status == 403  # allowed models: claude-*
        key_id = gw.app.store.list_keys()[0].id if gw.app.store else ""
        revoked = await client.post(f"/console/keys/{key_id}/revoke", data={"csrf": token})
        assert revoked.status_code == 303
        answer = await gw.post("/v1/messages", message(), headers={"x-api-key": secret})
        assert answer.status == 401
        listed = await client.get("/console/keys?done=revoked&name=alice")
        assert 'data-status="revoked"' in listed.text and "Key alice revoked" in listed.text


async def test_rotate_with_grace_and_bad_input_is_said(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config, {"anthropic": [ok(), ok()]}) as (gw, _, client):
        await sign_in(client)
        token = await csrf(client)
        created = await client.post("/console/keys", data={"name": "bob", "csrf": token})
        old = created.text.split('readonly value="')[1].split('"')[0]
        key_id = gw.app.store.list_keys()[0].id if gw.app.store else ""
        rotated = await client.post(f"/console/keys/{key_id}/rotate", data={"grace": "1h", "csrf": token})
        new = rotated.text.split('readonly value="')[1].split('"')[0]
        assert rotated.status_code == 200 and new != old and 'data-status="rotating"' in rotated.text
        for secret in (old, new):  # both work during the grace period
            assert (await gw.post("/v1/messages", message(), headers={"x-api-key": secret})).status == 200
        bad = await client.post("/console/keys", data={"name": "carol", "rpm": "lots", "csrf": token})
        assert bad.status_code == 400 and "rpm must be a whole number" in bad.text
        assert 'value="carol"' in bad.text  # the form keeps what was typed


# Requests, usage, overview ---------------------------------------------------------------------


async def test_requests_and_usage_show_a_request_and_escape_names(tmp_path: Path) -> None:
    upstream_error = Reply(400, JSON, json.dumps({"type": "error", "error": {
        "type": "invalid_request_error", "message": f"model {XSS} does not exist"}}).encode())
    config = console_config(tmp_path, providers=[anthropic()], routing={"retries": {"max_attempts": 1}})
    async with console_gateway(tmp_path, config, {"anthropic": [ok(), upstream_error]}) as (gw, _, client):
        await sign_in(client)
        assert (await gw.post("/v1/messages", message(), headers={"x-claude-code-session-id": "s-1"})).status == 200
        assert (await gw.post("/v1/messages", message(XSS))).status == 400
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
        page = (await client.get("/console/requests")).text
        assert "claude-sonnet-4-5" in page and "anthropic" in page
        assert "11 / 7 / 3 / 0" in page  # tokens in / out / cache read / cache write
        assert XSS not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
        assert "does not exist" in page and "malformed or invalid" in page  # the error and what it means
        errors_only = (await client.get("/console/requests", params={"errors": "1"})).text
        assert errors_only.count("<tr data-request=") == 1
        by_model = (await client.get("/console/requests", params={"model": "claude-sonnet-4-5"})).text
        assert by_model.count("<tr data-request=") == 1
        usage = await client.get("/console/usage", params={"range": "1h", "by": "model"})
        assert usage.status_code == 200 and XSS not in usage.text
        data = json.loads(usage.text.split('id="usage-data">')[1].split("</script>")[0])
        assert sum(data["tokens"]["input"]) == 11 and sum(data["tokens"]["output"]) == 7
        assert sum(sum(v) for v in data["requests"].values()) == 2
        assert "\\u003cscript\\u003e" in usage.text  # the JSON island cannot close its <script>
        exported = await client.get("/console/usage.csv", params={"range": "24h", "by": "session"})
        assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert {r["session"] for r in rows} == {"s-1", ""} and sum(int(r["input_tokens"]) for r in rows) == 11
        bad = await client.get("/console/usage", params={"range": "1y"})
        assert bad.status_code == 400


async def test_overview_shows_provider_health_and_traffic(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic(), anthropic("spare")])
    async with console_gateway(tmp_path, config, {"anthropic": [ok()]}) as (gw, _, client):
        await sign_in(client)
        assert (await gw.post("/v1/messages", message())).status == 200
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
        live = await client.get("/console/overview/live", headers={"hx-request": "true"})
        assert live.status_code == 200 and "<html" not in live.text  # a fragment for htmx
        assert "anthropic" in live.text and "spare" in live.text and "closed" in live.text
        assert "#0 healthy" in live.text and "0% of 1" in live.text and "never" in live.text
        page = await client.get("/console/overview")
        assert 'hx-trigger="every 5s"' in page.text


async def test_models_page_lists_routes_and_discovery(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()], models=[
        {"match": "claude-opus-4", "to": "anthropic", "display_name": "Opus via gateway", "max_tokens": 4096},
        {"match": "claude-*", "to": "anthropic", "fallbacks": ["anthropic/claude-haiku-4-5"]}])
    async with console_gateway(tmp_path, config) as (_, _, client):
        await sign_in(client)
        page = (await client.get("/console/models")).text
        assert "Opus via gateway" in page and "4,096" in page and "claude-haiku-4-5" in page
        assert page.index("claude-opus-4") < page.index("claude-*")


async def test_provider_names_are_rendered_as_text(tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(1)>"
    config = console_config(tmp_path, providers=[anthropic(evil)])
    async with console_gateway(tmp_path, config) as (_, _, client):
        await sign_in(client)
        for page in ("overview", "providers", "models"):
            text = (await client.get(f"/console/{page}")).text
            assert evil not in text and "&lt;img src=x onerror=alert(1)&gt;" in text, page


async def test_static_assets_ship_with_the_package() -> None:
    for name in FILES:
        assert read_asset(name), name
    assert b"htmx" in read_asset("htmx.min.js") and b"uPlot" in read_asset("uPlot.iife.min.js")


@pytest.mark.parametrize("path", ["/console/nope", "/console/keys/x", "/consolex"])
async def test_unknown_paths_are_404(tmp_path: Path, path: str) -> None:
    async with console_gateway(tmp_path, console_config(tmp_path, providers=[anthropic()])) as (_, _, client):
        await sign_in(client)
        answer = await client.get(path)
        assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found_error"


def test_vendored_files_are_the_published_ones() -> None:
    """htmx and uPlot are byte for byte the npm packages' files recorded in VENDORED.md."""
    import hashlib
    from importlib import resources

    static = resources.files("ccgate.console").joinpath("static")
    table = static.joinpath("VENDORED.md").read_text()
    for name in ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css"):
        digest = hashlib.sha256(static.joinpath(name).read_bytes()).hexdigest()
        assert f"| {name} |" in table and digest in table, name
    for licence in ("htmx.LICENSE", "uPlot.LICENSE"):
        assert static.joinpath(licence).read_text().strip()


async def test_edit_fills_the_form_without_the_key(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[{
        "name": "local", "kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1", "api_keys": [KEY],
        "auth_header": "bearer"}], models=[{"match": "*", "to": "local/qwen3"}])
    async with console_gateway(tmp_path, config) as (_, _, client):
        await sign_in(client)
        page = (await client.get("/console/providers", params={"edit": "local"})).text
        assert "Edit local" in page and 'value="http://127.0.0.1:9/v1"' in page and 'value="qwen3"' in page
        assert '<option value="openai-compatible" selected>' in page
        assert KEY not in page and "empty: keep the stored key" in page
        fresh = (await client.get("/console/providers")).text
        assert '<option value="" selected>' not in fresh and "Connect a provider" in fresh


async def test_save_with_bad_input_says_why_and_writes_nothing(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config) as (gw, _, client):
        await sign_in(client)
        token = await csrf(client, "providers")
        before = gw.path.read_text()
        answer = await client.post("/console/providers/save", data={
            "csrf": token, "base_url": "ftp://nowhere", "kind": "openai-compatible", "name": "x", "model": "m",
            "api_key": "sk-typed-secret-0123456789"})
        assert answer.status_code == 400 and 'role="alert"' in answer.text
        assert "sk-typed-secret-0123456789" not in answer.text  # the key is never echoed back
        assert gw.path.read_text() == before


def test_error_message_of_a_relayed_body() -> None:
    import gzip

    from ccgate.server.dispatch import error_message

    anthropic_error = json.dumps({"type": "error", "error": {"type": "x", "message": "Overloaded"}}).encode()
    assert error_message([], anthropic_error) == "Overloaded"
    assert error_message([(b"content-encoding", b"gzip")], gzip.compress(anthropic_error)) == "Overloaded"
    assert error_message([(b"content-encoding", b"br")], b"\x8b\x00") is None
    assert error_message([], b"<html>502 Bad Gateway</html>") == "<html>502 Bad Gateway</html>"
    assert error_message([], b'{"detail": "no"}') is None
    assert len(error_message([], b"x" * 10_000) or "") == 500


async def test_refused_requests_are_logged_but_not_counted_as_usage(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config, {"anthropic": [ok()]}) as (gw, _, client):
        await sign_in(client)
        token = await csrf(client)
        created = await client.post("/console/keys", data={"name": "dave", "rpm": "1", "csrf": token})
        secret = created.text.split('readonly value="')[1].split('"')[0]
        assert (await gw.post("/v1/messages", message(), headers={"x-api-key": secret})).status == 200
        assert (await gw.post("/v1/messages", message(), headers={"x-api-key": secret})).status == 429
        assert (await gw.post("/v1/messages", message(), headers={"x-api-key": "ccg_wrong"})).status == 401
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
        page = (await client.get("/console/requests")).text
        assert page.count("<tr data-request=") == 3
        assert "Rate limited" in page and "A credential was refused" in page and "dave" in page
        usage = gw.app.store.usage_summary(since=None, by="key") if gw.app.store else []
        assert [(g.label, g.requests) for g in usage] == [("dave", 1)]


async def test_bad_forms_are_400_not_500(tmp_path: Path) -> None:
    async with console_gateway(tmp_path, console_config(tmp_path, providers=[anthropic()])) as (_, _, client):
        await sign_in(client)
        token = await csrf(client)
        many = "&".join(f"f{i}=1" for i in range(300))
        assert (await client.get("/console/requests?" + many)).status_code == 400
        posted = await client.post("/console/keys", content=f"csrf={token}&{many}",
                                   headers={"content-type": "application/x-www-form-urlencoded"})
        assert posted.status_code == 400
        as_json = await client.post("/console/keys", json={"name": "x"}, headers={"x-csrf-token": token})
        assert as_json.status_code == 400
        huge = await client.post("/console/keys", content=b"a=" + b"x" * 70_000,
                                 headers={"content-type": "application/x-www-form-urlencoded"})
        assert huge.status_code == 413
        bad_utf8 = await client.post("/console/keys", content=b"name=\xff\xfe",
                                     headers={"content-type": "application/x-www-form-urlencoded",
                                              "x-csrf-token": token})
        assert bad_utf8.status_code == 400


async def test_wrong_keys_lock_the_form_for_a_while(tmp_path: Path) -> None:
    async with console_gateway(tmp_path, console_config(tmp_path, providers=[anthropic()])) as (_, _, client):
        for _ in range(10):
            answer = await client.post("/console/signin", data={"admin_key": "wrong-admin-key-guess-000"})
            assert answer.status_code == 401
        locked = await client.post("/console/signin", data={"admin_key": ADMIN_KEY})
        assert locked.status_code == 429 and "set-cookie" not in locked.headers
