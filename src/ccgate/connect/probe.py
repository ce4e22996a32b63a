"""The requests connect sends, through the provider's own transport (its proxy, TLS settings and
hop naming: ``upstream.choose.transport_for``), built the way the gateway builds them: translated
with ``translate_request`` for openai-compatible providers, the provider's body quirks applied
for Anthropic-compatible ones. The answers are judged in ``verdict``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from ccgate.config.model import Provider, Timeouts
from ccgate.config.secrets import Secret
from ccgate.connect.model import CheckResult, ModelInfo, ToolsVerdict
from ccgate.connect.verdict import TOOL_NAME, Answer, failure_finding, judge, redact, tools_verdict
from ccgate.errors import InvalidRequest, UpstreamError
from ccgate.proxy_env import ProxyURLError
from ccgate.routing.keypool import KeyLease
from ccgate.translate import ToolNames, translate_request
from ccgate.translate.compat import rewrite_body
from ccgate.upstream.choose import transport_for
from ccgate.upstream.transport import NetworkTransport
from ccgate.wire.openai import ModelListError, parse_model_list

ANTHROPIC_VERSION = "2023-06-01"
CHECK_TIMEOUT = 60.0  # a cold self-hosted model may take a while to load
LIST_TIMEOUT = 15.0
# Self-hosted servers' default ports (docs/providers.md), probed on 127.0.0.1.
LOCAL_PORTS = {"ollama": 11434, "lmstudio": 1234, "vllm": 8000, "llamacpp": 8080}
_PING = {"role": "user", "content": "Reply with one word: ok"}
_WEATHER_TOOL = {
    "name": TOOL_NAME,
    "description": "Get the current weather for a city.",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                     "required": ["location"]},
}


@dataclass(frozen=True)
class LocalServer:
    """A self-hosted server that answered on its default port."""

    preset: str
    base_url: str
    models: tuple[ModelInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "base_url": self.base_url,
                "models": [m.to_dict() for m in self.models]}


async def send(
    provider: Provider, key: Secret | None, env: Mapping[str, str], method: str, path: str,
    body: dict[str, Any] | None, timeout: float,
) -> tuple[Answer, float]:
    """One request through the provider's transport: (answer, latency in ms). Raises UpstreamError."""
    transport = _transport(provider, key, env)
    headers = [("accept", "application/json")]
    if body is not None:
        headers.append(("content-type", "application/json"))
    if not provider.translated:
        headers.append(("anthropic-version", ANTHROPIC_VERSION))
    if key is not None:
        headers += KeyLease(0, key).headers(provider.auth_header).items()
    try:
        await transport.start()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: a bad CA or client cert
        raise UpstreamError(f"TLS settings of provider {provider.name!r}: {exc}", hop="tls") from None
    try:
        started = time.monotonic()
        response = await transport.send(method, path, headers,
                                        msgspec.json.encode(body) if body is not None else b"",
                                        timeout=timeout)
        try:
            raw = await response.read()  # whole: a model list or one short completion
        finally:
            response.release()
        latency = (time.monotonic() - started) * 1000
        return Answer(response.status, list(response.headers.items()), raw), round(latency, 1)
    finally:
        await transport.close()


def _transport(provider: Provider, key: Secret | None, env: Mapping[str, str]) -> NetworkTransport:
    try:
        return transport_for(provider, [key] if key else [], env)
    except ProxyURLError as exc:  # a malformed proxy variable in this environment
        raise UpstreamError(f"proxy for provider {provider.name!r}: {exc}", hop="proxy") from None


def models_path(provider: Provider) -> str:
    # An OpenAI base URL includes its version (.../v1); an Anthropic root does not.
    return "/models" if provider.translated else "/v1/models"


async def list_models(provider: Provider, key: Secret | None, env: Mapping[str, str],
                      timeout: float = LIST_TIMEOUT) -> list[ModelInfo] | None:
    """The provider's model list; None when it has none (404, 405, 501 or an empty list).
    Raises UpstreamError for a network failure, ValueError (message safe) for any other answer."""
    answer, _ = await send(provider, key, env, "GET", models_path(provider), None, timeout)
    if answer.status in (404, 405, 501):
        return None
    keys = [key.value] if key else []
    url = provider.base_url + models_path(provider)
    if answer.status >= 300:
        raise ValueError(judge(provider, url, None, answer, keys).message)
    try:
        listed = parse_model_list(answer.body)
    except ModelListError as exc:
        raise ValueError(f"{url}: {redact(str(exc), keys)}") from None
    return [ModelInfo(m.id, m.display_name, None, m.context_window) for m in listed] or None


async def check(provider: Provider, key: Secret | None, env: Mapping[str, str], model: str | None,
                *, tools: bool = False, timeout: float = CHECK_TIMEOUT) -> CheckResult:
    """One minimal request (max_tokens 1) as the gateway would send it; then, with ``tools``,
    one with a trivial tool, for the tools verdict."""
    result = await _check_one(provider, key, env, model, {"max_tokens": 1}, timeout)
    if not result.ok or not tools:
        return result
    body = {"max_tokens": 400, "tools": [_WEATHER_TOOL], "tool_choice": {"type": "auto"},
            "messages": [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]}
    tool_result = await _check_one(provider, key, env, model, body, timeout, with_message=True)
    if not tool_result.ok:
        return _with_tools(result, "error", f"the tool-calling request failed: {tool_result.message}")
    verdict, text = tool_result.tools or "no_call", tool_result.tools_message or ""
    return _with_tools(result, verdict, text)


def _with_tools(result: CheckResult, verdict: ToolsVerdict, message: str) -> CheckResult:
    return replace(result, tools=verdict, tools_message=message)


async def _check_one(
    provider: Provider, key: Secret | None, env: Mapping[str, str], model: str | None,
    extra: dict[str, Any], timeout: float, *, with_message: bool = False,
) -> CheckResult:
    anthropic_body: dict[str, Any] = {"model": model or "claude-sonnet-4-5", "messages": [_PING], **extra}
    names: ToolNames | None = None
    if provider.translated:
        try:
            translated = translate_request(anthropic_body, model=model or "", quirks=provider.openai_quirks())
        except InvalidRequest as exc:  # a quirk the check request cannot meet
            return CheckResult(False, model, provider.base_url, exc.message)
        path, body, names = "/chat/completions", translated.body, translated.tools
    else:
        rewrite_body(anthropic_body, provider.anthropic_quirks())
        path, body = "/v1/messages", anthropic_body
    url = provider.base_url + path
    keys = [key.value] if key else []
    try:
        answer, latency = await send(provider, key, env, "POST", path, body, timeout)
    except UpstreamError as err:
        return CheckResult(False, model, url, redact(err.message, keys), finding=failure_finding(err),
                           hop=err.hop)
    verdict = judge(provider, url, model, answer, keys, names)
    message = (f"{provider.name} answered HTTP {answer.status} in {latency:.0f} ms" if verdict.ok
               else verdict.message)
    tools, tools_message = (tools_verdict(verdict.message_json) if with_message and verdict.message_json
                            else (None, None))
    return CheckResult(verdict.ok, model, url, message, answer.status, latency, verdict.finding,
                       tools=tools, tools_message=tools_message)


async def probe_local(env: Mapping[str, str], ports: Mapping[str, int] | None = None,
                      timeout: float = 0.8) -> list[LocalServer]:
    """Self-hosted servers answering a model list on their default ports on 127.0.0.1."""
    found = await asyncio.gather(*(
        _probe_port(preset, port, env, timeout) for preset, port in (ports or LOCAL_PORTS).items()
    ))
    return [server for server in found if server is not None]


async def _probe_port(preset: str, port: int, env: Mapping[str, str], timeout: float) -> LocalServer | None:
    base = f"http://127.0.0.1:{port}/v1"
    provider = Provider(name=preset, kind="openai-compatible", base_url=base, auth_header="none",
                        proxy="direct", timeouts=Timeouts(connect=timeout, read=timeout))
    try:
        models = await list_models(provider, None, env, timeout=timeout * 2)
    except (UpstreamError, ValueError):
        return None
    # Something else may listen there (8000 and 8080 are popular): only a model list counts.
    return LocalServer(preset, base, tuple(models)) if models else None


def typed_models(ids: Sequence[str]) -> list[ModelInfo]:
    return [ModelInfo(i, source="typed") for i in ids]
