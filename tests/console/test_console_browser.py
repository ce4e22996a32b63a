"""The console in a real browser (Playwright + Debian's Chromium) against a real ``ccgate serve``
and the lab's scripted upstreams, everything on 127.0.0.1. Elements are found by their
accessible names, which are relied on (docs/console.md): a renamed button fails here."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from tests.console.browser import chromium
from tests.gateway.harness import Gateway
from tests.lab.claude_cli import run_claude
from tests.lab.scripted import Callback, OpenAIText, OpenAIToolCall, ScriptedRequest, ScriptedUpstream, Status

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ADMIN_KEY = "browser-admin-key-0123456789abcdef"
KEY = "sk-lab-console-0123456789abcdef"
XSS = "<script>window.__xss = 1</script>"
Make = Callable[..., ScriptedUpstream]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.console_messages = console  # type: ignore[attr-defined]
    yield page
    context.close()


def start_gateway(tmp: Path, config: dict[str, Any]) -> Gateway:
    return Gateway(tmp / "gw", config, env={"CCGATE_ADMIN_KEY": ADMIN_KEY}).start()


def sign_in(page: Page, gateway: Gateway) -> None:
    page.goto(gateway.url + "/console")
    assert page.url.endswith("/console/signin")
    page.get_by_label("Admin key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/overview")


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name=name, exact=True).click()
    page.wait_for_load_state()


def assert_inert(page: Page) -> None:
    """No script from data ran: no dialog, no global set by an injected <script>; and nothing the
    console itself does was blocked by its Content-Security-Policy."""
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert page.evaluate("() => window.__xss === undefined")
    blocked = [m for m in page.console_messages if "Content Security Policy" in m]  # type: ignore[attr-defined]
    assert blocked == []


def openai_lab(request: ScriptedRequest) -> Any:
    """An OpenAI-compatible provider: a model list (one id with markup in it), the connect check's
    tool call, and plain text for everything else (Claude Code's turn)."""
    if request.path.endswith("/models"):
        return Status(200, {"object": "list", "data": [{"id": "lab-large", "object": "model"},
                                                       {"id": f"lab-{XSS}", "object": "model"}]})
    names = [t.get("function", {}).get("name") for t in request.tools]
    if "get_weather" in names:
        return OpenAIToolCall("get_weather", {"location": "Paris"})
    return OpenAIText("Hello from the scripted upstream.")


def test_sign_in_connect_a_provider_and_see_claude_code_in_requests_and_usage(
    page: Page, scripted_upstream: Make, tmp_path: Path, claude_bin: Path,
) -> None:
    upstream = scripted_upstream(default=Callback(openai_lab))
    gateway = start_gateway(tmp_path, {})
    try:
        # No page and no console call works without a session, from a plain HTTP client either.
        for path in ("/console/overview", "/console/keys", "/console/requests"):
            assert httpx.get(gateway.url + path).status_code == 303
        assert httpx.get(gateway.url + "/console/usage.csv").status_code == 401
        assert httpx.post(gateway.url + "/console/keys", data={"name": "x"}).status_code == 401

        sign_in(page, gateway)
        nav(page, "Providers")
        page.get_by_label("Kind").select_option("openai-compatible")
        page.get_by_label("Name", exact=True).fill("lab")
        page.get_by_label("Base URL").fill(upstream.openai_base_url)
        page.get_by_label("API key").fill(KEY)
        page.get_by_label("Model", exact=True).fill("lab-large")
        page.get_by_role("button", name="Test connection").click()
        result = page.locator("#test-result")
        result.get_by_text("Connected.").wait_for()
        assert "lab-large" in result.inner_text() and f"lab-{XSS}" in result.inner_text()  # shown as text
        assert page.get_by_label("API key").input_value() == KEY  # the page was not reloaded
        assert KEY not in page.content()  # ...and the key was never sent back into it
        assert_inert(page)
        page.get_by_role("button", name="Save").click()
        page.get_by_text("Provider lab saved").wait_for()
        assert page.locator('tr[data-provider="lab"]').count() == 1
        assert KEY not in gateway.config_path.read_text()

        answered = run_claude("Say hello", base_url=gateway.url, api_key="any-client-key", max_retries=0,
                              timeout=90)
        assert answered.returncode == 0, answered.stdout + answered.stderr
        assert "Hello from the scripted upstream." in answered.stdout
        claude_turn = upstream.requests_to("/chat/completions")[-1]
        assert claude_turn.json["model"] == "lab-large"

        nav(page, "Requests")
        rows = page.locator("tr[data-request]")
        for _ in range(50):  # the request log is written in batches off the request path
            if rows.count():
                break
            time.sleep(0.2)
            page.reload()
        row = rows.first.inner_text()
        assert "lab" in row and "200" in row and re.search(r"\d+ ms", row) and "claude" in row

        nav(page, "Usage")
        page.get_by_label("By", exact=True).select_option("provider")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url("**by=provider**")
        totals = page.locator("section", has=page.get_by_role("heading", name="Totals by provider"))
        assert "lab" in totals.inner_text()
        page.locator('[data-chart="tokens"][data-drawn="yes"] canvas').wait_for()
        with page.expect_response("**/console/overview/live", timeout=15_000) as polled:
            nav(page, "Overview")
        assert polled.value.status == 200  # htmx refreshes the live part under the strict CSP
        assert "lab" in page.locator("#live").inner_text()
        assert_inert(page)

        nav(page, "Providers")
        page.locator('tr[data-provider="lab"]').get_by_role("button", name="Remove").click()
        page.get_by_text("Provider lab removed").wait_for()
        assert page.locator('tr[data-provider="lab"]').count() == 0
        assert "name: lab" not in gateway.config_path.read_text()

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/console/signin")
        page.goto(gateway.url + "/console/requests")
        assert page.url.endswith("/console/signin")
    finally:
        gateway.stop()


def test_create_and_revoke_a_key_and_csrf(page: Page, scripted_upstream: Make, tmp_path: Path) -> None:
    upstream = scripted_upstream()
    gateway = start_gateway(tmp_path, {"providers": [
        {"name": "lab", "kind": "anthropic", "base_url": upstream.url, "api_keys": [KEY]}]})
    body = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    try:
        sign_in(page, gateway)
        nav(page, "Keys")
        page.get_by_label("Name", exact=True).fill("alice")
        page.get_by_role("button", name="Create key").click()
        secret = page.get_by_label("Secret").input_value()
        assert secret.startswith("ccg_")
        answer = httpx.post(gateway.url + "/v1/messages", json=body, headers={"x-api-key": secret}, timeout=20)
        assert answer.status_code == 200, answer.text
        nav(page, "Keys")
        assert secret not in page.content()  # shown once
        row = page.locator('tr[data-key="alice"]')
        row.get_by_role("button", name="Revoke").click()
        page.get_by_text("Key alice revoked").wait_for()
        assert page.locator('tr[data-key="alice"][data-status="revoked"]').count() == 1
        answer = httpx.post(gateway.url + "/v1/messages", json=body, headers={"x-api-key": secret}, timeout=20)
        assert answer.status_code == 401

        # CSRF: the browser's own session cookie, but no token: refused, nothing created.
        refused = page.request.post(gateway.url + "/console/keys", form={"name": "mallory"})
        assert refused.status == 403
        nav(page, "Keys")
        assert page.locator('tr[data-key="mallory"]').count() == 0
        assert_inert(page)
    finally:
        gateway.stop()


def test_run_the_doctor(page: Page, scripted_upstream: Make, tmp_path: Path) -> None:
    upstream = scripted_upstream()
    gateway = start_gateway(tmp_path, {"providers": [
        {"name": "lab", "kind": "anthropic", "base_url": upstream.url, "api_keys": [KEY]}]})
    try:
        sign_in(page, gateway)
        nav(page, "Doctor")
        page.get_by_role("button", name="Run doctor").click()
        section = page.locator('section[data-provider="lab"]')
        section.wait_for()
        report = section.inner_text()
        assert "ccgate doctor" in report and upstream.url in report
        assert re.search(r"ok\s+api", report), report
        assert KEY not in page.content()
        assert upstream.requests_to("/v1/messages"), "the doctor sent its API request from the gateway"
    finally:
        gateway.stop()


def test_markup_from_names_and_upstream_errors_is_inert(page: Page, scripted_upstream: Make,
                                                        tmp_path: Path) -> None:
    refusing = scripted_upstream(default=Status.openai_error(401, f"Incorrect API key {XSS}",
                                                             err_code="invalid_api_key"))
    evil = "<img src=x onerror=window.__xss=2>"
    gateway = start_gateway(tmp_path, {"providers": [
        {"name": evil, "kind": "openai-compatible", "base_url": refusing.openai_base_url, "api_keys": [KEY],
         "auth_header": "bearer"}], "models": [{"match": "*", "to": f"{evil}/m"}]})
    try:
        sign_in(page, gateway)
        for name in ("Overview", "Providers", "Models"):
            nav(page, name)
            assert evil in page.locator("main").inner_text(), name
        nav(page, "Providers")
        page.get_by_label("Kind").select_option("openai-compatible")
        page.get_by_label("Base URL").fill(refusing.openai_base_url)
        page.get_by_label("Model", exact=True).fill("m")
        page.get_by_role("button", name="Test connection").click()
        failed = page.locator("#test-result")
        failed.get_by_text("Test failed").wait_for()
        assert XSS in failed.inner_text()  # the exact upstream error, as text
        httpx.post(gateway.url + "/v1/messages", json={"model": XSS, "max_tokens": 5, "messages": [
            {"role": "user", "content": "hi"}]}, timeout=20)
        nav(page, "Requests")
        for _ in range(50):
            if page.locator("tr[data-request]").count():
                break
            time.sleep(0.2)
            page.reload()
        assert XSS in page.locator("main").inner_text()
        nav(page, "Usage")
        page.locator('[data-chart="requests"][data-drawn="yes"]').wait_for()
        assert_inert(page)
    finally:
        gateway.stop()


def test_sign_in_through_the_identity_provider(page: Page, tmp_path: Path) -> None:
    """The test IdP on 127.0.0.1 (tests/lab/oidc_idp.py) and a gateway with a login: section: the
    sign-in page's "Sign in with ..." link, the IdP's redirect back, Continue, the Overview."""
    from tests.gateway.harness import free_port
    from tests.lab.oidc_idp import CLIENT_ID, CLIENT_SECRET, IdPServer, User

    with IdPServer() as idp:
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        idp.idp.redirect_uris = {f"{public}/console/signin/callback"}
        idp.idp.next_user = User("user-ada-010", "ada@example.com", "Ada Admin", ["gateway-admins"])
        config = {
            "server": {"console": {"admin_groups": ["gateway-admins"], "idp_name": "Lab IdP"}},
            "providers": [{"name": "anthropic", "kind": "anthropic", "base_url": "http://127.0.0.1:9",
                           "api_keys": ["sk-ant-never-dialled-0123456789"]}],
            "login": {"public_url": public,
                      "oidc": {"issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                               "scopes": ["openid", "profile", "email", "groups"]},
                      "session": {"jwt_secret": "lab-jwt-secret-0123456789abcdef0123456789abcdef"}},
        }
        gateway = Gateway(tmp_path / "gw", config, env={"CCGATE_ADMIN_KEY": ADMIN_KEY})
        gateway.port = port  # the public URL names this port
        gateway.config_path.write_text(yaml.safe_dump({**config, "server": {**config["server"], "port": port}}))
        with gateway:
            page.goto(gateway.url + "/console")
            assert page.url.endswith("/console/signin")
            assert page.get_by_label("Admin key").is_visible()  # the admin key stays a way in
            assert page.get_by_role("button", name="Sign in").is_visible()
            page.get_by_role("link", name="Sign in with Lab IdP").click()
            page.get_by_text("signed you in as").wait_for()
            assert "ada@example.com" in page.content()
            page.get_by_role("button", name="Continue to the console").click()
            page.wait_for_url("**/console/overview")
            assert page.get_by_role("heading", name="Overview", exact=True).is_visible()
            nav(page, "Keys")
            assert page.get_by_role("heading", name="Keys", exact=True).is_visible()
            assert_inert(page)
            assert "ada@example.com signed in through the identity provider" in gateway.log
            assert "id_token" not in gateway.log and CLIENT_SECRET not in gateway.log
