"""Golden provider streams (raw SSE bytes, hand-written from each provider's documented shape) ->
the exact Anthropic event sequence. Set CCGATE_REGEN=1 to rewrite the expected files (review them!)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.translate.grammar import validate
from tests.translate.helpers import STREAMS, load_json, run_stream, split

NAMES = sorted(p.stem for p in STREAMS.glob("*.sse"))


@pytest.mark.parametrize("name", NAMES)
def test_golden(name: str) -> None:
    raw = (STREAMS / f"{name}.sse").read_bytes()
    events = run_stream(name, [raw])
    expected_path = STREAMS / f"{name}.expected.json"
    if os.environ.get("CCGATE_REGEN"):
        expected_path.write_text(json.dumps(events, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = [tuple(e) for e in load_json(expected_path)]
    assert events == expected
    validate(events)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_chunking_gives_the_same_events(name: str, data: st.DataObject) -> None:
    raw = (STREAMS / f"{name}.sse").read_bytes()
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(raw) - 1), max_size=40))
    assert run_stream(name, split(raw, cuts)) == run_stream(name, [raw])


@pytest.mark.parametrize("name", NAMES)
def test_byte_by_byte(name: str) -> None:
    raw = (STREAMS / f"{name}.sse").read_bytes()
    assert run_stream(name, [raw[i : i + 1] for i in range(len(raw))]) == run_stream(name, [raw])
