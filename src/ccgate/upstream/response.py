"""An upstream answer as the server sees it: status, headers and a body whose reads fail
only with ``UpstreamError``.

The transport maps its own exceptions (as httpx wraps the response stream in its exception
mapper): whatever the HTTP library raises while the body arrives is turned into an
``UpstreamError`` that names the hop, here, so nothing above ``upstream/`` knows which HTTP
library sits below. ``ScriptedResponse`` (upstream/mock.py) is the same contract fed from a
script, for tests that drive the gateway without sockets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence


class UpstreamResponse(ABC):
    """One response from a provider. The body is read once, in order, by one of the read
    methods; then ``release()`` (fully read: the connection may be reused) or ``close()``
    (abandoned: the connection is closed, which is what stops the provider generating)."""

    __slots__ = ("content_length", "headers", "raw_headers", "status")

    def __init__(
        self, status: int, headers: Mapping[str, str], raw_headers: Sequence[tuple[bytes, bytes]],
        content_length: int | None,
    ) -> None:
        self.status = status
        # Case-insensitive lookup (content-type, retry-after, ...).
        self.headers = headers
        # As received, in order, repeated names kept: what is relayed to the client.
        self.raw_headers = raw_headers
        self.content_length = content_length

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def is_event_stream(self) -> bool:
        return self.content_type.startswith("text/event-stream")

    @abstractmethod
    async def read_chunk(self) -> bytes:
        """The next bytes as soon as any arrive; ``b""`` at the end. Raises UpstreamError."""

    @abstractmethod
    async def read(self, limit: int = -1) -> bytes:
        """The rest of the body (at most ``limit`` bytes when given). Raises UpstreamError."""

    @abstractmethod
    def release(self) -> None:
        """The body was read to the end: give the connection back to the pool."""

    @abstractmethod
    def close(self) -> None:
        """Abandon the response: close the connection (the provider sees the request end)."""


__all__ = ["UpstreamResponse"]
