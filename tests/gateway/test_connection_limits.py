"""``server.limits`` against the real ``ccgate serve`` over raw sockets (server/protocol.py).

Each case is one of issue 13's probes: a huge header, many headers, slowloris, a connection
that never sends a byte, a trickling upload, too many connections. Timeouts are configured
tiny; the assertions are on what the client sees (the status, the connection closed) and on
the refusal counted in /metrics, never on how long anything took.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import CLIENT_TOKEN, GatewayFactory, authed_config
from tests.gateway.harness import Gateway
from tests.lab.fake_anthropic import FakeAnthropic

pytestmark = pytest.mark.lab

BODY = b'{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
# How long a test waits for the gateway to act; generous, since the machine may be busy.
PATIENCE = 10.0


def limits_config(upstream: FakeAnthropic, ca_file: Path, **limits: Any) -> dict[str, Any]:
    config = authed_config(upstream.url, ca_file)
    config["server"]["limits"] = limits
    return config


def connect(gw: Gateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=PATIENCE)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection (a reset counts as closed)."""
    out = b""
    sock.settimeout(PATIENCE)
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def drip(sock: socket.socket, data: bytes, every: float = 0.1) -> bytes:
    """Send ``data`` a byte at a time, ``every`` seconds apart, until the gateway answers; then
    everything it sends until it closes. Stops sending as soon as an answer is readable, so
    the close is a clean one (no reset racing the answer)."""
    deadline = time.monotonic() + PATIENCE
    for byte in data:
        if time.monotonic() > deadline:
            break
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            break
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
    return read_until_closed(sock)


def status_of(raw: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
    assert match, raw[:200]
    return int(match.group(1))


def refused(gw: Gateway, reason: str) -> float:
    text = httpx.get(gw.url + "/metrics", timeout=5).text
    match = re.search(rf'^ccgate_client_refused_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def messages_request(*extra_headers: bytes, body: bytes = BODY) -> bytes:
    head = [b"POST /v1/messages HTTP/1.1", b"host: 127.0.0.1", b"x-api-key: " + CLIENT_TOKEN.encode(),
            b"content-type: application/json", b"anthropic-version: 2023-06-01",
            b"content-length: %d" % len(body), *extra_headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def test_a_huge_header_gets_431_and_never_reaches_the_upstream(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    gw = gateway(limits_config(upstream, gw_ca_file))
    with connect(gw) as sock:
        # 1 MiB of one header: the gateway answers before the client has sent it all.
        sock.sendall(messages_request(b"x-big: " + b"a" * (64 * 1024)))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"x-more: " + b"b" * (1024 * 1024) + b"\r\n\r\n")
        raw = read_until_closed(sock)
    assert status_of(raw) == 431
    assert b"server.limits.max_header_bytes" in raw
    with connect(gw) as sock:  # the same with the header arriving in one piece
        sock.sendall(messages_request(b"x-big: " + b"a" * (1024 * 1024)))
        assert status_of(read_until_closed(sock)) == 431
    assert upstream.requests_to("/v1/messages") == []
    assert refused(gw, "header_bytes") == 2
    # An ordinary request on a fresh connection still goes through.
    ok = httpx.post(gw.url + "/v1/messages", content=BODY, timeout=PATIENCE, headers={
        "x-api-key": CLIENT_TOKEN, "content-type": "application/json", "anthropic-version": "2023-06-01"})
    assert ok.status_code == 200, ok.text


def test_too_many_headers_get_431_before_authentication(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    gw = gateway(limits_config(upstream, gw_ca_file, max_headers=20))
    many = [b"x-h%d: v" % i for i in range(25)]
    with connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"\r\n".join(many) + b"\r\n\r\n")
        raw = read_until_closed(sock)
    assert status_of(raw) == 431
    assert b"the limit is 20" in raw
    assert refused(gw, "header_count") == 1


def test_slowloris_and_silent_connections_are_closed(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    gw = gateway(limits_config(upstream, gw_ca_file, header_timeout=0.5))
    silent = connect(gw)
    slow = connect(gw)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
    # Slowloris: one more header byte every 0.1 s, for far longer than the header timeout.
    raw = drip(slow, b"x" * 1000)
    assert status_of(raw) == 408
    assert read_until_closed(silent).startswith(b"HTTP/1.1 408 ")  # then closed
    silent.close()
    slow.close()
    assert refused(gw, "header_timeout") == 2


def test_a_trickling_upload_gets_408(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    gw = gateway(limits_config(upstream, gw_ca_file, body_timeout=0.5))
    with connect(gw) as sock:
        request = messages_request()
        sock.sendall(request[:-len(BODY)] + BODY[:10])
        raw = drip(sock, BODY[10:-1])  # a byte every 0.1 s, never the last one
    assert status_of(raw) == 408
    assert b"server.limits.body_timeout" in raw
    assert upstream.requests_to("/v1/messages") == []
    assert refused(gw, "body_timeout") == 1


def test_an_idle_keep_alive_connection_is_closed(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    gw = gateway(limits_config(upstream, gw_ca_file, idle_timeout=0.3))
    with connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        raw = read_until_closed(sock)  # the answer, then the close once idle
    assert status_of(raw) == 200 and raw.endswith(b'{"status":"ok"}')


def test_connections_over_the_cap_are_refused_with_503(
    upstream: FakeAnthropic, gateway: GatewayFactory, gw_ca_file: Path,
) -> None:
    gw = gateway(limits_config(upstream, gw_ca_file, max_connections=3, header_timeout=60))
    held = [connect(gw) for _ in range(3)]
    try:
        with connect(gw) as extra:  # the fourth: answered and closed at once
            raw = read_until_closed(extra)
        assert status_of(raw) == 503
        assert b"retry-after: 5" in raw and b"server.limits.max_connections" in raw
        for sock in held:  # the held ones are still open and usable
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            assert status_of(sock.recv(65536)) == 200
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:  # the slots come back once the held ones close
        try:
            metrics = httpx.get(gw.url + "/metrics", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    assert metrics.status_code == 200
    assert refused(gw, "connection_limit") == 1
    assert "ccgate_client_connections 1.0" in metrics.text  # the scrape's own
