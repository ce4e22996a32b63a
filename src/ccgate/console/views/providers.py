"""Providers: the connect flow in a page. A preset or any OpenAI/Anthropic-compatible endpoint,
its base URL and key; "Test connection" sends the real minimal request (and lists the models the
provider offers) and shows its answer or the exact error; Save writes the config through the
connect backend (backup, atomic write, the key in a 0600 file, never in the YAML) and reloads
the gateway. Existing providers can be edited (the form filled in; an empty key keeps the stored
one), tested and removed.

The key typed into the form is never sent back in a page: "Test connection" swaps only its
result into the page (htmx), so the field keeps what was typed."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any, cast

from ccgate.config.model import ProviderKind
from ccgate.config.presets import PRESETS
from ccgate.connect import ConnectError, Connector, ProviderInput
from ccgate.console.views.common import flash_of, fragment, page
from ccgate.console.web import redirect
from ccgate.errors import GatewayError, InternalError
from ccgate.server.admin_config import ConfigAdmin, ConnectBody, TestBody

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View

KINDS = ("openai-compatible", "anthropic-compatible", "anthropic")
TIER_FIELDS = ("opus", "sonnet", "haiku", "subagent")
# Whole "Test connection" / Save budget; the connect backend bounds each request itself.
TEST_TIMEOUT = 60.0


def _config_admin(call: Call) -> ConfigAdmin:
    admin = call.console.gateway.admin
    if admin is None or admin.config is None:
        raise InternalError("the console needs the gateway's config")
    return admin.config


async def show(call: Call, *, status: int = 200, form: dict[str, str] | None = None,
               outcome: dict[str, Any] | None = None, error: str | None = None) -> None:
    admin = _config_admin(call)
    try:
        providers = (await admin.list_providers())["data"]
        list_error = None
    except GatewayError as exc:
        providers, list_error = [], exc.message
    edit = call.req.query.get("edit")
    if form is None:
        form = _edit_form(providers, edit) if edit else {}
    await page(call, "providers.html", "providers", status=status, providers=providers, form=form,
               presets=sorted(PRESETS.values(), key=lambda p: p.name), kinds=KINDS, outcome=outcome,
               error=error or list_error, flash=flash_of(call.req.query), tiers=TIER_FIELDS,
               config_path=str(admin.connector().config_path), editing=edit if form.get("name") else None)


def _edit_form(providers: list[dict[str, Any]], name: str) -> dict[str, str]:
    found = next((p for p in providers if p["name"] == name), None)
    if found is None:
        return {}
    routes = {r.get("tier"): r["to"].partition("/")[2] for r in found["routes"] if r.get("tier")}
    main = next((r["to"].partition("/")[2] for r in found["routes"] if "/" in r["to"]), "")
    return {"name": found["name"], "kind": found["kind"], "base_url": found["base_url"],
            "preset": found.get("preset") or "", "model": routes.get("main", main),
            **{f"tier_{t}": routes.get(t, "") for t in TIER_FIELDS}}


def _spec(form: dict[str, str]) -> ProviderInput:
    def text(name: str) -> str | None:
        return form.get(name, "").strip() or None

    kind = text("kind")
    tiers = {t: v for t in TIER_FIELDS if (v := form.get(f"tier_{t}", "").strip())}
    model = text("model")
    return ProviderInput(
        preset=text("preset"), base_url=text("base_url"),
        kind=cast(ProviderKind, kind) if kind in KINDS else None, name=text("name"), key=text("api_key"),
        models=(model,) if model else (), tiers=tiers)


# The connect backend words its errors for the CLI; the page names its own fields instead.
_FLAGS = (
    (re.compile(r"--key SECRET, --key env:VAR or --key file:PATH"), "an API key (or env:VAR, file:PATH)"),
    (re.compile(r"--preset NAME"), "a Preset"), (re.compile(r"--base-url URL"), "a Base URL"),
    (re.compile(r"--kind ([a-z|-]+)"), r"Kind (\1)"), (re.compile(r"--model ID"), "a Model"),
    (re.compile(r"--preset\b"), "Preset"), (re.compile(r"--base-url\b"), "Base URL"),
    (re.compile(r"--kind\b"), "Kind"), (re.compile(r"--key\b"), "API key"), (re.compile(r"--model\b"), "Model"),
    (re.compile(r"--map\b"), "the tier fields"),
)


def for_the_page(message: str) -> str:
    for flag, field in _FLAGS:
        message = flag.sub(field, message)
    return message


def _kept(form: dict[str, str]) -> dict[str, str]:
    """The form as shown again: everything but the key."""
    return {k: v for k, v in form.items() if k not in ("api_key", "csrf")}


async def test_new(call: Call) -> None:
    """"Test connection" for what the form says: the real request and the model list."""
    spec = _spec(call.req.form)
    connector = _config_admin(call).connector()
    try:
        check, models = await asyncio.wait_for(asyncio.gather(
            connector.check(spec, spec.models[0] if spec.models else None, tools=True),
            _models_or_none(connector, spec)), TEST_TIMEOUT)
        result: dict[str, Any] = {"check": check.to_dict(), "models": models}
    except ConnectError as exc:
        result = {"error": for_the_page(exc.message)}
    except TimeoutError:
        result = {"error": f"no answer within {TEST_TIMEOUT:.0f} s"}
    await _result(call, result)


async def _models_or_none(connector: Connector, spec: ProviderInput) -> list[dict[str, Any]] | None:
    try:
        return [m.to_dict() for m in await connector.discover_models(spec)]
    except ConnectError:
        return None


async def _result(call: Call, result: dict[str, Any]) -> None:
    if call.req.htmx:
        await fragment(call, "test_result.html", result=result)
    else:  # without JavaScript: the whole page again (the key must be typed again to save)
        await show(call, form=_kept(call.req.form), outcome={"test": result})


async def save(call: Call) -> None:
    form = call.req.form
    spec = _spec(form)
    tiers = dict(spec.tiers)
    body = ConnectBody(preset=spec.preset, base_url=spec.base_url, kind=spec.kind, name=spec.name, key=spec.key,
                       models=list(spec.models), tiers=tiers)
    try:
        _, answer = await asyncio.wait_for(_config_admin(call).connect(body), TEST_TIMEOUT)
    except GatewayError as exc:
        await show(call, status=400, form=_kept(form), error=for_the_page(exc.message))
        return
    except TimeoutError:
        await show(call, status=504, form=_kept(form), error=f"no answer within {TEST_TIMEOUT:.0f} s")
        return
    if not answer["saved"] and answer["action"] != "unchanged":
        await show(call, status=422, form=_kept(form), outcome={"save": answer},
                   error="Not saved: the test request failed (see below). Nothing was written.")
        return
    reload = answer.get("reload") or {}
    if answer["saved"] and not reload.get("reloaded", False):
        await show(call, status=500, form=_kept(form), outcome={"save": answer},
                   error=f"Saved, but the gateway did not reload: {reload.get('message', '')}")
        return
    done = "saved" if answer["saved"] else "unchanged"
    await redirect(call.response, f"/console/providers?done={done}&name={answer['provider']}")


async def test_existing(call: Call) -> None:
    (name,) = call.args
    model = call.req.field("model") or None
    try:
        check = await asyncio.wait_for(_config_admin(call).test(name, TestBody(model=model, tools=True)),
                                       TEST_TIMEOUT)
        result: dict[str, Any] = {"check": check, "models": None, "provider": name}
    except GatewayError as exc:
        result = {"error": exc.message, "provider": name}
    except TimeoutError:
        result = {"error": f"no answer within {TEST_TIMEOUT:.0f} s", "provider": name}
    await _result(call, result)


async def remove(call: Call) -> None:
    (name,) = call.args
    try:
        await _config_admin(call).remove(name)
    except GatewayError as exc:
        await show(call, status=400, error=exc.message)
        return
    await redirect(call.response, f"/console/providers?done=removed&name={name}")


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {
    "providers": {"GET": (show, "page")},
    "providers/test": {"POST": (test_new, "data")},
    "providers/save": {"POST": (save, "data")},
    "providers/*/test": {"POST": (test_existing, "data")},
    "providers/*/remove": {"POST": (remove, "data")},
}
