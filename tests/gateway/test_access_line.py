"""The JSON access line, byte for byte: what the gateway writes for a request must not change
when the way it is built does (server/app.py builds the record positionally, for speed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ccgate.server import app as app_module
from ccgate.server.access_log import AccessRecord
from ccgate.upstream.mock import Reply
from tests.gateway.inprocess import InProcessGateway
from tests.gateway.test_inprocess import JSON, KEY, MSG, anthropic, overloaded

TOKEN = "sk-gateway-client-token-0123456789"
TS = "2026-12-03T15:00:00.123Z"
USAGE = {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 3}
ANSWER = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
          "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn", "usage": USAGE}
FIELD_ORDER = ["ts", "request_id", "method", "path", "status", "latency_ms", "bytes_in", "bytes_out", "client",
               "model", "upstream", "stream", "attempts", "error", "input_tokens", "output_tokens",
               "cache_read_tokens", "cache_creation_tokens", "session_id", "upstream_request_id", "worker"]


def lines(gw: InProcessGateway, path: Path) -> list[bytes]:
    gw.app.access_log.flush()
    return path.read_bytes().splitlines()


def expected(line: bytes, **fields: Any) -> bytes:
    """The line the keyword-built record gives, with this line's own request id and latency."""
    seen = json.loads(line)
    record = AccessRecord(ts=TS, request_id=seen["request_id"], latency_ms=seen["latency_ms"], **fields)
    return msgspec.json.encode(record)


async def test_a_relayed_answer_and_a_retried_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "utc_now", lambda: TS)
    log = tmp_path / "access.log"
    config = {"server": {"auth": {"tokens": [{"name": "team", "token": TOKEN}]}}, "providers": [anthropic()],
              "log": {"access": True, "file": str(log)}}
    body = json.dumps(ANSWER).encode()
    headers = {**JSON, "request-id": "req_upstream_1"}
    script = {"anthropic": [Reply(200, headers, body), overloaded(), Reply(200, headers, body)]}
    sent = json.dumps(MSG).encode()
    client = {"x-api-key": TOKEN, "anthropic-version": "2023-06-01", "x-claude-code-session-id": "sess-1"}
    async with InProcessGateway(tmp_path, config, script) as gw:
        first = await gw.post("/v1/messages", MSG, headers=client)
        second = await gw.post("/v1/messages", MSG, headers={**client, "x-claude-code-session-id": "sess-2"})
        refused = await gw.post("/v1/messages", MSG, headers={"x-api-key": "wrong", "anthropic-version": "1"})
        one, two, three = lines(gw, log)
    assert first.status == second.status == 200 and refused.status == 401
    assert list(json.loads(one)) == [f for f in FIELD_ORDER if f not in ("attempts", "error", "worker")]
    assert re.fullmatch(rb'\{"ts":"2026-12-03T15:00:00\.123Z","request_id":"req_ccgate_[0-9a-f]{24}",'
                        rb'"method":"POST","path":"/v1/messages","status":200,"latency_ms":[0-9.]+,.*', one)
    common: dict[str, Any] = {"method": "POST", "path": "/v1/messages", "status": 200, "bytes_in": len(sent),
                              "bytes_out": len(body), "client": "team", "model": "claude-sonnet-4-5",
                              "upstream": "anthropic", "stream": False, "input_tokens": 5, "output_tokens": 2,
                              "cache_read_tokens": 7, "cache_creation_tokens": 3,
                              "upstream_request_id": "req_upstream_1"}
    assert one == expected(one, **common, session_id="sess-1")
    assert two == expected(two, **common, session_id="sess-2", attempts="anthropic#0 529, anthropic#0 200")
    assert three == expected(three, method="POST", path="/v1/messages", status=401, bytes_in=0, bytes_out=len(
        refused.body), error="invalid gateway credential")
    assert KEY.encode() not in one + two + three and TOKEN.encode() not in one + two + three
