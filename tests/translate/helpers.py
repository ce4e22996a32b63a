"""Shared helpers: run raw provider SSE bytes through the decoder and the translator."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ccgate.translate import StreamTranslator, ToolNames
from ccgate.wire.openai import decode_chunk
from ccgate.wire.sse import SSEDecoder

FIXTURES = Path(__file__).parent / "fixtures"
STREAMS = FIXTURES / "streams"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def stream_meta(name: str) -> dict[str, Any]:
    meta: dict[str, Any] = load_json(STREAMS / "meta.json")[name]
    return meta


def run_stream(name: str, pieces: Iterable[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """Decode ``pieces`` (the fixture split anywhere) and translate, as the server would."""
    meta = stream_meta(name)
    translator = StreamTranslator(
        model=meta["model"],
        tools=ToolNames(meta["tools"]),
        input_tokens_estimate=meta["estimate"],
        message_id=f"msg_{name}",
        provider=meta["provider"],
    )
    decoder = SSEDecoder()
    events = translator.start()
    done = False

    def handle(sse_events: list[Any]) -> None:
        nonlocal done
        for sse in sse_events:
            if done or not sse.data.strip():
                continue
            chunk = decode_chunk(sse.data)
            if chunk is None:
                done = True
                events.extend(translator.finish())
            else:
                events.extend(translator.feed(chunk))

    for piece in pieces:
        handle(decoder.feed(piece))
    handle(decoder.close())
    events.extend(translator.finish(truncated=not done))
    return events


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out
