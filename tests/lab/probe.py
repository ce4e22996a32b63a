"""Raw proxy probes: see exactly what a proxy answers to CONNECT (status line + headers)."""

from __future__ import annotations

import base64
import socket
from dataclasses import dataclass


@dataclass
class ProxyReply:
    status: int
    reason: str
    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def header(self, name: str) -> str | None:
        vals = self.values(name)
        return vals[0] if vals else None


def basic_proxy_auth(username: str, password: str) -> str:
    """``Proxy-Authorization`` value for Basic auth."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def connect_probe(proxy_port: int, host: str, port: int, *,
                  proxy_authorization: str | None = None,
                  timeout: float = 10.0) -> ProxyReply:
    """Send ``CONNECT host:port`` to the proxy on 127.0.0.1:proxy_port; return its reply head.

    The tunnel (if established) is closed right away; no TLS is attempted.
    """
    lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
    if proxy_authorization:
        lines.append(f"Proxy-Authorization: {proxy_authorization}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout) as sock:
        sock.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    parts = status_line.split(" ", 2)
    headers = [tuple(x.strip() for x in h.split(":", 1)) for h in header_lines if ":" in h]
    return ProxyReply(int(parts[1]), parts[2] if len(parts) > 2 else "",
                      [(k, v) for k, v in headers])
