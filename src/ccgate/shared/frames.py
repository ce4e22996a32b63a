"""The hub's wire protocol without I/O: messages, their encoding, and framing.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack (msgspec): one
message, a tagged array. Requests that expect an answer carry an ``id`` chosen by the sender,
and the answer carries the same ``id``, so one connection serves many concurrent calls.
``FrameReader.feed`` takes whatever bytes a socket returned (any chunking) and returns the
whole messages in them, like h11's ``receive_data``/``next_event``; the hub and its clients
only move bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

MAX_FRAME = 16 * 1024 * 1024  # a metrics snapshot is the largest message (~100 KiB)
_LEN = struct.Struct(">I")


class _Msg(msgspec.Struct, array_like=True, tag=True, omit_defaults=False):
    pass


# Worker -> hub -----------------------------------------------------------------------------


class Hello(_Msg, tag="hello"):
    token: str  # the secret the supervisor gave its workers: the hub answers no one else
    process_id: str
    worker: int


class Admit(_Msg, tag="admit"):
    id: int
    key_id: str
    rpm: int | None
    tpm: int | None


class Tokens(_Msg, tag="tokens"):
    key_id: str
    tokens: int


class Publish(_Msg, tag="pub"):
    kind: str
    data: dict[str, Any]
    origin: str


class Kv(_Msg, tag="kv"):
    """One short-lived-record operation: ``op`` is put, get, take, delete or incr."""

    id: int
    op: str
    key: str
    value: bytes = b""
    ttl: float = 0.0
    amount: int = 0


class Gather(_Msg, tag="gather"):
    """Ask the hub for every other worker's metrics snapshot (a scrape of /metrics)."""

    id: int


class Snapshot(_Msg, tag="snap"):
    """A worker's answer to ``SnapshotRequest``: its metrics (``server.metrics_merge``)."""

    id: int
    data: bytes


# Hub -> worker -----------------------------------------------------------------------------


class Welcome(_Msg, tag="welcome"):
    hub_pid: int


class Reply(_Msg, tag="reply"):
    """The answer to ``Admit`` (``value``: the admission's fields as a list), ``Kv`` (bytes,
    an int or None) or ``Gather`` (a list of snapshots); ``error`` when the hub refused."""

    id: int
    value: Any = None
    error: str = ""


class Event(_Msg, tag="event"):
    kind: str
    data: dict[str, Any]
    origin: str


class SnapshotRequest(_Msg, tag="snapreq"):
    id: int


Message = Hello | Admit | Tokens | Publish | Kv | Gather | Snapshot | Welcome | Reply | Event | SnapshotRequest

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol: drop the connection."""


def encode(message: Message) -> bytes:
    body = _encoder.encode(message)
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Bytes in, messages out."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        buffer = self._buffer
        buffer += data
        out: list[Message] = []
        start = 0
        while len(buffer) - start >= 4:
            (size,) = _LEN.unpack_from(buffer, start)
            if size > MAX_FRAME:
                raise FrameError(f"frame of {size} bytes is over the {MAX_FRAME}-byte limit")
            end = start + 4 + size
            if len(buffer) < end:
                break
            try:
                out.append(_decoder.decode(buffer[start + 4:end]))
            except msgspec.DecodeError as exc:
                raise FrameError(f"undecodable frame: {exc}") from None
            start = end
        if start:
            del buffer[:start]
        return out


__all__ = [
    "MAX_FRAME", "Admit", "Event", "FrameError", "FrameReader", "Gather", "Hello", "Kv", "Message",
    "Publish", "Reply", "Snapshot", "SnapshotRequest", "Tokens", "Welcome", "encode",
]
