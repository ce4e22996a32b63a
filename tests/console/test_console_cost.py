"""The console's cost column (Usage) and budgets (Keys: shown, set at creation, changed, refused
when bad), through the gateway's ASGI entry point (tests/console/inprocess.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.console.inprocess import console_config, console_gateway, csrf, sign_in
from tests.console.test_console_inprocess import anthropic, message, ok


def _row_of(html: str, name: str) -> str:
    found = re.search(rf'<tr data-key="{name}".*?</tr>', html, re.S)
    assert found, f"no row for key {name}"
    return found.group(0)


async def test_usage_page_shows_cost_per_group(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config, {"anthropic": [ok()]}) as (gw, _, client):
        await sign_in(client)
        assert (await gw.post("/v1/messages", message())).status == 200
        assert gw.app.recorder is not None and gw.app.recorder.flush(5)
        page = (await client.get("/console/usage", params={"range": "1h", "by": "model"})).text
    assert "Cost (USD)" in page
    # 11 input, 7 output, 3 cache read on Sonnet 4.5: (11*3 + 7*15 + 3*0.3) / 1e6 dollars
    cell = re.search(r"<td data-cost>([^<]*)</td>", page)
    assert cell is not None and cell.group(1) == f"${(11 * 3 + 7 * 15 + 3 * 0.3) / 1e6:.4f}"


async def test_keys_page_sets_shows_and_changes_budgets(tmp_path: Path) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config) as (gw, _, client):
        await sign_in(client)
        token = await csrf(client)
        created = await client.post("/console/keys", data={
            "csrf": token, "name": "erin", "budget_day": "2.50", "budget_month": ""})
        assert created.status_code == 201
        row = _row_of(created.text, "erin")
        assert "today $0.0000 of $2.50" in row and "this month $0.0000<" in row.replace("\n", "")
        assert gw.app.store is not None
        [key] = gw.app.store.list_keys()
        assert (key.budget_day, key.budget_month) == (2.5, None)

        changed = await client.post(f"/console/keys/{key.id}/budget", data={
            "csrf": token, "budget_day": "", "budget_month": "40"})
        assert changed.status_code == 303 and "done=budget" in changed.headers["location"]
        page = (await client.get(changed.headers["location"])).text
        assert "budgets saved" in page and "this month $0.0000 of $40.00" in _row_of(page, "erin")
        key = gw.app.store.list_keys()[0]
        assert (key.budget_day, key.budget_month) == (None, 40.0)

        bad = await client.post(f"/console/keys/{key.id}/budget", data={"csrf": token, "budget_day": "-1"})
        assert bad.status_code == 400 and "must be an amount in USD" in bad.text
        assert gw.app.store.list_keys()[0].budget_month == 40.0


@pytest.mark.parametrize("field", ["budget_day", "budget_month"])
async def test_a_bad_budget_in_the_create_form_keeps_what_was_typed(tmp_path: Path, field: str) -> None:
    config = console_config(tmp_path, providers=[anthropic()])
    async with console_gateway(tmp_path, config) as (gw, _, client):
        await sign_in(client)
        answer = await client.post("/console/keys", data={"csrf": await csrf(client), "name": "fay", field: "abc"})
        assert answer.status_code == 400 and "is not an amount in USD" in answer.text
        assert 'value="fay"' in answer.text
        assert gw.app.store is not None and gw.app.store.list_keys() == []
