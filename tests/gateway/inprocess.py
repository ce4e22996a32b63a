"""The gateway in-process: ``Gateway(scope, receive, send)`` driven directly, every provider a
``ScriptedTransport`` and time a ``ManualClock`` (backoff waits advance it; nothing sleeps).

For dispatch, retry, fallback, relay and error-mapping cases. The network contract (real
sockets, proxies, TLS, Claude Code itself) stays with the lab tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ccgate.config.load import load_config
from ccgate.config.model import Provider
from ccgate.config.secrets import Secret
from ccgate.routing import ManualClock
from ccgate.server.app import Gateway
from ccgate.server.asgi import Message
from ccgate.shared import SharedState
from ccgate.upstream.mock import ScriptedTransport, Step


@dataclass
class Answer:
    """What the client received: the ASGI messages, and what they add up to."""

    messages: list[Message]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False  # the final body message was sent

    @classmethod
    def of(cls, messages: list[Message]) -> Answer:
        answer = cls(messages)
        for message in messages:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                answer.body += message.get("body", b"")
                answer.complete = not message.get("more_body", False)
        return answer

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """An SSE body as (event, data) pairs."""
        out = []
        for block in self.body.decode().split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "event" in lines:
                out.append((lines["event"], json.loads(lines["data"])))
        return out


class InProcessGateway:
    """``async with InProcessGateway(tmp, config, scripts) as gw: answer = await gw.post(...)``."""

    def __init__(self, tmp: Path, config: dict[str, Any], scripts: Mapping[str, Iterable[Step]] | None = None,
                 *, env: Mapping[str, str] | None = None, shared: SharedState | None = None) -> None:
        self.path = tmp / "ccgate.yaml"
        self._scripts: dict[str, list[Step]] = {}
        self.write_config(config, scripts)
        self.env = dict(env or {})
        self.loaded = load_config(str(self.path), self.env)
        self.clock = ManualClock()
        self.slept: list[float] = []
        self.transports: dict[str, ScriptedTransport] = {}  # the newest per provider
        self.all_transports: list[ScriptedTransport] = []
        self.app = Gateway(self.loaded, self.env, transport=self._transport, clock=self.clock,
                           sleep=self._sleep, shared=shared)
        self._lifespan: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan_task: asyncio.Task[None] | None = None

    def write_config(self, config: dict[str, Any], scripts: Mapping[str, Iterable[Step]] | None = None) -> None:
        """(Re)write the config file; ``scripts``: for the providers a reload will (re)create."""
        config = {"store": {"enabled": False}, "log": {"access": False}, **config}
        self.path.write_text(yaml.safe_dump(config))
        self._scripts.update({name: list(steps) for name, steps in (scripts or {}).items()})

    def _transport(self, provider: Provider, keys: list[Secret], env: Mapping[str, str]) -> ScriptedTransport:
        # A script is used by the first transport built for its provider (a reload builds new ones).
        transport = ScriptedTransport(provider, keys, self._scripts.pop(provider.name, ()))
        self.transports[provider.name] = transport
        self.all_transports.append(transport)
        return transport

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    async def __aenter__(self) -> InProcessGateway:
        sent: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan_task = asyncio.create_task(
            self.app({"type": "lifespan"}, self._lifespan.get, sent.put))
        await self._lifespan.put({"type": "lifespan.startup"})
        assert (await asyncio.wait_for(sent.get(), 5))["type"] == "lifespan.startup.complete"
        self._sent_lifespan = sent
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._lifespan.put({"type": "lifespan.shutdown"})
        assert self._lifespan_task is not None
        await asyncio.wait_for(self._lifespan_task, 5)

    async def request(
        self, method: str, path: str, body: bytes | dict[str, Any] = b"", *,
        headers: Mapping[str, str] | None = None, query: bytes = b"", disconnect_after: float | None = None,
    ) -> Answer:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        hdrs = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        hdrs.append((b"content-length", str(len(raw)).encode()))
        scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": hdrs}
        incoming: list[Message] = [{"type": "http.request", "body": raw, "more_body": False}]
        messages: list[Message] = []
        done = asyncio.Event()

        async def receive() -> Message:
            if incoming:
                return incoming.pop(0)
            if disconnect_after is not None:
                await asyncio.sleep(disconnect_after)
            else:
                await done.wait()  # as uvicorn: the disconnect comes after the response is complete
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            messages.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                done.set()

        await asyncio.wait_for(self.app(scope, receive, send), 10)
        return Answer.of(messages)

    async def post(self, path: str, body: dict[str, Any], **kw: Any) -> Answer:
        return await self.request("POST", path, body, **kw)
