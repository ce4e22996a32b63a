"""Requests: the newest entries of the request log (``store.request_log``), filterable by key,
model, provider and status, each with the gateway's explanation of what went wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccgate.console.views.common import in_thread, page
from ccgate.store import RequestEntry, RequestFilter

if TYPE_CHECKING:
    from ccgate.console.app import Access, Call, View

# What a status the client got means, said once here (the error text says the specifics).
_MEANING = {
    400: "The request was refused as malformed or invalid (by the gateway or the provider).",
    401: "A credential was refused: the client's gateway key, or the provider's key.",
    403: "Not allowed: the key may not use this model, or the provider refused the account.",
    404: "Not found: the model or the provider's URL does not exist there.",
    408: "The provider took too long.",
    413: "The request body is over the limit.",
    429: "Rate limited: the key's rpm/tpm, or the provider's own limit (retried where it could be).",
    499: "The client went away before the answer was complete.",
    500: "An internal error: see the gateway's log for this request id.",
    502: "The provider could not be reached or broke the answer (the attempt trail shows where).",
    503: "No provider was available: breakers open or every key cooling down.",
    504: "The provider did not answer in time.",
    529: "The provider is overloaded (retried and fallbacks tried first).",
}


def meaning(status: int) -> str | None:
    if status < 400:
        return None
    return _MEANING.get(status) or ("The provider answered with an error." if status < 500
                                    else "The provider failed to answer.")


def filters_of(query: dict[str, str]) -> RequestFilter:
    def text(name: str) -> str | None:
        value = query.get(name, "").strip()
        return value[:200] or None

    status_text = query.get("status", "").strip()
    status = int(status_text) if status_text.isdigit() and len(status_text) == 3 else None
    return RequestFilter(key=text("key"), model=text("model"), provider=text("provider"), status=status,
                         errors=query.get("errors") == "1", limit=200)


async def show(call: Call) -> None:
    where = filters_of(call.req.query)
    store = call.console.gateway.store
    entries: list[RequestEntry] = await in_thread(store.recent_requests, where) if store is not None else []
    enabled = call.console.gateway.runtime.config.store.request_log.enabled
    await page(call, "requests.html", "requests", entries=entries, where=where, meaning=meaning,
               enabled=enabled, query=call.req.query)


ROUTES: dict[str, dict[str, tuple[View, Access]]] = {"requests": {"GET": (show, "page")}}
