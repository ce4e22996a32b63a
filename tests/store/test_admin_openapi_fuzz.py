"""``/admin/openapi.json`` against the server it describes: schemathesis generates requests from
the document (valid ones, and invalid ones it derives from it) and sends them to the real
``Gateway`` in-process (ASGI, no socket), with the admin key. Every answer must be documented,
conform to its schema, never be a 5xx; a request the document calls valid must be accepted, and
one it calls invalid refused (issue 13: the two disagreed on ``"0d"`` and on a rotate body of
one control byte).

Left out: the operations that reach a provider over the network or rewrite the config
(connectProvider, testProvider, removeProvider); tests/connect covers them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from ccgate.config.load import load_config
from ccgate.server.app import Gateway
from ccgate.server.asgi import Message, Receive, Scope, Send

ADMIN_KEY = "admin-key-for-schemathesis-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
NETWORKED = ["connectProvider", "testProvider", "removeProvider"]


def admin_app(tmp: Path) -> Gateway:
    config = {
        "store": {"path": str(tmp / "ccgate.db")},
        "log": {"access": False},
        "server": {"admin": {"key": "env:ADMIN"}},
        # a provider on a closed loopback port: providerModels answers with its error, fast
        "providers": [{"name": "local", "kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                       "auth_header": "none"}],
    }
    path = tmp / "ccgate.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"ADMIN": ADMIN_KEY}
    return Gateway(load_config(str(path), env), env)


class StartedOnce:
    """schemathesis runs an ASGI lifespan around every request; the gateway's shutdown closes its
    store, so its lifespan is started once, on the first startup, and left running."""

    def __init__(self, app: Gateway) -> None:
        self.app = app
        self.lifespan: asyncio.Task[None] | None = None
        self.incoming: asyncio.Queue[Message] | None = None

    async def stop(self) -> None:
        if self.lifespan is not None and self.incoming is not None:
            await self.incoming.put({"type": "lifespan.shutdown"})
            await self.lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while (await receive())["type"] == "lifespan.startup":
            if self.lifespan is None:
                self.incoming = incoming = asyncio.Queue()
                outgoing: asyncio.Queue[Message] = asyncio.Queue()
                self.lifespan = asyncio.create_task(self.app({"type": "lifespan"}, incoming.get, outgoing.put))
                await incoming.put({"type": "lifespan.startup"})
                await outgoing.get()
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture(scope="module")
def admin_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app = StartedOnce(admin_app(tmp_path_factory.mktemp("admin-openapi")))
    yield schemathesis.openapi.from_asgi("/admin/openapi.json", app).exclude(operation_id=NETWORKED)
    from schemathesis.python.asgi import _get_portal  # the loop schemathesis ran the app on

    _get_portal().call(app.stop)  # the gateway's own shutdown: transports and store closed


def operation_ids() -> list[Any]:
    from ccgate.server.openapi import openapi_document

    doc = openapi_document("test")
    cases = []
    for methods in doc["paths"].values():
        for op in methods.values():
            if not isinstance(op, dict) or op["operationId"] in NETWORKED:
                continue
            cases.append(pytest.param(op["operationId"], GenerationMode.POSITIVE))
            if "parameters" in methods or "parameters" in op or "requestBody" in op:  # something to break
                cases.append(pytest.param(op["operationId"], GenerationMode.NEGATIVE))
    return cases


# (schemathesis' own pytest plugin does not run under pytest 9: its Python API and hypothesis do)
@pytest.mark.parametrize(("operation_id", "mode"), operation_ids())
def test_the_admin_api_is_what_its_openapi_document_says(admin_schema: Any, operation_id: str,
                                                        mode: GenerationMode) -> None:
    operation = admin_schema.find_operation_by_id(operation_id)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(headers=AUTH)

    check()


def test_the_documents_duration_pattern_is_exactly_what_the_server_accepts() -> None:
    from ccgate.server.openapi import openapi_document
    from ccgate.store import InvalidInput
    from ccgate.store.validate import MAX_DURATION, parse_duration

    doc = openapi_document("test")
    pattern = re.compile(doc["components"]["schemas"]["Rotate"]["properties"]["grace"]["pattern"])
    for unit, seconds in {"m": 60, "h": 3600, "d": 86400, "w": 604800}.items():
        for n in [*range(0, 120), *range(MAX_DURATION // seconds - 5, MAX_DURATION // seconds + 5)]:
            text = f"{n}{unit}"
            try:
                parse_duration(text)
                accepted = True
            except InvalidInput:
                accepted = False
            assert bool(pattern.search(text)) is accepted, text
    for text in ["01d", " 1d", "1d ", "1 d", "1", "d", "1y", "all"]:
        assert not pattern.search(text)


async def test_integral_floats_are_integers_as_json_schema_says(tmp_path: Path) -> None:
    from ccgate.server.admin import CreateKeyBody

    assert msgspec.json.decode(b'{"name": "a", "rpm": 60.0}', type=CreateKeyBody).rpm == 60
