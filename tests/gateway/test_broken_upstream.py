"""An upstream that dies after its response started: the client must learn it, in-band for
SSE (an Anthropic `error` event); for JSON by a 502 envelope when the answer is held whole
(up to ``WHOLE_BODY_LIMIT``), else by a truncated, closed response, never a faked one."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from ccgate.server.forward import WHOLE_BODY_LIMIT
from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory

pytestmark = pytest.mark.lab

MSG = {"model": "claude-opus-4-8", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"x-api-key": CLIENT_TOKEN, "anthropic-version": "2023-06-01"}

SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
SSE_EVENT = b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n'
JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n"
BIG_JSON_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                 b"content-length: %d\r\n\r\n" % (WHOLE_BODY_LIMIT + 1))


class DyingUpstream:
    """Plain-HTTP server on 127.0.0.1 that sends a response start, then drops the socket."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(self.payload)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def dying_sse() -> Iterator[DyingUpstream]:
    chunk = SSE_EVENT
    up = DyingUpstream(SSE_HEAD + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    yield up
    up.close()


@pytest.fixture
def dying_json() -> Iterator[DyingUpstream]:
    up = DyingUpstream(JSON_HEAD + b'{"id":"msg_1","type":"mess')
    yield up
    up.close()


@pytest.fixture
def dying_big_json() -> Iterator[DyingUpstream]:
    up = DyingUpstream(BIG_JSON_HEAD + b'{"id":"msg_1","type":"mess')
    yield up
    up.close()


def config(port: int) -> dict[str, object]:
    return {"server": {"auth": {"tokens": [CLIENT_TOKEN]}},
            "providers": [{"name": "up", "base_url": f"http://127.0.0.1:{port}", "api_keys": ["k-123456789"]}]}


def test_stream_broken_after_start_ends_with_error_event(dying_sse: DyingUpstream, gateway: GatewayFactory) -> None:
    gw = gateway(config(dying_sse.port))
    r = httpx.post(gw.url + "/v1/messages", json={**MSG, "stream": True}, headers=HEADERS)
    assert r.status_code == 200
    assert r.text.startswith("event: message_start")
    assert "event: error" in r.text and '"type":"api_error"' in r.text
    record = next(x for x in gw.wait_access_records(1) if x["path"] == "/v1/messages")
    assert record["error"].startswith("upstream broke mid-response")


def test_json_broken_mid_body_becomes_a_502_envelope(dying_json: DyingUpstream, gateway: GatewayFactory) -> None:
    gw = gateway(config(dying_json.port))
    r = httpx.post(gw.url + "/v1/messages", json=MSG, headers=HEADERS)
    assert r.status_code == 502
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "up" in body["error"]["message"]
    record = next(x for x in gw.wait_access_records(1) if x["path"] == "/v1/messages")
    assert record["status"] == 502 and record["error"]


def test_big_json_broken_after_start_is_truncated_not_faked(
    dying_big_json: DyingUpstream, gateway: GatewayFactory,
) -> None:
    gw = gateway(config(dying_big_json.port))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(gw.url + "/v1/messages", json=MSG, headers=HEADERS)
    record = next(x for x in gw.wait_access_records(1) if x["path"] == "/v1/messages")
    assert record["error"].startswith("upstream broke mid-response")
