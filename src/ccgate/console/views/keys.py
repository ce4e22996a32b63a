"""Keys: issue (the secret is shown once, on the answer to the form), list, revoke, rotate with a
grace period; each key's rpm/tpm, budgets (with what this gateway process has counted as spent
today and this month), expiry and allowed models. Keys Claude Code's /login issued
(``login-<email>``, ``login/accounts.py``) are marked with the developer's e-mail; revoking one
signs that developer out (the gateway follows the key's state for their JWTs and refreshes).
The same ``KeyManager`` as ``ccgate keys`` and the admin API; changes reach the gateway's key
cache at once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ccgate.console.views.common import flash_of, in_thread, page
from ccgate.console.web import redirect
from ccgate.errors import InternalError
from ccgate.login.accounts import PREFIX as LOGIN_PREFIX
from ccgate.store import InvalidInput, IssuedKey, KeyConflict, KeyManager, KeyNotFound, parse_duration
from ccgate.store.validate import parse_budget

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View


def _manager(call: Call) -> KeyManager:
    admin = call.console.gateway.admin
    if admin is None:
        raise InternalError("the console needs the store")
    return admin.keys


def _applied(call: Call, key: IssuedKey) -> None:
    cache = call.console.gateway.key_cache
    if cache is not None:
        cache.apply(key)


async def show(call: Call, *, status: int = 200, error: str | None = None, secret: dict[str, str] | None = None,
               form: dict[str, str] | None = None) -> None:
    keys = await in_thread(_manager(call).list_keys)
    now = time.time()
    budgets = call.console.gateway.budgets
    rows: list[dict[str, Any]] = [
        {"key": k, "status": k.status(now), "login": _login_email(k),
         "spent": budgets.spent(k.id) if budgets is not None else None}
        for k in reversed(keys)]
    await page(call, "keys.html", "keys", status=status, rows=rows, error=error, secret=secret,
               form=form or {}, flash=flash_of(call.req.query))


def _login_email(key: IssuedKey) -> str | None:
    """The developer behind a key Claude Code's /login issued (``login-<email>``), else None."""
    return key.name.removeprefix(LOGIN_PREFIX) if key.name.startswith(LOGIN_PREFIX) else None


def _budget(text: str, what: str) -> float | None:
    return parse_budget(text, what) if text.strip() else None


def _limit(text: str, what: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(f"{what} must be a whole number (requests or tokens per minute)")
    return int(text)


async def create(call: Call) -> None:
    f = call.req.form
    name = call.req.field("name")
    try:
        models = [m.strip() for m in f.get("models", "").split(",") if m.strip()]
        expires = call.req.field("expires")
        key, secret = await in_thread(
            _manager(call).create, name, models=models, rpm=_limit(call.req.field("rpm"), "rpm"),
            tpm=_limit(call.req.field("tpm"), "tpm"),
            budget_day=_budget(call.req.field("budget_day"), "budget_day"),
            budget_month=_budget(call.req.field("budget_month"), "budget_month"),
            expires_in=parse_duration(expires, "expires") if expires else None)
    except (InvalidInput, KeyConflict) as exc:
        await show(call, status=400, error=str(exc), form=dict(f))
        return
    _applied(call, key)
    # Shown on this answer only (no-store); the store keeps its digest.
    await show(call, status=201, secret={"name": key.name, "value": secret})


async def set_budget(call: Call) -> None:
    (key_id,) = call.args
    try:
        key = await in_thread(_manager(call).set_budget, key_id,
                              day=_budget(call.req.field("budget_day"), "budget_day"),
                              month=_budget(call.req.field("budget_month"), "budget_month"))
    except (InvalidInput, KeyNotFound, KeyConflict) as exc:
        await show(call, status=400, error=str(exc))
        return
    _applied(call, key)
    await redirect(call.response, f"/console/keys?done=budget&name={key.name}")


async def revoke(call: Call) -> None:
    (key_id,) = call.args
    try:
        key = await in_thread(_manager(call).revoke, key_id)
    except (KeyNotFound, KeyConflict) as exc:
        await show(call, status=409 if isinstance(exc, KeyConflict) else 404, error=str(exc))
        return
    _applied(call, key)
    done = "signed-out" if _login_email(key) else "revoked"
    await redirect(call.response, f"/console/keys?done={done}&name={key.name}")


async def rotate(call: Call) -> None:
    (key_id,) = call.args
    grace = call.req.field("grace")
    try:
        key, secret = await in_thread(_manager(call).rotate, key_id,
                                      grace=parse_duration(grace, "grace") if grace else None)
    except (InvalidInput, KeyNotFound, KeyConflict) as exc:
        await show(call, status=400, error=str(exc))
        return
    _applied(call, key)
    await show(call, secret={"name": key.name, "value": secret, "rotated": "yes", "grace": grace or "none"})


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {
    "keys": {"GET": (show, "page"), "POST": (create, "data")},
    "keys/*/revoke": {"POST": (revoke, "data")},
    "keys/*/budget": {"POST": (set_budget, "data")},
    "keys/*/rotate": {"POST": (rotate, "data")},
}
