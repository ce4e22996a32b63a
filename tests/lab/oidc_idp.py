"""A small OpenID Connect identity provider for the login tests.

Why not a package: ``oidc-provider-mock`` 0.4 needs Python 3.12 (ccgate supports 3.11) and
0.3 brings Flask and Authlib and cannot be told to refuse a refresh token on cue. This one
does exactly what ccgate relies on, strictly:

* discovery (``/.well-known/openid-configuration``) and JWKS (RS256 key made per instance);
* ``/authorize``: only a registered client and redirect URI, ``response_type=code``, PKCE
  ``S256`` required; the "user" is whoever the test put in ``next_user`` (no login form), and
  the browser is sent back with ``code``, ``state`` and ``iss``;
* ``/token``: ``authorization_code`` (client secret, redirect URI and the PKCE verifier
  checked; codes single use) returns an RS256 ``id_token`` with ``nonce``, ``email``, ``name``,
  ``groups`` plus a refresh token; ``refresh_token`` rotates it, or answers ``invalid_grant``
  for a refused user (``refuse_refresh``).

``TestIdP`` is the protocol without sockets (the in-process tests call it directly);
``IdPServer`` serves it on 127.0.0.1 for the lab.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "ccgate-test"
CLIENT_SECRET = "idp-client-secret-for-tests-0123456789"


@dataclass
class User:
    sub: str
    email: str
    name: str
    groups: list[str] = field(default_factory=list)
    email_verified: bool = True


ALICE = User("user-alice-001", "alice@example.com", "Alice Example", ["engineering"])


class TestIdP:
    __test__ = False  # not a pytest class

    def __init__(self, issuer: str = "http://127.0.0.1:1", *, redirect_uris: tuple[str, ...] = (),
                 id_token_ttl: int = 300) -> None:
        self.issuer = issuer
        self.redirect_uris = set(redirect_uris)
        self.id_token_ttl = id_token_ttl
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(4)
        self.next_user = ALICE
        self.refuse_refresh: set[str] = set()  # subs whose refresh tokens are refused
        self.reusable_refresh = False  # True: a used refresh token stays valid (IdPs that do not rotate)
        self._codes: dict[str, dict[str, Any]] = {}
        self._refresh: dict[str, User] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, params) for assertions
        self._lock = threading.Lock()

    # Documents -----------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    # Authorization endpoint ----------------------------------------------------------------

    def authorize(self, params: dict[str, str]) -> tuple[int, str]:
        """(302, redirect URL) for a good request, else (400, reason)."""
        self.requests.append(("/authorize", dict(params)))
        if params.get("client_id") != CLIENT_ID:
            return 400, "unknown client_id"
        redirect = params.get("redirect_uri", "")
        if self.redirect_uris and redirect not in self.redirect_uris:
            return 400, "redirect_uri not registered"
        if params.get("response_type") != "code":
            return 400, "response_type must be code"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return 400, "PKCE S256 required"
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = {"user": self.next_user, "redirect_uri": redirect, "nonce": params.get("nonce"),
                                 "challenge": params["code_challenge"]}
        query = urlencode({"code": code, "state": params.get("state", ""), "iss": self.issuer})
        return 302, f"{redirect}?{query}"

    # Token endpoint ------------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(("/token", {k: v for k, v in form.items() if k not in ("client_secret",)}))
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client"}
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._code_grant(form)
        if grant == "refresh_token":
            return self._refresh_grant(form)
        return 400, {"error": "unsupported_grant_type"}

    def _code_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            entry = self._codes.pop(form.get("code", ""), None)
        if entry is None or entry["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != entry["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        return 200, self._tokens(entry["user"], entry["nonce"])

    def _refresh_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            given = form.get("refresh_token", "")
            user = self._refresh.get(given) if self.reusable_refresh else self._refresh.pop(given, None)
        if user is None or user.sub in self.refuse_refresh:
            return 400, {"error": "invalid_grant"}
        return 200, self._tokens(user, None)

    def _tokens(self, user: User, nonce: str | None) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": CLIENT_ID, "sub": user.sub, "email": user.email,
            "email_verified": user.email_verified, "name": user.name, "groups": list(user.groups),
            "iat": now, "exp": now + self.id_token_ttl,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        id_token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
        refresh = "idp-rt-" + secrets.token_urlsafe(16)
        with self._lock:
            self._refresh[refresh] = user
        return {"access_token": "idp-at-" + secrets.token_urlsafe(8), "token_type": "Bearer",
                "expires_in": 300, "id_token": id_token, "refresh_token": refresh}

    def sign(self, claims: dict[str, Any]) -> str:
        """An id_token with arbitrary claims, signed by this IdP (for negative tests)."""
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


class _Handler(BaseHTTPRequestHandler):
    idp: TestIdP

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/.well-known/openid-configuration":
            self._send(200, json.dumps(self.idp.discovery()).encode())
        elif parts.path == "/jwks":
            self._send(200, json.dumps(self.idp.jwks()).encode())
        elif parts.path == "/authorize":
            status, where = self.idp.authorize({k: v[0] for k, v in parse_qs(parts.query).items()})
            if status == 302:
                self._send(302, b"", "text/plain", location=where)
            else:
                self._send(status, where.encode(), "text/plain")
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if urlsplit(self.path).path == "/token":
            status, body = self.idp.token(form)
            self._send(status, json.dumps(body).encode())
        else:
            self._send(404, b"{}")


class IdPServer:
    """``TestIdP`` over HTTP on 127.0.0.1 (an OS-chosen port), in a thread."""

    def __init__(self) -> None:
        handler = type("Handler", (_Handler,), {})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_port}"
        self.idp = TestIdP(self.issuer)
        handler.idp = self.idp
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="test-idp", daemon=True)

    def __enter__(self) -> IdPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
