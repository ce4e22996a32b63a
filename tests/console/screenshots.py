"""Screenshots of each console page for docs/console.md: ``scripts/console-screenshots``.

Starts the lab's scripted OpenAI-compatible upstream and a real ``ccgate serve`` (loopback,
temporary config and store), connects the provider through the console itself, sends a few
requests, issues a key, then photographs every page with Debian's Chromium."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.console.browser import chromium
from tests.console.test_console_browser import ADMIN_KEY, KEY, openai_lab
from tests.gateway.harness import Gateway
from tests.lab.scripted import Callback, ScriptedRequest, ScriptedUpstream, Status

PAGES = ("overview", "providers", "models", "keys", "usage", "requests", "doctor")


def upstream_for_docs(request: ScriptedRequest) -> object:
    """The browser tests' upstream, with a model list fit for the documentation."""
    if request.path.endswith("/models"):
        return Status(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in
                                                       ("lab-large", "lab-small", "lab-coder")]})
    return openai_lab(request)


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    upstream = ScriptedUpstream(default=Callback(upstream_for_docs)).start()
    gateway = Gateway(Path(tempfile.mkdtemp(prefix="ccgate-shots-")), {},
                      env={"CCGATE_ADMIN_KEY": ADMIN_KEY}).start()
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.goto(gateway.url + "/console")
            page.screenshot(path=str(out / "signin.png"))
            page.get_by_label("Admin key").fill(ADMIN_KEY)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/overview")
            page.goto(gateway.url + "/console/providers")
            page.get_by_label("Kind").select_option("openai-compatible")
            page.get_by_label("Name", exact=True).fill("lab")
            page.get_by_label("Base URL").fill(upstream.openai_base_url)
            page.get_by_label("API key").fill(KEY)
            page.get_by_label("Model", exact=True).fill("lab-large")
            page.get_by_role("button", name="Save").click()
            page.get_by_text("Provider lab saved").wait_for()
            for n in range(6):
                httpx.post(gateway.url + "/v1/messages", timeout=20, headers={
                    "x-claude-code-session-id": f"session-{n % 2}"}, json={
                    "model": "claude-sonnet-4-5" if n % 3 else "claude-haiku-4-5", "max_tokens": 50,
                    "messages": [{"role": "user", "content": "hi"}]})
            page.goto(gateway.url + "/console/keys")
            page.get_by_label("Name", exact=True).fill("alice-laptop")
            page.get_by_label("Allowed models").fill("claude-*")
            page.get_by_role("button", name="Create key").click()
            time.sleep(0.5)  # the request log is written in batches
            for name in PAGES:
                page.goto(f"{gateway.url}/console/{name}" + ("?range=1h&by=model" if name == "usage" else ""))
                if name == "providers":
                    page.get_by_role("button", name="Test", exact=True).first.click()
                    page.locator("#test-result .result").wait_for()
                if name == "doctor":
                    page.get_by_role("button", name="Run doctor").click()
                    page.locator("section.diagnosis").first.wait_for()
                if name == "usage":
                    page.locator('[data-chart="tokens"] canvas').wait_for()
                page.screenshot(path=str(out / f"{name}.png"))
                print(out / f"{name}.png")
    finally:
        gateway.stop()
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/console")))
