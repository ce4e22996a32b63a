"""A small blocking HTTP/1.1 client that times a streamed answer precisely.

wrk reports one latency per request (the whole response). For streams the bench needs more:
time to the first response byte (TTFB), time to the first text chunk (TTFT), time to the last
byte, and for each chunk the moment it arrived. One keep-alive connection, one request at a
time, a raw socket and CLOCK_MONOTONIC (`time.monotonic_ns`, the clock the scripted upstream
stamps its chunks with): the client costs the same few microseconds per read whether it talks
to the upstream directly or through a gateway.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.answers import MARKER
from bench.common import BenchError, assert_loopback


@dataclass
class Timed:
    status: int
    headers: dict[str, str]
    body: bytes
    t_sent: int  # ns, just before the request was written
    t_first_byte: int
    t_end: int
    t_first_chunk: int | None = None  # arrival of the first marker chunk
    reads: int = 0
    # (seq, upstream write ns or 0, arrival ns) for every marker chunk, in arrival order
    marks: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def ttfb_us(self) -> float:
        return (self.t_first_byte - self.t_sent) / 1000

    @property
    def ttft_us(self) -> float | None:
        return None if self.t_first_chunk is None else (self.t_first_chunk - self.t_sent) / 1000

    @property
    def total_us(self) -> float:
        return (self.t_end - self.t_sent) / 1000

    def chunk_latencies_us(self) -> list[float]:
        """Upstream write -> arrival here, per chunk (paced streams only)."""
        return [(t - ns) / 1000 for _, ns, t in self.marks if ns]


class Client:
    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        assert_loopback(base_url)
        u = urlsplit(base_url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.timeout = timeout
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        if self.sock is None:
            s = socket.create_connection((self.host, self.port), timeout=self.timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = s
        return self.sock

    def post(self, path: str, headers: dict[str, str], body: bytes) -> Timed:
        head = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}",
                f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()
                 if k.lower() not in ("host", "content-length", "connection")]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        for attempt in (0, 1):
            sock = self._connect()
            try:
                return self._exchange(sock, request)
            except (ConnectionError, BenchError) as e:
                self.close()
                if attempt or not isinstance(e, ConnectionError):
                    raise
        raise AssertionError("unreachable")

    def _exchange(self, sock: socket.socket, request: bytes) -> Timed:
        now = time.monotonic_ns
        recv = sock.recv
        raw = bytearray()
        t_sent = now()
        sock.sendall(request)
        t_first = 0
        reads = 0
        # headers
        while True:
            data = recv(262144)
            t = now()
            if not data:
                if not raw:
                    raise ConnectionResetError("closed before answering")
                raise BenchError(f"connection closed mid-headers: {bytes(raw[:200])!r}")
            reads += 1
            if not t_first:
                t_first = t
            raw += data
            hend = raw.find(b"\r\n\r\n")
            if hend >= 0:
                break
        lines = bytes(raw[:hend]).decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            raise BenchError(f"bad status line {lines[0]!r}") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = int(headers.get("content-length", "-1")) if not chunked else -1
        if not chunked and length < 0:
            raise BenchError(f"answer without length or chunking: {headers}")
        pos = hend + 4
        body = bytearray()
        marks: list[tuple[int, int, int]] = []
        scan = 0
        t_first_chunk: int | None = None
        done = False
        while True:
            # consume what is in `raw` from `pos`
            if chunked:
                while True:
                    eol = raw.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    size = int(bytes(raw[pos:eol]).split(b";")[0], 16)
                    if size == 0:
                        if len(raw) >= eol + 4:
                            done = True
                        break
                    if len(raw) < eol + 2 + size + 2:
                        break
                    body += raw[eol + 2:eol + 2 + size]
                    pos = eol + 2 + size + 2
                if pos > 65536:
                    del raw[:pos]
                    pos = 0
            else:
                body += raw[pos:]
                pos = len(raw)
                done = len(body) >= length
            for m in MARKER.finditer(body, scan):
                marks.append((int(m.group(1)), int(m.group(2)), t))
                scan = m.end()
                if t_first_chunk is None:
                    t_first_chunk = t
            if done:
                break
            data = recv(262144)
            t = now()
            if not data:
                raise BenchError(f"connection closed mid-body after {len(body)} bytes")
            reads += 1
            raw += data
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Timed(status, headers, bytes(body), t_sent, t_first, t, t_first_chunk, reads,
                     marks)
