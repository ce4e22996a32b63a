"""The local token estimate against input counts the real API reported (fixtures/token_truth.json)."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest

from ccgate.translate import estimate_input_tokens
from ccgate.translate.tokens import count_text, image_size
from tests.translate.helpers import FIXTURES, load_json

CASES: list[dict[str, Any]] = load_json(FIXTURES / "token_truth.json")["cases"]


def error(case: dict[str, Any]) -> float:
    return (estimate_input_tokens(case["request"]) - case["truth"]) / case["truth"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_each_case_within_40_percent(case: dict[str, Any]) -> None:
    assert abs(error(case)) <= 0.40


def test_mean_absolute_error_is_documented_bound() -> None:
    # docs/translation.md quotes these numbers; keep them in sync when the estimator changes.
    errors = [abs(error(c)) for c in CASES]
    assert sum(errors) / len(errors) <= 0.11
    auto = [abs(error(c)) for c in CASES if c["request"].get("tool_choice", {}).get("type") != "any"]
    assert sum(auto) / len(auto) <= 0.06


def test_text_counting_basics() -> None:
    assert count_text("Please explain what Python is and its main use cases.") == 11
    assert count_text("") == 0
    assert count_text("日本語のテキスト") == 8
    assert count_text("get_user_country") == 3
    assert count_text("internationalization") > 1
    assert count_text("1234567") == 3


def test_never_zero_and_never_raises_on_odd_input() -> None:
    assert estimate_input_tokens({}) >= 1
    odd = {
        "system": 5,
        "messages": [{"role": "user", "content": None}, "x", {"content": [1, {"type": "?"}]}],
        "tools": ["bad", {"name": "t"}],
    }
    assert estimate_input_tokens(odd) >= 1


def _png(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()


def test_image_sizes_from_headers() -> None:
    assert image_size(_png(640, 480)) == (640, 480)
    gif = base64.b64encode(b"GIF89a" + struct.pack("<HH", 320, 200) + b"\x00" * 8).decode()
    assert image_size(gif) == (320, 200)
    jpeg = b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    jpeg += b"\xff\xc0" + struct.pack(">HBHH", 17, 8, 600, 800) + b"\x00" * 10
    assert image_size(base64.b64encode(jpeg).decode()) == (800, 600)
    webp = (
        b"RIFF\x00\x00\x00\x00WEBPVP8X"
        + b"\x00" * 8
        + (1023).to_bytes(3, "little")
        + (767).to_bytes(3, "little")
    )
    assert image_size(base64.b64encode(webp).decode()) == (1024, 768)
    assert image_size("not base64 at all") is None


def image_body(data: str) -> dict[str, Any]:
    block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    return {"messages": [{"role": "user", "content": [block]}]}


def test_image_tokens_follow_the_documented_formula() -> None:
    base = estimate_input_tokens({"messages": [{"role": "user", "content": []}]})
    # 1000x1000 fits 1.15 MP: 1000*1000/750 = 1334 tokens (Anthropic's vision docs).
    assert estimate_input_tokens(image_body(_png(1000, 1000))) - base == 1334
    # A 4000x3000 photo is scaled to about 1.15 MP: capped near 1533 tokens.
    assert 1500 <= estimate_input_tokens(image_body(_png(4000, 3000))) - base <= 1540
    assert estimate_input_tokens(image_body("????")) - base == 1600


def test_pdf_pages_are_counted() -> None:
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj 2 0 obj << /Type /Page >> endobj << /Type /Pages >>"
    block = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf).decode()},
    }
    base = estimate_input_tokens({"messages": [{"role": "user", "content": []}]})
    assert estimate_input_tokens({"messages": [{"role": "user", "content": [block]}]}) - base == 4000
