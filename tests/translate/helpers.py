"""Shared helpers: run raw provider SSE bytes through the production ``StreamPipeline``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ccgate.translate import StreamPipeline, StreamTranslator, ToolNames

FIXTURES = Path(__file__).parent / "fixtures"
STREAMS = FIXTURES / "streams"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def stream_meta(name: str) -> dict[str, Any]:
    meta: dict[str, Any] = load_json(STREAMS / "meta.json")[name]
    return meta


def run_stream(name: str, pieces: Iterable[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """Feed ``pieces`` (the fixture split anywhere) through the production pipeline."""
    meta = stream_meta(name)
    translator = StreamTranslator(
        model=meta["model"],
        tools=ToolNames(meta["tools"]),
        input_tokens_estimate=meta["estimate"],
        message_id=f"msg_{name}",
        provider=meta["provider"],
    )
    return pipe(StreamPipeline(translator, provider=meta["provider"]), pieces)


def pipe(pipeline: StreamPipeline, pieces: Iterable[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """What the relay does with a pipeline: start, feed every piece, close at EOF."""
    events = pipeline.start()
    for piece in pieces:
        events.extend(pipeline.feed(piece))
    events.extend(pipeline.close())
    return events


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out
