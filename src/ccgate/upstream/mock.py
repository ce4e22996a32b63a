"""A scripted transport: the gateway driven without sockets, as httpx's ``MockTransport`` and
a playbook of answers.

``ScriptedTransport`` takes the place of ``UpstreamTransport`` for one provider (the
``Gateway(transport=...)`` seam). Each ``send`` takes the next step of its script: a
``Reply`` (status, headers, and a body given as pieces, where a ``Pause`` waits and an
``UpstreamError`` breaks the body at that point) or an ``UpstreamError`` raised by ``send``
itself (DNS, proxy, TLS, timeout: whatever the real transport maps an exception to). Every
request is recorded, so a test asserts what went upstream as well as what came back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ccgate.config.model import Provider
from ccgate.config.secrets import Secret
from ccgate.errors import UpstreamError
from ccgate.upstream.response import UpstreamResponse
from ccgate.upstream.transport import Transport


@dataclass(frozen=True)
class Pause:
    """Silence from the provider in the middle of a body."""

    seconds: float


BodyPiece = bytes | Pause | UpstreamError


@dataclass
class Reply:
    status: int = 200
    headers: Mapping[str, str] | list[tuple[str, str]] = field(default_factory=dict)
    body: bytes | list[BodyPiece] = b""

    def pieces(self) -> list[BodyPiece]:
        return [self.body] if isinstance(self.body, bytes) else list(self.body)


@dataclass(frozen=True)
class SentRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


Step = Reply | UpstreamError


class ScriptedResponse(UpstreamResponse):
    __slots__ = ("_pieces", "closed", "released")

    def __init__(self, reply: Reply) -> None:
        items = reply.headers.items() if isinstance(reply.headers, Mapping) else reply.headers
        # Lower-cased names: every lookup in ccgate uses lower-case names.
        headers = {k.lower(): v for k, v in items}
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in items]
        pieces = reply.pieces()
        whole = all(isinstance(p, bytes) for p in pieces)
        length = sum(len(p) for p in pieces if isinstance(p, bytes)) if whole else None
        streams = headers.get("content-type", "").startswith("text/event-stream")
        if length is not None and "content-length" not in headers and not streams:
            headers["content-length"] = str(length)
            raw.append((b"content-length", str(length).encode()))
        declared = headers.get("content-length")
        super().__init__(reply.status, headers, raw,
                         int(declared) if declared is not None else None)
        self._pieces = deque(p for p in pieces if p != b"")
        self.released = False
        self.closed = False

    async def read_chunk(self) -> bytes:
        while self._pieces:
            piece = self._pieces.popleft()
            if isinstance(piece, Pause):
                await asyncio.sleep(piece.seconds)
            elif isinstance(piece, UpstreamError):
                raise piece
            else:
                return piece
        return b""

    async def read(self, limit: int = -1) -> bytes:
        out = b""
        while limit < 0 or len(out) < limit:
            chunk = await self.read_chunk()
            if not chunk:
                break
            out += chunk
        if 0 <= limit < len(out):
            self._pieces.appendleft(out[limit:])
            out = out[:limit]
        return out

    def release(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


class ScriptedTransport(Transport):
    """One provider's transport, answering from ``script`` in order."""

    def __init__(self, provider: Provider, keys: list[Secret], script: Iterable[Step] = ()) -> None:
        super().__init__(provider, keys)
        self.script: deque[Step] = deque(script)
        self.sent: list[SentRequest] = []
        self.responses: list[ScriptedResponse] = []
        self.started = False

    def add(self, *steps: Step) -> None:
        self.script.extend(steps)

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    async def send(
        self, method: str, path_and_query: str, headers: list[tuple[str, str]], body: bytes,
        *, timeout: float | None = None,
    ) -> UpstreamResponse:
        self.sent.append(SentRequest(method, path_and_query, list(headers), body))
        if not self.script:
            raise AssertionError(f"provider {self.name!r}: no answer left for {method} {path_and_query}")
        step = self.script.popleft()
        if isinstance(step, UpstreamError):
            raise step
        response = ScriptedResponse(step)
        self.responses.append(response)
        return response

    async def probe(self, timeout: float = 5.0) -> str | None:
        return None


__all__ = ["Pause", "Reply", "ScriptedResponse", "ScriptedTransport", "SentRequest"]
