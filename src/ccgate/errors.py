"""The one exception hierarchy of ccgate, and its mapping to Anthropic's error envelope.

Every error the gateway itself produces is a ``GatewayError``. Each subclass fixes the
HTTP status, the Anthropic ``error.type`` and whether a retry can help; ``to_envelope``
is the only place that turns one into bytes on the wire::

    GatewayError                    500 api_error
    ├── ClientError                 400 invalid_request_error; 4xx, the client's request is at
    │   │                           fault (never retried)
    │   ├── InvalidRequest          400 invalid_request_error
    │   ├── AuthenticationFailed    401 authentication_error
    │   ├── BillingError            402 billing_error: the provider account behind the gateway
    │   │                           is out of credit
    │   ├── PermissionDenied        403 permission_error
    │   ├── NotFound                404 not_found_error
    │   ├── MethodNotAllowed        405 invalid_request_error
    │   ├── Conflict                409 invalid_request_error: the admin API's request contradicts
    │   │                           the current state (duplicate name, already revoked)
    │   ├── ConfigRejected          422 invalid_request_error: a reload found the config unusable;
    │   │                           the running one keeps serving
    │   ├── RequestTooLarge         413 request_too_large
    │   ├── RateLimited             429 rate_limit_error (retryable)
    │   │   └── BudgetExceeded      429 rate_limit_error, not retryable: the key's daily or
    │   │                           monthly budget is spent (x-should-retry: false)
    │   ├── OAuthError              400 oauth: RFC 6749 body {"error": code}, not the Anthropic
    │   │                           envelope (login endpoints; 401 for invalid_grant on refresh)
    │   └── PageError               400 page: an HTML page a person's browser shows (login pages)
    ├── Overloaded                  529 overloaded_error: the gateway is at
    │                               server.limits.max_concurrent_requests (retryable)
    ├── SharedStateDown             503 api_error: limits are shared between processes and the
    │                               shared state is not answering (policy: refuse; retryable)
    ├── UpstreamError               502 api_error; 5xx, a hop between us and the provider failed
    │   ├── UpstreamServerError     500 api_error: the provider answered with its own server error
    │   ├── UpstreamUnreachable     502 api_error (DNS, TCP, proxy, TLS)
    │   ├── UpstreamProtocolError   502 api_error: a 200 that is not a chat completion (not retried)
    │   ├── UpstreamTimeout         504 timeout_error
    │   ├── UpstreamOverloaded      529 overloaded_error
    │   └── UpstreamRefusedGateway  502 api_error: the provider refused *our* key (not retried)
    ├── ServiceUnavailable          503 api_error: the key store (PostgreSQL) is down (retryable)
    └── InternalError               500 api_error (a bug in ccgate)

Status codes and types follow https://platform.claude.com/docs/en/api/errors.
"""

from __future__ import annotations

import random
from html import escape

import msgspec


class GatewayError(Exception):
    status: int = 500
    error_type: str = "api_error"
    retryable: bool = False

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class ClientError(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class InvalidRequest(ClientError):
    pass


class AuthenticationFailed(ClientError):
    status = 401
    error_type = "authentication_error"


class BillingError(ClientError):
    """402 billing_error: the provider account behind the gateway is out of credit."""

    status = 402
    error_type = "billing_error"


class PermissionDenied(ClientError):
    status = 403
    error_type = "permission_error"


class NotFound(ClientError):
    status = 404
    error_type = "not_found_error"


class MethodNotAllowed(ClientError):
    status = 405


class Conflict(ClientError):
    """409: the request contradicts the current state (duplicate name, already revoked)."""

    status = 409


class ConfigRejected(ClientError):
    """422: a reload (or an admin change) found the new config unusable; the old one serves on."""

    status = 422


class RequestTooLarge(ClientError):
    status = 413
    error_type = "request_too_large"


class RateLimited(ClientError):
    status = 429
    error_type = "rate_limit_error"
    retryable = True


class BudgetExceeded(RateLimited):
    """429 with ``x-should-retry: false``: the gateway key's budget is spent until its window
    resets. 429 is what Anthropic answers for a spend limit; the header stops the SDK and
    Claude Code from retrying a refusal that hours of retries would not change."""

    retryable = False


class OAuthError(ClientError):
    """An OAuth error answer (RFC 6749 §5.2, RFC 8628 §3.5): ``{"error": code}`` with the status
    the client expects (400 ``authorization_pending``/``slow_down``/..., 401 ``invalid_grant``)."""

    def __init__(self, code: str, message: str = "", *, status: int = 400) -> None:
        super().__init__(message or code, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
        self.code = code
        self.status = status


class PageError(ClientError):
    """A problem shown to a person in a browser: an HTML page, not a JSON envelope."""

    def __init__(self, title: str, message: str = "", *, status: int = 400) -> None:
        super().__init__(message or title)
        self.title = title
        self.status = status


class Overloaded(GatewayError):
    """529 overloaded_error: the gateway itself is at ``server.limits.max_concurrent_requests``.
    Anthropic's own word for "busy, retry shortly"; the SDKs and Claude Code retry it,
    honouring ``retry-after``."""

    status = 529
    error_type = "overloaded_error"
    retryable = True


class SharedStateDown(GatewayError):
    """503: rate limits are shared between gateway processes (Redis, the workers' hub), the
    shared state is not answering, and the configured policy is to refuse (server/shared_link.py)."""

    status = 503
    error_type = "api_error"
    retryable = True


class UpstreamError(GatewayError):
    """A hop between ccgate and the provider failed; ``hop`` names which one."""

    status = 502
    error_type = "api_error"
    retryable = True

    def __init__(
        self, message: str, *, hop: str = "upstream", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, headers=headers)
        self.hop = hop


class UpstreamServerError(UpstreamError):
    """500 api_error: the provider answered with its own server error (not a network failure)."""

    status = 500


class UpstreamUnreachable(UpstreamError):
    pass


class UpstreamProtocolError(UpstreamError):
    """The provider answered 200 with something that is not a chat completion."""

    status = 502
    error_type = "api_error"
    retryable = False


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "timeout_error"


class UpstreamOverloaded(UpstreamError):
    status = 529
    error_type = "overloaded_error"


class UpstreamRefusedGateway(UpstreamError):
    """The provider refused the gateway's own credential (or every key is out of service).

    Not relayed as the provider's 401/403: the client's credential is fine, and Claude Code
    would tell its user to log in again. 502 with x-should-retry: false points at the gateway.
    """

    retryable = False


class ServiceUnavailable(GatewayError):
    """503 api_error: something the gateway depends on for this request is down (the key store
    on PostgreSQL for an admin write); it is worth retrying once it is back."""

    status = 503
    error_type = "api_error"
    retryable = True


class InternalError(GatewayError):
    status = 500
    error_type = "api_error"


class ConfigError(Exception):
    """The configuration file is unusable; the message names the file and the key path."""


def new_request_id() -> str:
    # Unique, not secret: 96 bits from the random module's generator (seeded once, and again
    # in a forked child) instead of an OS entropy read per request.
    return f"req_ccgate_{random.getrandbits(96):024x}"


_encoder = msgspec.json.Encoder()


def to_envelope(err: GatewayError, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of the Anthropic error envelope for ``err`` (or of the OAuth
    error body / HTML page for the login endpoints' errors)."""
    if isinstance(err, OAuthError | PageError):
        return _login_error(err, request_id)
    body = _encoder.encode(
        {
            "type": "error",
            "error": {"type": err.error_type, "message": err.message},
            "request_id": request_id,
        }
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"request-id", request_id.encode()),
        (b"x-should-retry", b"true" if err.retryable else b"false"),
    ]
    headers.extend((k.lower().encode(), v.encode()) for k, v in err.headers.items())
    return err.status, headers, body


def _login_error(err: OAuthError | PageError, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    if isinstance(err, OAuthError):
        fields = {"error": err.code} | ({"error_description": err.message} if err.message != err.code else {})
        body, ctype = _encoder.encode(fields), b"application/json"
    else:
        body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(err.title)}'
                f"</title></head><body><h1>{escape(err.title)}</h1><p>{escape(err.message)}</p>"
                f'<p style="color:#666">Request {escape(request_id)}</p></body></html>').encode()
        ctype = b"text/html; charset=utf-8"
    headers = [(b"content-type", ctype), (b"request-id", request_id.encode())]
    if isinstance(err, PageError):  # a page a browser renders: nothing to run, frame or cache
        headers += [(b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"),
                    (b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                    (b"cache-control", b"no-store")]
    headers.extend((k.lower().encode(), v.encode()) for k, v in err.headers.items())
    return err.status, headers, body
