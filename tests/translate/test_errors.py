"""Every error shape of wire-formats.md §6.4 and the status table of §7.4."""

from __future__ import annotations

import json

import pytest

from ccgate.errors import (
    BillingError,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTooLarge,
    UpstreamOverloaded,
    UpstreamServerError,
    UpstreamTimeout,
)
from ccgate.translate import translate_upstream_error
from ccgate.translate.errors import error_in_chunk


def err(status: int, body: object, **kw: object) -> GatewayError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return translate_upstream_error(status, raw, provider="acme", **kw)  # type: ignore[arg-type]


OPENAI = {
    "error": {
        "message": "Invalid value for 'tool_choice'",
        "type": "invalid_request_error",
        "param": "tool_choice",
        "code": None,
    }
}
VLLM = {
    "object": "error",
    "message": '"auto" tool choice requires --enable-auto-tool-choice',
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}
OPENROUTER = {
    "error": {
        "code": 502,
        "message": "Provider returned error",
        "metadata": {"raw": "upstream connect error", "provider_name": "Chutes"},
    }
}
OLLAMA = {"error": 'model "llama9" not found, try pulling it first'}
FASTAPI = {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}


@pytest.mark.parametrize(
    ("status", "body", "cls", "status_out", "kind"),
    [
        (400, OPENAI, InvalidRequest, 400, "invalid_request_error"),
        (400, VLLM, InvalidRequest, 400, "invalid_request_error"),
        (
            422,
            {"error": {"message": "Invalid parameter", "type": "invalid_request_error"}},
            InvalidRequest,
            400,
            "invalid_request_error",
        ),
        (422, FASTAPI, InvalidRequest, 400, "invalid_request_error"),
        (
            401,
            {
                "error": {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
            PermissionDenied,
            403,
            "permission_error",
        ),
        (
            403,
            {
                "error": {
                    "code": "unsupported_country_region_territory",
                    "message": "Country not supported",
                    "type": "request_forbidden",
                }
            },
            PermissionDenied,
            403,
            "permission_error",
        ),
        (
            402,
            {"error": {"message": "Insufficient Balance", "type": "unknown_error"}},
            BillingError,
            402,
            "billing_error",
        ),
        (
            429,
            {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}},
            BillingError,
            402,
            "billing_error",
        ),
        (404, OLLAMA, NotFound, 404, "not_found_error"),
        (
            400,
            {"error": {"message": "The model `x` does not exist", "code": "model_not_found"}},
            NotFound,
            404,
            "not_found_error",
        ),
        (408, {"error": {"code": 408, "message": "Request timed out"}}, UpstreamTimeout, 504, "timeout_error"),
        (
            504,
            b"<html><body><h1>504 Gateway Time-out</h1></body></html>",
            UpstreamTimeout,
            504,
            "timeout_error",
        ),
        (413, {"error": {"message": "Request Entity Too Large"}}, RequestTooLarge, 413, "request_too_large"),
        (
            429,
            {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
            RateLimited,
            429,
            "rate_limit_error",
        ),
        (
            500,
            {"error": {"message": "The server had an error", "type": "server_error"}},
            UpstreamServerError,
            500,
            "api_error",
        ),
        (502, OPENROUTER, UpstreamOverloaded, 529, "overloaded_error"),
        (
            503,
            {"error": {"message": "Server overloaded, please try again later", "type": "service_unavailable"}},
            UpstreamOverloaded,
            529,
            "overloaded_error",
        ),
        (
            503,
            {"error": {"code": 503, "message": "No allowed providers are available"}},
            UpstreamOverloaded,
            529,
            "overloaded_error",
        ),
        (529, b"", UpstreamOverloaded, 529, "overloaded_error"),
        (418, {"message": "teapot"}, InvalidRequest, 400, "invalid_request_error"),
        (200, {"error": {"code": 402, "message": "Insufficient credits"}}, BillingError, 402, "billing_error"),
        (200, {"error": {"message": "odd"}}, UpstreamServerError, 500, "api_error"),
    ],
)
def test_status_and_shape_mapping(status: int, body: object, cls: type, status_out: int, kind: str) -> None:
    e = err(status, body)
    assert type(e) is cls
    assert (e.status, e.error_type) == (status_out, kind)
    assert e.message.startswith("acme") and "acme" in e.message


def test_upstream_message_is_kept() -> None:
    assert "--enable-auto-tool-choice" in err(400, VLLM).message
    assert "upstream connect error" in err(502, OPENROUTER).message
    assert "not found, try pulling" in err(404, OLLAMA).message
    assert "field required" in err(422, FASTAPI).message


def test_401_is_never_passed_to_the_client_as_its_own_auth_failure() -> None:
    e = err(401, {"error": {"message": "bad key"}})
    assert e.status != 401 and not e.retryable and "gateway's credentials" in e.message


def test_garbage_and_html_bodies() -> None:
    e = err(502, b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
    assert e.status == 529 and "502 Bad Gateway" in e.message and "<" not in e.message
    assert "empty body" in err(500, b"").message
    assert err(500, b"\xff\xfe not json").status == 500


@pytest.mark.parametrize(
    ("status", "message", "numbers"),
    [
        (
            400,
            "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
            "(8000 in the messages, 1000 in the completion). Please reduce the length of the messages.",
            "9000 tokens > 8192",
        ),
        (
            400,
            "This model's maximum context length is 131072 tokens. However, you requested 140000 tokens "
            "(139000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
            "140000 tokens > 131072",
        ),
        (
            400,
            "request (9000 tokens) exceeds the available context size (8192 tokens), try increasing it",
            "9000 tokens > 8192",
        ),
        (
            400,
            "This endpoint's maximum context length is 163840 tokens. However, you requested about 170000 tokens",
            "170000 tokens > 163840",
        ),
        (413, "prompt is too long: 200251 tokens > 200000 maximum", "200251 tokens > 200000"),
        (500, "Input is too long for requested model.", None),
        (503, "context_length_exceeded", None),
        (400, "Prompt too long", None),
    ],
)
def test_context_overflow_is_400_prompt_is_too_long(status: int, message: str, numbers: str | None) -> None:
    e = err(status, {"error": {"message": message, "type": "invalid_request_error"}})
    assert isinstance(e, InvalidRequest) and e.status == 400 and e.error_type == "invalid_request_error"
    assert "prompt is too long" in e.message
    if numbers:
        assert f"prompt is too long: {numbers} maximum" in e.message


def test_overflow_code_without_text() -> None:
    e = err(400, {"error": {"message": "Bad request", "code": "context_length_exceeded"}})
    assert "prompt is too long" in e.message


def test_rate_limit_is_not_overflow_and_keeps_retry_after() -> None:
    e = err(
        429, {"error": {"message": "Too many tokens per minute"}}, headers={"Retry-After": "7", "x-other": "1"}
    )
    assert isinstance(e, RateLimited) and e.retryable and e.headers == {"Retry-After": "7"}


def test_mid_stream_error_chunks() -> None:
    assert error_in_chunk({"choices": []}, provider="p") is None
    e = error_in_chunk(
        {"error": {"code": "server_error", "message": "Provider disconnected"}, "choices": []}, provider="p"
    )
    assert e is not None and e.status == 500 and "Provider disconnected" in e.message
    e = error_in_chunk({"object": "error", "message": "boom", "code": 503}, provider="p")
    assert e is not None and e.error_type == "overloaded_error"


def test_echoed_keys_are_redacted() -> None:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-live-abcdef123456. You can find your API key at x.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    e = err(401, body)
    assert "abcdef123456" not in e.message and "sk-***" in e.message
    e = err(401, {"error": {"message": "key upstream-key-1 is revoked"}}, redact=["upstream-key-1"])
    assert "upstream-key-1" not in e.message and "***" in e.message
