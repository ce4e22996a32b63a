"""Provider error responses -> the gateway's one exception hierarchy (``ccgate.errors``).

Every OpenAI-compatible error shape seen in the wild is read (OpenAI ``{"error":{...}}``, vLLM
``{"object":"error",...}``, OpenRouter ``{"error":{"code":<int>,"metadata":{"raw":...}}}``, Ollama
``{"error":"..."}``, FastAPI ``{"detail":...}``, HTML from a proxy or WAF), then mapped by
wire-formats.md §7.4. Two rules matter more than the rest:

* A context overflow is always 400 ``invalid_request_error`` with "prompt is too long" in the
  message: Claude Code compacts on that phrase, and the SDK would retry any 5xx forever.
* The provider rejecting the *gateway's* key is never 401: Claude Code would blame its own login.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

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

_OVERFLOW = re.compile(
    r"context[_ ]length[_ ]exceeded|maximum context length|context_window_exceeded|exceed_context_size"
    r"|exceeds? (?:the )?(?:available |model'?s? )?(?:max(?:imum)? )?(?:context|token limit|input length)"
    r"|context (?:window|size|limit) (?:exceeded|is too small)|prompt is too long|prompt too long"
    r"|input (?:is )?too long|too many (?:input )?tokens|reduce the length of the (?:messages|prompt|input)"
    r"|input length and `?max_tokens`? exceed|tokens? > \d+ maximum|longer than the model'?s? context",
    re.IGNORECASE,
)
_NUMBERS = (
    # Anthropic's own wording, relayed by OpenRouter or an Anthropic-compatible hop.
    re.compile(r"(?P<got>\d+) tokens > (?P<max>\d+) maximum"),
    # llama.cpp: "request (9000 tokens) exceeds the available context size (8192 tokens)".
    re.compile(r"\((?P<got>\d+) tokens\) exceeds the available context size \((?P<max>\d+) tokens\)"),
    # OpenAI, vLLM, DeepSeek, OpenRouter: "maximum context length is 8192 tokens. However, you
    # requested 9000 tokens" (vLLM/OpenRouter: "your request has / you requested about").
    re.compile(
        r"maximum context length is (?P<max>\d+) tokens.*?(?:requested|resulted in|has|have)"
        r"(?: about)? (?P<got>\d+) tokens",
        re.DOTALL,
    ),
)
_BILLING = re.compile(r"insufficient[_ ](?:quota|balance|credits?)|billing|credit balance|payment", re.I)
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_RETRY_HEADERS = ("retry-after", "retry-after-ms")


def translate_upstream_error(
    status: int,
    body: bytes,
    *,
    provider: str,
    headers: Mapping[str, str] | None = None,
    redact: Iterable[str] = (),
) -> GatewayError:
    """The GatewayError for a provider's error response (or a 200 whose body is an error).

    Providers echo the key they rejected ("Incorrect API key provided: sk-..."); pass the
    gateway's own keys as ``redact`` so they never reach the client. Key-shaped tokens after
    "key" are masked in any case."""
    message, kind, code = _parse(body)
    if message is not None:
        message = _redact(message, redact)
    if status < 400:
        # OpenRouter puts the real status in error.code when the HTTP status is already 200.
        status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    if message is None:
        message = _redact(_snippet(body), redact) or "(empty body)"
        message = f"non-JSON error body: {message}" if body.strip() else message
    hint = " ".join(str(x) for x in (kind, code) if x is not None)
    text = f"{provider} (HTTP {status}): {message}"
    retry = {k: v for k, v in (headers or {}).items() if k.lower() in _RETRY_HEADERS}

    if status != 429 and (_OVERFLOW.search(message) or _OVERFLOW.search(hint)):
        return InvalidRequest(_overflow_message(message, provider))
    if _BILLING.search(hint) or status == 402:
        return BillingError(f"{text} — the account configured for provider '{provider}' needs credit")
    if "model_not_found" in hint or (status == 404):
        return NotFound(text)
    if status == 401:
        return PermissionDenied(
            f"{provider} rejected the gateway's credentials (HTTP 401): {message} — check the API key "
            f"configured for provider '{provider}'"
        )
    if status == 403:
        return PermissionDenied(text)
    if status in (408, 504, 524):
        return UpstreamTimeout(text, hop="provider", headers=retry)
    if status == 413:
        return RequestTooLarge(text)
    if status == 429:
        return RateLimited(text, headers=retry)
    if status in (502, 503, 529):
        return UpstreamOverloaded(text, hop="provider", headers=retry)
    if status >= 500:
        return UpstreamServerError(text, hop="provider", headers=retry)
    return InvalidRequest(text)


def error_in_chunk(chunk: dict[str, Any], *, provider: str) -> GatewayError | None:
    """The error a stream chunk carries (OpenAI/OpenRouter ``error`` key, vLLM ``object:error``)."""
    if "error" not in chunk and chunk.get("object") != "error":
        return None
    _, _, code = _parse_obj(chunk)
    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    return translate_upstream_error(status, json.dumps(chunk).encode(), provider=provider)


_KEY_ECHO = re.compile(r"(?i)(api[ _-]?key[^:]{0,20}:\s*)(\S+)")


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _KEY_ECHO.sub(
        lambda m: m.group(1) + (m.group(2)[:3] + "***" if len(m.group(2)) > 6 else "***"), text
    )


def _overflow_message(message: str, provider: str) -> str:
    for pattern in _NUMBERS:
        match = pattern.search(message)
        if match:
            return (
                f"prompt is too long: {match.group('got')} tokens > {match.group('max')} maximum "
                f"({provider}: {message})"
            )
    return f"prompt is too long for the model's context window ({provider}: {message})"


def _parse(body: bytes) -> tuple[str | None, str | None, int | str | None]:
    try:
        obj = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return None, None, None
    if isinstance(obj, list) and obj:
        obj = obj[0]  # Gemini-style error arrays
    if not isinstance(obj, dict):
        return None, None, None
    return _parse_obj(obj)


def _parse_obj(obj: dict[str, Any]) -> tuple[str | None, str | None, int | str | None]:
    err = obj.get("error")
    if isinstance(err, str):
        return err, None, None
    source = err if isinstance(err, dict) else obj
    message = source.get("message")
    if not isinstance(message, str):
        detail = source.get("detail")
        message = detail if isinstance(detail, str) else (json.dumps(detail) if detail else None)
    kind = source.get("type") if isinstance(source.get("type"), str) else None
    if kind == "error" and isinstance(err, dict):
        kind = None
    code = source.get("code")
    code = code if isinstance(code, int | str) and not isinstance(code, bool) else None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    # OpenRouter wraps the underlying provider's error in metadata.raw; its text is the useful part.
    meta = source.get("metadata")
    if isinstance(meta, dict) and meta.get("raw"):
        raw = meta["raw"]
        raw_text = raw if isinstance(raw, str) else json.dumps(raw)
        message = f"{message}: {raw_text}" if message else raw_text
    return message, kind, code


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    return _SPACE.sub(" ", _TAGS.sub(" ", text)).strip()[:300]
