"""The login flow in-process: the real gateway (``InProcessGateway``), the test identity
provider called without sockets (``TestIdP`` behind ``OidcClient._request``), and a
"browser" that follows the pages and redirects with its own cookies."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from ccgate.login.oidc import OidcClient
from ccgate.login.settings import OidcSettings
from ccgate.upstream.mock import Step
from tests.gateway.inprocess import Answer, InProcessGateway
from tests.lab.oidc_idp import CLIENT_ID, CLIENT_SECRET, TestIdP

PUBLIC_URL = "http://127.0.0.1:4545"
ISSUER = "http://127.0.0.1:9"  # never dialled in-process
JWT_SECRET = "jwt-secret-for-the-login-tests-0123456789abcdef"
KEY = "sk-ant-provider-key-0123456789"
FORM = {"content-type": "application/x-www-form-urlencoded"}
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ANSWER = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
          "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
          "usage": {"input_tokens": 5, "output_tokens": 2}}
POLICIES: list[dict[str, Any]] = [
    {"groups": ["contractors"], "settings": {"availableModels": ["claude-haiku-4-5"],
                                             "permissions": {"deny": ["WebFetch"]}}},
    {"groups": ["engineering"], "settings": {"availableModels": ["claude-sonnet-4-5", "haiku"],
                                             "env": {"LAB_PUSHED_VAR": "from-gateway"}}},
]


def login_config(tmp: Path, **login: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "oidc": {"issuer": ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                 "scopes": ["openid", "profile", "email", "offline_access", "groups"]},
        "session": {"jwt_secret": JWT_SECRET, "ttl": "1h"},
        "policies": POLICIES,
    }
    section.update(login)
    return {
        "providers": [{"name": "anthropic", "kind": "anthropic", "base_url": "https://anthropic.test",
                       "api_keys": [KEY]}],
        "store": {"enabled": True, "path": str(tmp / "ccgate.db")},
        "login": section,
    }


class InProcessOidc(OidcClient):
    """The real OIDC client, its HTTP requests answered by ``TestIdP`` directly."""

    def __init__(self, oidc: OidcSettings, idp: TestIdP) -> None:
        super().__init__(oidc, {})
        self.idp = idp

    async def _request(self, method: str, url: str, form: Mapping[str, str] | None = None) -> tuple[int, Any]:
        path = urlsplit(url).path
        if path == "/.well-known/openid-configuration":
            return 200, self.idp.discovery()
        if path == "/jwks":
            return 200, self.idp.jwks()
        if path == "/token":
            return self.idp.token(dict(form or {}))
        return 404, {}


def with_idp(gw: InProcessGateway, idp: TestIdP) -> None:
    login = gw.loaded.login
    assert login is not None
    gw.app.login.state._oidc = InProcessOidc(login.oidc, idp)


def form(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields).encode()


def cookie_of(answer: Answer, name: str) -> str:
    for key, value in answer.messages[0]["headers"]:
        if key == b"set-cookie" and value.startswith(f"{name}=".encode()):
            return value.decode().split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie set: {answer.headers}")


def hidden(answer: Answer, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', answer.body.decode())
    assert match, answer.body.decode()
    return match.group(1)


class Browser:
    """What a person's browser does on the verification pages, with its cookie jar."""

    def __init__(self, gw: InProcessGateway, idp: TestIdP) -> None:
        self.gw, self.idp = gw, idp
        self.cookies: dict[str, str] = {}

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        return {**headers, **(extra or {})}

    def _keep(self, answer: Answer) -> None:
        for key, value in answer.messages[0]["headers"]:
            if key == b"set-cookie":
                name, _, rest = value.decode().partition("=")
                self.cookies[name] = rest.split(";", 1)[0]

    async def get(self, path: str, query: str = "") -> Answer:
        answer = await self.gw.request("GET", path, query=query.encode(), headers=self._headers())
        self._keep(answer)
        return answer

    async def post(self, path: str, fields: Mapping[str, str], headers: Mapping[str, str] | None = None) -> Answer:
        answer = await self.gw.request("POST", path, form(fields), headers=self._headers({**FORM, **(headers or {})}))
        self._keep(answer)
        return answer

    async def enter_code(self, user_code: str) -> Answer:
        """Open the device page and continue: the 302 to the identity provider."""
        page = await self.get("/device", f"user_code={user_code}")
        assert page.status == 200, page.body
        return await self.post("/device", {"user_code": user_code, "csrf": hidden(page, "csrf")})

    async def through_idp(self, redirect: Answer) -> Answer:
        """Follow the 302 to the IdP and its redirect back to /oauth/callback."""
        assert redirect.status == 302, redirect.body
        target = urlsplit(redirect.headers["location"])
        status, back = self.idp.authorize({k: v[0] for k, v in parse_qs(target.query).items()})
        assert status == 302, back
        parts = urlsplit(back)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL
        return await self.get(parts.path, parts.query)

    async def approve(self, user_code: str) -> Answer:
        page = await self.through_idp(await self.enter_code(user_code))
        assert page.status == 200 and b"Approve sign-in?" in page.body, page.body
        return await self.post("/device/approve", {"flow": hidden(page, "flow"), "csrf": hidden(page, "csrf")})


async def start_device(gw: InProcessGateway) -> dict[str, Any]:
    answer = await gw.request("POST", "/oauth/device_authorization", b"surface=claude_code", headers=FORM)
    assert answer.status == 200, answer.body
    data: dict[str, Any] = answer.json()
    return data


async def poll(gw: InProcessGateway, device_code: str) -> Answer:
    return await gw.request("POST", "/oauth/token", form({"grant_type": DEVICE_GRANT, "device_code": device_code}),
                            headers=FORM)


async def sign_in(gw: InProcessGateway, idp: TestIdP) -> dict[str, Any]:
    """The whole device flow; returns the token endpoint's JSON."""
    device = await start_device(gw)
    done = await Browser(gw, idp).approve(device["user_code"])
    assert done.status == 200 and b"signed in" in done.body, done.body
    answer = await poll(gw, device["device_code"])
    assert answer.status == 200, answer.body
    tokens: dict[str, Any] = answer.json()
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def msg(model: str = "claude-sonnet-4-5") -> dict[str, Any]:
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def ok_reply() -> Step:
    from ccgate.upstream.mock import Reply

    return Reply(200, {"content-type": "application/json"}, json.dumps(ANSWER).encode())
