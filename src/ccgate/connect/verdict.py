"""What a provider's answer means, for people (pure: status, headers and body in, a verdict out).

The failure is named with the doctor's classifier (``doctor.classify.classify_api``: wrong key,
wrong path, HTML from something in between, unknown model...), so ``ccgate connect`` and
``ccgate doctor`` use the same finding ids; the message quotes the provider's own error text
(keys masked) and adds the fix that applies to a provider being connected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from ccgate.config.model import Provider
from ccgate.config.secrets import mask
from ccgate.connect.model import ToolsVerdict
from ccgate.doctor.classify import ApiContext, classify_api, error_message
from ccgate.doctor.net import HttpResponse
from ccgate.errors import GatewayError, UpstreamError
from ccgate.translate import ToolNames, translate_response, translate_upstream_error

TOOL_NAME = "get_weather"


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of a check request."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    reason: str = ""

    def as_http(self) -> HttpResponse:
        return HttpResponse(self.status, self.reason, "HTTP/1.1", self.headers, self.body)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    finding: str
    message: str
    message_json: dict[str, Any] | None = None  # the Anthropic message, on success


def judge(provider: Provider, url: str, model: str | None, answer: Answer, keys: Sequence[str],
          tools: ToolNames | None = None) -> Verdict:
    """The verdict on the answer to a check request sent to ``url``."""
    if 200 <= answer.status < 300:
        return _judge_success(provider, model, answer, keys, tools)
    resp = answer.as_http()
    host = urlsplit(url).hostname or url
    credential = mask(keys[0]) if keys else "no key"
    ctx = ApiContext(url, provider.base_url, host, model or "", credential, "--key", provider.auth_header)
    found = classify_api(ctx, resp, sent=[])
    fid = found[0].id if found else "api.unexpected_response"
    text = redact(_provider_error(provider, answer, keys), keys)
    hint = _hint(fid, provider, url, model)
    return Verdict(False, fid, f"{text}{'; ' + hint if hint else ''}")


def _judge_success(provider: Provider, model: str | None, answer: Answer, keys: Sequence[str],
                   tools: ToolNames | None) -> Verdict:
    ctype = next((v for k, v in answer.headers if k.lower() == "content-type"), "")
    try:
        data = msgspec.json.decode(answer.body)
    except msgspec.DecodeError:
        data = None
    if not isinstance(data, dict):
        what = "an HTML page" if "html" in ctype.lower() or answer.body.lstrip()[:1] == b"<" else "not JSON"
        return Verdict(False, "http.intermediary_response",
                       f"{provider.name} answered HTTP {answer.status} with {what} "
                       f"({_snippet(answer.body)}), not the API; " + _hint_intermediary())
    if provider.translated:
        try:
            message = translate_response(data, model=model or "", tools=tools or ToolNames(),
                                         input_tokens_estimate=0, provider=provider.name)
        except GatewayError as exc:
            return Verdict(False, "api.unexpected_response", redact(exc.message, keys))
        return Verdict(True, "api.ok", "ok", message)
    if data.get("type") == "error":
        return Verdict(False, "api.unexpected_response", redact(_provider_error(provider, answer, keys), keys))
    if not isinstance(data.get("content"), list):
        return Verdict(False, "api.unexpected_response",
                       f"{provider.name} answered HTTP {answer.status} with JSON that is not a "
                       f"message ({_snippet(answer.body)})")
    return Verdict(True, "api.ok", "ok", data)


def _provider_error(provider: Provider, answer: Answer, keys: Sequence[str]) -> str:
    """The provider's own words: its error message, as the gateway would pass it on."""
    if provider.translated:
        return translate_upstream_error(answer.status, answer.body, provider=provider.name, redact=keys).message
    _, message = error_message(answer.as_http())
    return f"{provider.name} (HTTP {answer.status}): {message or '(empty body)'}"


def _hint(fid: str, provider: Provider, url: str, model: str | None) -> str:
    base = provider.base_url
    if fid == "api.invalid_key":  # the translated error already says to check the key
        return "" if provider.translated else "the provider refused the key: is it this provider's?"
    if fid == "api.wrong_path":
        if provider.translated:
            extra = f" (OpenAI-compatible servers usually answer under /v1: try {base}/v1)" \
                if not base.endswith("/v1") else ""
            return f"{url} does not exist: the base URL is wrong{extra}"
        return (f"{url} does not exist: give the root that /v1/messages is appended to "
                "(without /v1), e.g. https://api.deepseek.com/anthropic")
    if fid == "http.intermediary_response":
        return _hint_intermediary()
    if fid == "api.model_not_found":
        return (f"the provider does not serve model {model!r}: list its models with "
                f"`ccgate models {provider.name}`")
    if fid == "relay.account_config_error":
        return "the provider reports an account problem (quota, balance or group)"
    return ""


def _hint_intermediary() -> str:
    return ("something other than the API answered (a proxy, a login page or a web site): "
            "check the base URL, and the proxy between here and the provider")


def failure_finding(err: UpstreamError) -> str:
    """The doctor's finding id for a hop that failed (no HTTP answer)."""
    text = err.message.lower()
    if err.hop == "tls":
        return "tls.untrusted" if "verif" in text else "tls.handshake_failed"
    if err.hop == "proxy":
        return "proxy.auth_required" if "407" in text else "proxy.unreachable"
    return {"dns": "dns.unresolvable", "tcp": "net.tcp_blocked"}.get(err.hop, "http.no_response")


def tools_verdict(message: dict[str, Any]) -> tuple[ToolsVerdict, str]:
    """Did the model call the trivial tool, write the call as text, or ignore it?"""
    content = message.get("content")
    blocks = content if isinstance(content, list) else []
    if any(isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks):
        return "tool_call", "tool calling works: the model called the test tool"
    text = " ".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    if TOOL_NAME in text or re.search(r"<tool_call>|\{\s*\"(name|arguments|location)\"", text):
        return "text_instead", (
            "the model answered the tool request as plain text (the call is written into its "
            "reply, not made as a tool call): Claude Code's tools will not work. Self-hosted "
            "servers need tool parsing on (vLLM: --enable-auto-tool-choice --tool-call-parser; "
            "llama.cpp: --jinja), or pick a model trained for tool calling")
    return "no_call", ("the model answered without calling the test tool; Claude Code, which "
                       "works through tools, may do poorly with it")


def redact(text: str, keys: Iterable[str]) -> str:
    for key in keys:
        if key and len(key) >= 6:
            text = text.replace(key, mask(key))
    return text


def _snippet(body: bytes) -> str:
    text = " ".join(body[:120].decode("utf-8", "replace").split())
    return repr(text + ("..." if len(body) > 120 else ""))
