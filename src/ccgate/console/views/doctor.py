"""Doctor: the doctor's checks from the gateway's own vantage point, for each provider: its
environment (proxy variables), the provider's proxy, CA file and key, against the provider's
base URL. DNS, TCP, proxy and TLS come from ``ccgate.doctor.run_checks``; the API layer is the
doctor's own Anthropic request for anthropic kinds, and the connect backend's real minimal
request for OpenAI-compatible ones (whose API the doctor's request does not speak). The report
is shown as ``ccgate doctor`` prints it (secrets masked by the doctor's renderer).

``run_checks`` blocks (it runs its own event loop), so each provider runs in a worker thread,
bounded by the doctor's own budget plus a margin."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccgate.config.model import Provider
from ccgate.console.views.common import page
from ccgate.doctor import DoctorOptions, Report, Severity, run_checks
from ccgate.doctor.render import render
from ccgate.errors import GatewayError
from ccgate.server.admin_config import ConfigAdmin, TestBody

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View

BUDGET = 12.0  # the doctor's whole-run budget per provider (seconds)
MARGIN = 10.0  # on top, before the console stops waiting for a run
# Claude Code's own variables: the gateway's vantage point is its network, not a client's setup.
_CLIENT_VARS = ("ANTHROPIC_", "CLAUDE_")


@dataclass
class Diagnosis:
    provider: str
    kind: str
    base_url: str
    text: str  # as the CLI prints it
    problems: int
    api: dict[str, Any] | None = None  # the connect check, for OpenAI-compatible providers
    error: str | None = None


def options_for(provider: Provider, key: str | None, env: Mapping[str, str]) -> DoctorOptions:
    return DoctorOptions(
        env={k: v for k, v in env.items() if not k.startswith(_CLIENT_VARS)},
        read_claude_files=False, base_url=provider.base_url, proxy=provider.proxy,
        ca_file=provider.tls.ca_file, key=key, key_header="authorization" if provider.auth_header == "bearer"
        else "x-api-key", preflight="never", claude_bin="", timeout=BUDGET,
    )


async def diagnose(call: Call, provider: Provider) -> Diagnosis:
    """Anthropic kinds: the doctor's walk (DNS, TCP, proxy, TLS, HTTP, API). OpenAI-compatible:
    the connect backend's real request, judged by the doctor's classifier, which names the
    failed hop (dns, tcp, proxy, tls) and the finding; the doctor's walk speaks only Anthropic's
    API and would report the OpenAI path as a wrong base URL."""
    gateway = call.console.gateway
    out = Diagnosis(provider.name, provider.kind, provider.base_url, "", 0)
    if provider.kind == "openai-compatible":
        try:
            out.api = await asyncio.wait_for(ConfigAdmin(gateway).test(provider.name, TestBody()),
                                             BUDGET + MARGIN)
        except GatewayError as exc:
            out.api = _failed(exc.message)
        except TimeoutError:
            out.api = _failed(f"no answer within {BUDGET + MARGIN:.0f} s")
        out.problems = 0 if out.api.get("ok") else 1
        return out
    keys = gateway.runtime.loaded.secrets.provider_keys.get(provider.name) or []
    options = options_for(provider, keys[0].value if keys else None, gateway.env)
    try:
        report: Report = await asyncio.wait_for(asyncio.to_thread(run_checks, options), BUDGET + MARGIN)
        out.text = render(report)
        out.problems = sum(f.severity is not Severity.OK for f in report.findings)
    except TimeoutError:
        out.error = f"the checks did not finish within {BUDGET + MARGIN:.0f} s"
    return out


def _failed(message: str) -> dict[str, Any]:
    return {"ok": False, "message": message, "finding": None, "status": None, "hop": None}


async def show(call: Call) -> None:
    await page(call, "doctor.html", "doctor", results=None)


async def run(call: Call) -> None:
    providers = call.console.gateway.runtime.config.providers
    results = await asyncio.gather(*(diagnose(call, p) for p in providers))
    await page(call, "doctor.html", "doctor", results=results)


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {
    "doctor": {"GET": (show, "page"), "POST": (run, "data")},
}
