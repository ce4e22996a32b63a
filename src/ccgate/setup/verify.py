"""Check the path Claude Code will take to the gateway, after setup wrote its settings.

``verify_with_doctor`` runs the doctor (``ccgate.doctor.run_checks``) on the files setup just
wrote, so it resolves the base URL, credential and proxy exactly as Claude Code will (user,
project and managed settings over the shell). If the doctor cannot run, ``verify_gateway``
does a direct check:

1. route: with the environment Claude Code will see (shell overlaid by settings ``env``),
   would a request to the gateway go to a proxy? (Claude Code's precedence
   ``https_proxy > HTTPS_PROXY > http_proxy > HTTP_PROXY``; NO_PROXY by exact host.)
2. ``HEAD /api/hello``: is a gateway listening at the base URL? (Claude Code's warm-up probe.)
3. ``GET /v1/models`` with ``Authorization: Bearer <token>``: does the gateway accept the key?
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import certifi

from ccgate.claude_code.env import proxy_variable
from ccgate.proxy_env import NO_PROXY_VARS, no_proxy_matches, split_no_proxy

__all__ = ["VerifyResult", "VerifyStep", "claude_route", "verify_gateway", "verify_with_doctor"]


@dataclass(frozen=True)
class VerifyStep:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warn: bool = False


@dataclass
class VerifyResult:
    steps: list[VerifyStep] = field(default_factory=list)
    source: str = "direct check"

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


def claude_route(base_url: str, env: Mapping[str, str]) -> VerifyStep:
    """Whether Claude Code, with ``env``, would send gateway requests through a proxy."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = proxy_variable(env)
    if proxy is None:
        return VerifyStep("route", True, "no proxy variable: Claude Code connects directly")
    for var in NO_PROXY_VARS:
        value = env.get(var)
        if value is None:
            continue
        if no_proxy_matches(split_no_proxy(value), host, port) is None:
            return VerifyStep(
                "route",
                False,
                f"{proxy[0]} is set and {var} does not list {host}: Claude Code would send "
                "gateway requests to the proxy",
                f"add {host} to {var} in the Claude Code settings env",
            )
    if not any(env.get(v) for v in NO_PROXY_VARS):
        return VerifyStep(
            "route",
            False,
            f"{proxy[0]} is set and NO_PROXY is empty: gateway requests go to the proxy",
            f"set NO_PROXY={host}",
        )
    return VerifyStep("route", True, f"{host} is in NO_PROXY: Claude Code bypasses the proxy")


def _ssl_context(env: Mapping[str, str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certifi.where())
    with_extra = env.get("NODE_EXTRA_CA_CERTS")
    if with_extra:
        with contextlib.suppress(OSError, ssl.SSLError):
            ctx.load_verify_locations(cafile=with_extra)
    return ctx


async def _direct(base_url: str, token: str, env: Mapping[str, str], timeout: float) -> list[VerifyStep]:
    steps: list[VerifyStep] = []
    ctx: ssl.SSLContext | bool = _ssl_context(env) if urlsplit(base_url).scheme == "https" else False
    connector = aiohttp.TCPConnector(ssl=ctx, force_close=True)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, trust_env=False) as session:
        try:
            async with session.head(base_url + "/api/hello", allow_redirects=False) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            steps.append(
                VerifyStep(
                    "gateway",
                    False,
                    f"no answer from {base_url} ({_describe(exc)})",
                    "start the gateway (ccgate serve) or check --gateway",
                )
            )
            return steps
        if status == 200:
            steps.append(VerifyStep("gateway", True, f"HEAD {base_url}/api/hello -> 200"))
        else:
            steps.append(
                VerifyStep(
                    "gateway",
                    False,
                    f"HEAD {base_url}/api/hello -> {status}; a ccgate gateway answers 200",
                    "check that --gateway points at ccgate serve, without a path",
                )
            )
        headers = {
            "authorization": f"Bearer {token}",
            "anthropic-version": "2023-06-01",
            "user-agent": "ccgate-setup",
        }
        try:
            async with session.get(base_url + "/v1/models", headers=headers, allow_redirects=False) as resp:
                status = resp.status
                body = (await resp.read())[:300].decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            steps.append(VerifyStep("key", False, f"GET /v1/models failed ({_describe(exc)})"))
            return steps
        if status == 200:
            steps.append(VerifyStep("key", True, "GET /v1/models with the token -> 200"))
        elif status in (401, 403):
            steps.append(
                VerifyStep(
                    "key",
                    False,
                    f"GET /v1/models -> {status}: the gateway rejected the token",
                    "run setup again with --key <a key the gateway accepts>",
                )
            )
        else:
            steps.append(VerifyStep("key", False, f"GET /v1/models -> {status}: {body.strip()[:200]}"))
    return steps


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    text = str(exc) or type(exc).__name__
    return text[:200]


def verify_gateway(base_url: str, token: str, env: Mapping[str, str], *, timeout: float = 5.0) -> VerifyResult:
    """Run the checks; never raises for network trouble (each step reports it)."""
    result = VerifyResult()
    result.steps.append(claude_route(base_url, env))
    result.steps.extend(asyncio.run(_direct(base_url, token, env, timeout)))
    return result


def verify_with_doctor(
    env: Mapping[str, str], home: Path, project_dir: Path, managed_dir: Path
) -> VerifyResult:
    """The doctor's verdict on what Claude Code will do with the files as they are now."""
    from ccgate.doctor import DoctorOptions, Severity, run_checks

    report = run_checks(
        DoctorOptions(
            env=dict(env),
            home=home,
            cwd=project_dir,
            managed_dir=managed_dir,
        )
    )
    result = VerifyResult(source="ccgate doctor")
    for f in report.findings:
        result.steps.append(
            VerifyStep(
                f.id,
                f.severity is not Severity.FAIL,
                f.summary,
                "; ".join(f.fix) or None,
                warn=f.severity is Severity.WARN,
            )
        )
    return result
