"""Hostile client bodies, ``Expect: 100-continue`` and provider keys quoted in error bodies,
in-process (tests/gateway/inprocess.py): issue 13, "Inputs and connections".

Every client body gets an answer below 500: bad bodies a 400 envelope naming the problem.
The fuzz test draws arbitrary bytes and JSON for every route kind; its size is set by
``CCGATE_FUZZ_EXAMPLES`` (examples per route kind, default 40). docs/testing.md has the long run.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccgate.upstream.mock import Reply
from tests.gateway.inprocess import InProcessGateway

KEY = "sk-ant-provider-key-0123456789abcdef"
OPENAI_KEY = "sk-openai-provider-key-0123456789abcdef"
JSON = {"content-type": "application/json"}
ANSWER = json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                     "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
                     "usage": {"input_tokens": 5, "output_tokens": 2}}).encode()
CHAT = json.dumps({"id": "c1", "object": "chat.completion", "choices": [{
    "index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
CONFIG: dict[str, Any] = {
    "providers": [
        {"name": "anthropic", "kind": "anthropic", "base_url": "https://a.test", "api_keys": [KEY]},
        {"name": "compat", "kind": "anthropic-compatible", "base_url": "https://c.test", "api_keys": [KEY],
         "quirks": {"forward_beta": False, "max_tools": 3, "user_id": "sanitize",
                    "drop_fields": ["context_management"]}},
        {"name": "local", "kind": "openai-compatible", "base_url": "https://l.test/v1",
         "api_keys": [OPENAI_KEY], "auth_header": "bearer"},
    ],
    "models": [
        {"match": "alias", "to": "anthropic/real-model"},
        {"match": "clamp", "to": "anthropic", "max_tokens": 100},
        {"match": "quirk", "to": "compat"},
        {"match": "translated", "to": "local/m"},
    ],
    "routing": {"retries": {"max_attempts": 1}},
}
# The model name a body asks for picks the route kind (CONFIG's rules); "pass" matches none.
KINDS = ["pass", "alias", "clamp", "quirk", "translated"]
PATHS = ["/v1/messages", "/v1/messages/count_tokens"]
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}


def body(model: str, messages: bytes = b'[{"role":"user","content":"hi"}]', extra: bytes = b"") -> bytes:
    return b'{"model":"%s","max_tokens":5,%s"messages":%s}' % (model.encode(), extra, messages)


def feed(gw: InProcessGateway) -> None:
    """One answer per provider: at most one attempt per request (retries are off)."""
    for name, transport in gw.transports.items():
        transport.script.clear()
        transport.sent.clear()
        transport.responses.clear()
        transport.add(Reply(200, JSON, CHAT if name == "local" else ANSWER))


DEEP = b"[" * 1000 + b"]" * 1000
BAD = {
    # name: (messages, extra top-level fields, what the 400 says)
    "deep": (b'[{"role":"user","content":' + DEEP + b"}]", b"", "nests too deeply"),
    "deep_field": (b'[{"role":"user","content":"hi"}]', b'"metadata":' + DEEP + b",", "nests too deeply"),
    "utf8": (b'[{"role":"user","content":"\xff\xfe"}]', b"", "invalid UTF-8"),
    "inf": (b'[{"role":"user","content":[{"type":"text","text":"x","n":1e400}]}]', b"", "out of range"),
}
# Passthrough relays the client's bytes unparsed below the head: only nesting is ours to refuse.
REFUSED_ON_PASS = {"deep", "deep_field"}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", sorted(BAD))
async def test_bad_body_is_a_400_naming_the_problem(tmp_path: Path, bad: str, kind: str, path: str) -> None:
    messages, extra, problem = BAD[bad]
    async with InProcessGateway(tmp_path, CONFIG) as gw:
        feed(gw)
        answer = await gw.request("POST", path, body(kind, messages, extra), headers=HEADERS)
    if kind == "pass" and bad not in REFUSED_ON_PASS:
        assert answer.status == 200  # relayed byte for byte: the provider judges it
        return
    assert answer.status == 400, answer.body
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and problem in error["message"]


async def test_integers_wider_than_64_bits_are_no_500(tmp_path: Path) -> None:
    wide = b"123456789012345678901234567890123"
    for kind in KINDS:
        for extra in (b'"temperature":%s,' % wide, b'"metadata":{"n":-%s},' % wide):
            async with InProcessGateway(tmp_path, CONFIG) as gw:
                feed(gw)
                answer = await gw.request("POST", "/v1/messages", body(kind, extra=extra), headers=HEADERS)
            assert answer.status < 500, (kind, answer.body)


async def test_expect_100_continue_never_reaches_the_upstream(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, CONFIG) as gw:
        for kind in ("pass", "quirk"):
            feed(gw)
            headers = {**HEADERS, "expect": "100-continue"}
            answer = await gw.request("POST", "/v1/messages", body(kind), headers=headers)
            assert answer.status == 200
            (sent,) = [s for t in gw.transports.values() for s in t.sent]
            assert sent.header("expect") is None
            assert sent.header("anthropic-version") == "2023-06-01"  # end-to-end headers still pass


def quoting(status: int, key: str, *, encoding: str | None = None) -> Reply:
    text = json.dumps({"type": "error", "error": {
        "type": "authentication_error", "message": f"invalid x-api-key: {key} (key {key})"}}).encode()
    headers = dict(JSON)
    if encoding == "gzip":
        text, headers["content-encoding"] = gzip.compress(text), "gzip"
    elif encoding is not None:
        headers["content-encoding"] = encoding
    return Reply(status, headers, text)


@pytest.mark.parametrize("status", [400, 404, 429, 500, 529])  # a 401 is the gateway's own 502
async def test_a_provider_key_quoted_in_an_error_body_is_redacted(tmp_path: Path, status: int) -> None:
    async with InProcessGateway(tmp_path, CONFIG, {"anthropic": [quoting(status, KEY)]}) as gw:
        answer = await gw.request("POST", "/v1/messages", body("pass"), headers=HEADERS)
    assert answer.status == status
    assert KEY.encode() not in answer.body
    assert answer.json()["error"]["message"] == "invalid x-api-key: *** (key ***)"
    assert answer.headers["content-length"] == str(len(answer.body))


async def test_a_key_in_a_gzipped_error_body_is_redacted_and_sent_plain(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, CONFIG, {"anthropic": [quoting(400, KEY, encoding="gzip")]}) as gw:
        answer = await gw.request("POST", "/v1/messages", body("pass"), headers=HEADERS)
    assert "content-encoding" not in answer.headers
    assert answer.json()["error"]["message"] == "invalid x-api-key: *** (key ***)"


async def test_an_error_body_we_cannot_search_is_not_relayed(tmp_path: Path) -> None:
    async with InProcessGateway(tmp_path, CONFIG, {"anthropic": [quoting(400, KEY, encoding="br")]}) as gw:
        answer = await gw.request("POST", "/v1/messages", body("pass"), headers=HEADERS)
    assert answer.status == 400 and KEY.encode() not in answer.body
    assert "content-encoding" not in answer.headers and "not shown" in answer.json()["error"]["message"]


async def test_an_error_body_without_a_key_is_relayed_byte_for_byte(tmp_path: Path) -> None:
    reply = quoting(429, "someone-else's-key", encoding="gzip")
    async with InProcessGateway(tmp_path, CONFIG, {"anthropic": [reply]}) as gw:
        answer = await gw.request("POST", "/v1/messages", body("pass"), headers=HEADERS)
    assert answer.body == reply.body and answer.headers["content-encoding"] == "gzip"


# The fuzz test ----------------------------------------------------------------------------

_EXAMPLES = int(os.environ.get("CCGATE_FUZZ_EXAMPLES", "40"))
_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
            | st.text(max_size=20))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
_roles = st.sampled_from(["user", "assistant", "system", 3, None])
_blocks = st.fixed_dictionaries({"type": st.sampled_from(["text", "tool_use", "tool_result", "image",
                                                          "thinking", "document", "x"])},
                                optional={"text": _json, "content": _json, "input": _json, "id": _json,
                                          "name": _json, "source": _json, "thinking": _json})
_messages = st.lists(st.fixed_dictionaries({"role": _roles},
                                           optional={"content": st.text(max_size=20) | st.lists(_blocks, max_size=3) | _json}),
                     max_size=3)
_fields = st.dictionaries(st.sampled_from(["system", "tools", "tool_choice", "temperature", "stream",
                                           "metadata", "thinking", "stop_sequences", "top_p", "max_tokens",
                                           "context_management"]), _json, max_size=4)


@st.composite
def shaped(draw: st.DrawFn, model: str) -> bytes:
    """A Messages-shaped body with any values in it, sometimes damaged at the byte level."""
    data: dict[str, Any] = {"model": model, "max_tokens": draw(st.integers(-5, 2**70) | _json),
                            "messages": draw(_messages | _json), **draw(_fields)}
    for name in draw(st.sets(st.sampled_from(["model", "max_tokens", "messages"]))):
        data.pop(name, None)
    raw = json.dumps(data).encode()
    damage = draw(st.sampled_from(["none", "utf8", "inf", "deep", "cut", "bigint"]))
    if damage == "utf8":
        raw = raw.replace(b'"hi', b'"\xff\xc0', 1) if b'"hi' in raw else raw.replace(b'":"', b'":"\xed\xa0\x80', 1)
    elif damage == "inf":
        raw = raw.replace(b"0", b"1e400", 1)
    elif damage == "deep":
        depth = draw(st.integers(100, 3000))
        raw = raw[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
    elif damage == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == "bigint":
        raw = raw.replace(b"5", b"5" * 40, 1)
    return raw


def bodies(model: str) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()) | shaped(model)


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, InProcessGateway]]:
    """One gateway for every example: a loop kept between them, so each costs one request."""
    with asyncio.Runner() as runner:
        gw = InProcessGateway(tmp_path_factory.mktemp("fuzz"), CONFIG)
        runner.run(gw.__aenter__())
        yield runner, gw
        runner.run(gw.__aexit__(None, None, None))


@pytest.mark.parametrize("kind", KINDS)
def test_no_client_body_gets_a_5xx(fuzz_gateway: tuple[asyncio.Runner, InProcessGateway], kind: str) -> None:
    runner, gw = fuzz_gateway

    @settings(max_examples=_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(raw=bodies(kind), path=st.sampled_from(PATHS))
    def check(raw: bytes, path: str) -> None:
        feed(gw)
        answer = runner.run(gw.request("POST", path, raw, headers=HEADERS))
        assert answer.status < 500, (path, raw[:300], answer.body[:300])
        if answer.status >= 400:
            assert answer.json()["error"]["message"]

    check()
