"""The console's HTTP plumbing: one request's parts (query, form, cookies), and replies with
the security headers every console response carries. Answers go out through the gateway's
``server.response.Response`` like everything else; errors are ``GatewayError``s raised to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, quote

from ccgate.errors import InvalidRequest
from ccgate.server.asgi import RawHeaders, Receive, Scope, read_body
from ccgate.server.response import Response

FORM_LIMIT = 64 * 1024
COOKIE = "ccgate_console"
# Scripts and styles from the gateway only, no inline script or style, no framing, forms only
# back to the gateway. uPlot sizes its canvas through the CSSOM, which style-src does not cover.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_SECURITY: RawHeaders = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make form posts say Origin: null
    (b"cross-origin-opener-policy", b"same-origin"),
]
_NO_STORE = (b"cache-control", b"no-store")


@dataclass
class Request:
    scope: Scope
    receive: Receive
    method: str
    path: str  # below /console ("" for /console itself)
    query: dict[str, str]
    headers: dict[bytes, bytes]
    form: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, scope: Scope, receive: Receive, subpath: str) -> Request:
        raw: bytes = scope.get("query_string", b"")
        return cls(scope, receive, scope["method"], subpath, _single(raw.decode("latin-1")),
                   dict(scope["headers"]))

    @property
    def https(self) -> bool:
        return scope_https(self.scope)

    @property
    def htmx(self) -> bool:
        return self.headers.get(b"hx-request") == b"true"

    def cookie(self, name: str) -> str | None:
        raw = self.headers.get(b"cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw.decode("latin-1"))
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None

    def same_origin(self, public_origin: str | None = None) -> bool:
        """A browser's Origin (when sent) names this gateway: a cross-site form post is refused
        even before its missing CSRF token is. ``public_origin`` (``login.public_url``) is this
        gateway too: behind a TLS terminator the browser says https while we see http."""
        origin = self.headers.get(b"origin")
        if origin is None:
            return True
        seen = origin.decode("latin-1")
        host = self.headers.get(b"host", b"").decode("latin-1")
        scheme = "https" if self.https else "http"
        return seen == f"{scheme}://{host}" or (public_origin is not None and seen == public_origin)

    async def read_form(self) -> dict[str, str]:
        length = self.headers.get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        body = await read_body(self.receive, FORM_LIMIT, declared)
        kind = self.headers.get(b"content-type", b"").split(b";")[0].strip()
        if body and kind != b"application/x-www-form-urlencoded":
            raise InvalidRequest("console forms are sent as application/x-www-form-urlencoded")
        try:
            self.form = _single(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequest("the form is not valid UTF-8") from None
        return self.form

    def field(self, name: str) -> str:
        return self.form.get(name, "").strip()


def scope_https(scope: Scope) -> bool:
    return scope.get("scheme") == "https"


def _single(text: str) -> dict[str, str]:
    """The first value of each name (the console never sends a name twice)."""
    try:
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=200)
    except ValueError:
        raise InvalidRequest("too many fields: the console's forms have at most a few dozen") from None
    return {k: v[0] for k, v in fields.items()}


def cookie_header(value: str, *, https: bool, clear: bool = False) -> tuple[bytes, bytes]:
    """The session cookie: HttpOnly, SameSite=Strict, only under /console, Secure over https."""
    parts = [f"{COOKIE}={'' if clear else value}", "Path=/console", "HttpOnly", "SameSite=Strict"]
    if https:
        parts.append("Secure")
    if clear:
        parts.append("Max-Age=0")
    return (b"set-cookie", "; ".join(parts).encode("latin-1"))


async def html(response: Response, body: str, *, status: int = 200,
               extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    data = body.encode()
    await response.whole(status, [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(data)).encode()),
        _NO_STORE, *_SECURITY, *extra,
    ], data)


async def redirect(response: Response, location: str,
                   *, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """303 See Other to a console path (after a form post: a reload does not post again)."""
    await response.whole(303, [
        (b"location", quote(location, safe="/?=&%:").encode("latin-1")), (b"content-length", b"0"),
        _NO_STORE, *_SECURITY, *extra,
    ])


async def download(response: Response, data: bytes, content_type: str, filename: str) -> None:
    await response.whole(200, [
        (b"content-type", content_type.encode()), (b"content-length", str(len(data)).encode()),
        (b"content-disposition", f'attachment; filename="{filename}"'.encode()), _NO_STORE, *_SECURITY,
    ], data)


async def asset(response: Response, data: bytes, content_type: str) -> None:
    """A vendored script or stylesheet: no data in it, so a browser may keep it an hour."""
    await response.whole(200, [
        (b"content-type", content_type.encode()), (b"content-length", str(len(data)).encode()),
        (b"cache-control", b"private, max-age=3600"), *_SECURITY,
    ], data)
