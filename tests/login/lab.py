"""The login lab: the test identity provider, the fake Anthropic upstream and a real
``ccgate serve`` with a ``login:`` section, all on 127.0.0.1; plus a "browser" (httpx,
following redirects through the IdP, keeping cookies) that approves a device code the way
the protocol capture did it with curl."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.gateway.harness import Gateway, free_port
from tests.lab.fake_anthropic import LAB_API_KEY, FakeAnthropic
from tests.lab.oidc_idp import CLIENT_ID, CLIENT_SECRET, IdPServer

JWT_SECRET = "lab-jwt-secret-0123456789abcdef0123456789abcdef"
POLICIES: list[dict[str, Any]] = [
    {"groups": ["contractors"], "settings": {"availableModels": ["claude-haiku-4-5"]}},
    {"groups": ["engineering"], "settings": {"permissions": {"deny": ["WebFetch"]}}},
]


def login_gateway(tmp: Path, idp: IdPServer, upstream: FakeAnthropic, *, ttl: int | str = "1h",
                  policies: list[dict[str, Any]] | None = None, port: int | None = None) -> Gateway:
    port = port or free_port()
    public = f"http://127.0.0.1:{port}"
    idp.idp.redirect_uris = {f"{public}/oauth/callback"}
    config: dict[str, Any] = {
        "server": {"port": port},
        "providers": [{"name": "anthropic", "kind": "anthropic", "base_url": upstream.http_url,
                       "api_keys": [LAB_API_KEY]}],
        "login": {
            "public_url": public,
            "oidc": {"issuer": idp.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                     "scopes": ["openid", "profile", "email", "offline_access", "groups"]},
            "session": {"jwt_secret": JWT_SECRET, "ttl": ttl},
            "policies": POLICIES if policies is None else policies,
        },
    }
    gw = Gateway(tmp, config)
    gw.port = port  # the public URL names this port; Gateway() picked another one
    gw.config_path.write_text(yaml.safe_dump(config))
    return gw


def approve_in_browser(verification_uri_complete: str, timeout: float = 15) -> str:
    """Open the device page, continue, follow the IdP's redirects, approve. Returns the final page."""
    with httpx.Client(follow_redirects=True, timeout=timeout, trust_env=False) as browser:
        page = browser.get(verification_uri_complete)
        page.raise_for_status()
        form = dict(re.findall(r'name="(csrf|user_code)" value="([^"]*)"', page.text))
        base = verification_uri_complete.split("/device", 1)[0]
        approve = browser.post(f"{base}/device", data=form, headers={"origin": base})
        approve.raise_for_status()
        assert "Approve sign-in?" in approve.text, approve.text
        fields = dict(re.findall(r'name="(flow|csrf)" value="([^"]*)"', approve.text))
        done = browser.post(f"{base}/device/approve", data=fields, headers={"origin": base})
        done.raise_for_status()
        return done.text
