"""``ccgate serve`` mounts the console and, on loopback without an admin key, prints a one-time
sign-in link whose token appears nowhere else (not in the access log)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.gateway.harness import Gateway

pytestmark = pytest.mark.lab


def _link(gateway: Gateway) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.search(r"console: (http://\S+/console/signin/link\?token=(\S+))", gateway.log)
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(gateway.log)


def test_one_time_link_signs_in_once(tmp_path: Path) -> None:
    with Gateway(tmp_path, {}) as gateway:
        link = _link(gateway)
        token = link.split("token=")[1]
        first = httpx.get(link)
        assert first.status_code == 303 and first.headers["location"] == "/console/overview"
        cookie = first.cookies.get("ccgate_console")
        assert cookie
        page = httpx.get(gateway.url + "/console/keys", cookies={"ccgate_console": cookie})
        assert page.status_code == 200 and "Create key" in page.text
        again = httpx.get(link)
        assert again.status_code == 401 and "ccgate_console" not in again.cookies
        gateway.wait_access_records(3)
        assert gateway.log.count(token) == 1  # only the line serve printed


def test_with_an_admin_key_serve_says_sign_in_with_it(tmp_path: Path) -> None:
    with Gateway(tmp_path, {}, env={"CCGATE_ADMIN_KEY": "serve-admin-key-0123456789"}) as gateway:
        deadline = time.monotonic() + 10
        while "console:" not in gateway.log and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "(sign in with the admin key)" in gateway.log and "token=" not in gateway.log


def test_console_can_be_turned_off(tmp_path: Path) -> None:
    with Gateway(tmp_path, {"server": {"console": {"enabled": False}}}) as gateway:
        assert httpx.get(gateway.url + "/console/signin").status_code == 404


def test_the_link_survives_json_logs_at_warning_level(tmp_path: Path) -> None:
    """The one-time link is the only way in: ``log.format: json`` with ``log.level: warning``
    must still show it (it is said at WARNING), once."""
    with Gateway(tmp_path, {"log": {"format": "json", "level": "warning"}}) as gateway:
        link = _link(gateway)
        assert httpx.get(link).status_code == 303
        assert gateway.log.count(link.split("token=")[1]) == 1
