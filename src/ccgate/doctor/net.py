"""Small, fully observable network primitives: resolve, connect, CONNECT, TLS, HTTP/1.1.

The doctor speaks HTTP/1.1 itself on asyncio streams instead of using a client library,
so it can keep what libraries hide: every ``Proxy-Authenticate`` header of a CONNECT
reply, the raw status line, the certificate chain presented (verification off, judged
later by tlscheck), and the exact bytes of a response.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

BODY_CAP = 64 * 1024


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        remaining = max(0.05, self.end - time.monotonic())
        return min(remaining, cap) if cap is not None else remaining

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end


@dataclass
class HttpResponse:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    elapsed: float = 0.0

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def getall(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    @property
    def status_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}".strip()

    def text(self, limit: int = 300) -> str:
        t = self.body[:limit].decode("utf-8", "replace")
        t = " ".join(t.split())
        return t + ("..." if len(self.body) > limit else "")

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.body.decode("utf-8", "replace"))
        except ValueError:
            return None


@dataclass
class Resolution:
    host: str
    v4: list[str] = field(default_factory=list)
    v6: list[str] = field(default_factory=list)
    error: str | None = None
    error_code: int | None = None
    overridden: bool = False

    @property
    def addresses(self) -> list[str]:
        return self.v4 + self.v6


def ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


AddrInfo = list[tuple[Any, ...]]


def _settle(fut: asyncio.Future[AddrInfo], result: AddrInfo | None,
            error: BaseException | None) -> None:
    if fut.done():  # the caller gave up (timeout) long ago
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result or [])


async def getaddrinfo_detached(host: str, port: int, family: int) -> AddrInfo:
    """``getaddrinfo`` in a daemon thread nobody waits for.

    ``loop.getaddrinfo`` uses the default executor, and ``asyncio.run()`` joins its threads on
    exit: with resolvers that never answer, glibc keeps a thread busy for timeout x attempts x
    servers (30 s and more) after the doctor has given up. A daemon thread is abandoned instead.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[AddrInfo] = loop.create_future()

    def work() -> None:
        result: AddrInfo | None = None
        error: BaseException | None = None
        try:
            result = list(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))
        except OSError as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            loop.call_soon_threadsafe(_settle, fut, result, error)

    threading.Thread(target=work, name=f"doctor-dns-{host}", daemon=True).start()
    return await fut


async def resolve(host: str, port: int, overrides: Mapping[str, str], timeout: float) -> Resolution:
    """A and AAAA separately; ``overrides`` (curl --resolve style) skip DNS entirely."""
    lit = ip_literal(host)
    if lit is None and host.lower() in overrides:
        lit = overrides[host.lower()]
        res = Resolution(host, overridden=True)
    else:
        res = Resolution(host)
    if lit is not None:
        (res.v6 if ":" in lit else res.v4).append(lit)
        return res

    async def one(family: int) -> list[str] | BaseException:
        try:
            infos = await asyncio.wait_for(getaddrinfo_detached(host, port, family), timeout)
        except (OSError, TimeoutError) as exc:
            return exc
        return list(dict.fromkeys(str(i[4][0]) for i in infos))

    r4, r6 = await asyncio.gather(one(socket.AF_INET), one(socket.AF_INET6))
    if isinstance(r4, list):
        res.v4 = r4
    if isinstance(r6, list):
        res.v6 = r6
    if not res.addresses:
        err = r4 if isinstance(r4, BaseException) else r6
        if isinstance(err, socket.gaierror):
            res.error_code = err.errno
            names = {socket.EAI_NONAME: "NXDOMAIN: the name does not exist",
                     socket.EAI_AGAIN: "temporary failure: the resolver did not answer"}
            res.error = names.get(err.errno or 0, err.strerror or str(err))
        elif isinstance(err, TimeoutError):
            res.error = f"no DNS answer within {timeout:.1f} s"
        else:
            res.error = str(err) or type(err).__name__
    return res


@dataclass
class ConnectAttempt:
    address: str
    ok: bool
    error: str | None = None
    kind: str | None = None  # refused | timeout | unreachable | other
    elapsed: float = 0.0


def describe_oserror(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, TimeoutError):
        return "timeout", "timed out (packets dropped: a firewall or black hole)"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused (nothing listens, or a firewall rejects)"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "unreachable", f"{exc.strerror} (no route)"
    return "other", str(exc) or type(exc).__name__


async def connect(
    address: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | ConnectAttempt:
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, limit=BODY_CAP * 2), timeout
        )
    except (OSError, TimeoutError) as exc:
        kind, text = describe_oserror(exc)
        return ConnectAttempt(address, False, text, kind, time.monotonic() - start)
    return reader, writer


async def read_head(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Read up to the blank line ending a response head (may return less on EOF)."""
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except asyncio.LimitOverrunError:
        return await reader.read(BODY_CAP)


def parse_head(raw: bytes) -> HttpResponse | None:
    text = raw.decode("iso-8859-1")
    lines = text.split("\r\n")
    first = lines[0].split(" ", 2)
    if len(first) < 2 or not first[0].startswith("HTTP/") or not first[1].isdigit():
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return HttpResponse(int(first[1]), first[2] if len(first) > 2 else "", first[0], headers)


async def read_body(
    reader: asyncio.StreamReader, resp: HttpResponse, timeout: float, *, head_request: bool = False
) -> None:
    if head_request or resp.status in (204, 304) or 100 <= resp.status < 200:
        return
    try:
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if "chunked" in te:
            chunks = bytearray()
            while len(chunks) < BODY_CAP:
                size_line = await asyncio.wait_for(reader.readline(), timeout)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                chunks += await asyncio.wait_for(reader.readexactly(size), timeout)
                await reader.readline()
            resp.body = bytes(chunks[:BODY_CAP])
        elif cl is not None and cl.isdigit():
            resp.body = await asyncio.wait_for(reader.readexactly(min(int(cl), BODY_CAP)), timeout)
        else:
            resp.body = await asyncio.wait_for(reader.read(BODY_CAP), timeout)
    except (asyncio.IncompleteReadError, ValueError, OSError, TimeoutError):
        pass


def basic_auth(username: str, password: str | None) -> str:
    token = f"{username}:{password or ''}".encode()
    return "Basic " + base64.b64encode(token).decode()


@dataclass
class ConnectReply:
    response: HttpResponse | None
    raw: bytes
    error: str | None = None
    sent: list[str] = field(default_factory=list)


async def proxy_connect(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    port: int,
    *,
    auth: str | None,
    user_agent: str,
    timeout: float,
) -> ConnectReply:
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {hostport} HTTP/1.1", f"Host: {hostport}", f"User-Agent: {user_agent}"]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    shown = [("> " + ln) if not ln.startswith("Proxy-Authorization") else
             "> Proxy-Authorization: Basic ***" for ln in lines]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        raw = await read_head(reader, timeout)
    except TimeoutError:
        return ConnectReply(None, b"", "no answer to CONNECT (timed out)", shown)
    except OSError as exc:
        return ConnectReply(None, b"", f"connection failed during CONNECT ({exc})", shown)
    if not raw:
        return ConnectReply(None, raw, "the proxy closed the connection without answering", shown)
    resp = parse_head(raw)
    if resp is None:
        return ConnectReply(None, raw, "the answer is not HTTP", shown)
    if resp.status != 200:
        await read_body(reader, resp, min(timeout, 2.0))
    return ConnectReply(resp, raw, None, shown)


async def speaks_socks5(address: str, port: int, timeout: float) -> bool:
    """Whether ``address:port`` answers a SOCKS5 greeting (no-auth and user/password offered)
    with a SOCKS5 method choice: how a proxy port given as http:// is recognised as SOCKS."""
    opened = await connect(address, port, timeout)
    if isinstance(opened, ConnectAttempt):
        return False
    reader, writer = opened
    try:
        writer.write(b"\x05\x02\x00\x02")
        await writer.drain()
        reply = await asyncio.wait_for(reader.readexactly(2), timeout)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        close(writer)
    return reply[0] == 5 and reply[1] in (0, 2, 0xFF)


def insecure_context() -> ssl.SSLContext:
    """Capture-only context: the chain is judged afterwards against each trust store."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def peer_chain(ssl_object: Any) -> list[bytes]:
    """DER certificates the peer sent, leaf first (Python 3.13 public API, else the
    3.10-3.12 private one, else just the leaf)."""
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        inner = getattr(ssl_object, "_sslobj", None)
        getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter() or []
            out: list[bytes] = []
            for cert in chain:
                if isinstance(cert, bytes):
                    out.append(cert)
                else:
                    out.append(ssl.PEM_cert_to_DER_cert(cert.public_bytes()))
            if out:
                return out
        except (ssl.SSLError, ValueError, AttributeError):
            pass
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


@dataclass
class TlsResult:
    chain: list[bytes] = field(default_factory=list)
    version: str | None = None
    error: str | None = None
    verify_code: int | None = None
    verify_message: str = ""
    peer: dict[str, Any] | None = None


async def start_tls(
    writer: asyncio.StreamWriter, server_hostname: str, timeout: float,
    ctx: ssl.SSLContext | None = None,
) -> TlsResult:
    """TLS handshake (verification off unless ``ctx`` verifies)."""
    try:
        await asyncio.wait_for(
            writer.start_tls(ctx or insecure_context(), server_hostname=server_hostname), timeout
        )
    except TimeoutError:
        return TlsResult(error=f"the TLS handshake timed out after {timeout:.1f} s")
    except ssl.SSLCertVerificationError as exc:
        return TlsResult(error=str(exc.verify_message or exc.reason or exc),
                         verify_code=exc.verify_code, verify_message=str(exc.verify_message or ""))
    except ssl.SSLError as exc:
        return TlsResult(error=f"{exc.reason or exc}")
    except (OSError, asyncio.IncompleteReadError) as exc:
        return TlsResult(
            error=f"connection closed during the TLS handshake ({exc or type(exc).__name__})")
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return TlsResult(error="no TLS session")
    peer = obj.getpeercert() if ctx is not None else None
    return TlsResult(chain=peer_chain(obj), version=obj.version(), peer=peer or None)


async def http_request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    method: str,
    target: str,
    host_header: str,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: float,
) -> HttpResponse | str:
    """One request; returns the response, or an error text."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    start = time.monotonic()
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        await writer.drain()
        raw = await read_head(reader, timeout)
    except TimeoutError:
        return f"no HTTP answer within {timeout:.1f} s"
    except (OSError, ssl.SSLError) as exc:
        return f"connection failed ({exc})"
    if not raw:
        return "the server closed the connection without an HTTP answer"
    resp = parse_head(raw)
    if resp is None:
        return "the answer is not HTTP: " + raw[:80].decode("iso-8859-1", "replace")
    await read_body(reader, resp, timeout, head_request=method == "HEAD")
    resp.elapsed = time.monotonic() - start
    return resp


def close(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()


def hostport(host: str, port: int, default: int = 443) -> str:
    h = f"[{host}]" if ":" in host else host
    return h if port == default else f"{h}:{port}"


def quote_userinfo(text: str) -> str:
    return quote(text, safe="")
