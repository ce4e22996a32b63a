"""Walk one route layer by layer (DNS, TCP, proxy, TLS) and hand back an open channel.

Each step calls the pure classifiers; the first failing layer ends the walk, so later
layers are reported as skipped rather than as extra, misleading failures.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ccgate.doctor.classify import (
    classify_connect,
    classify_dns,
    classify_handshake_failure,
    classify_socks_port,
    classify_tcp,
)
from ccgate.doctor.lint import Route
from ccgate.doctor.model import Finding, Severity, finding
from ccgate.doctor.net import (
    ConnectAttempt,
    Deadline,
    HttpResponse,
    basic_auth,
    close,
    connect,
    http_request,
    proxy_connect,
    resolve,
    speaks_socks5,
    start_tls,
)
from ccgate.doctor.tlscheck import classify_tls_failure, describe_chain, parse_http_date


@dataclass
class Env:
    """What every walk shares."""

    resolve: dict[str, str]
    deadline: Deadline
    connect_timeout: float
    trust: ssl.SSLContext
    ca_sources: list[str]
    user_agent: str
    claude_version: str | None = None  # what `claude --version` said (None: not found)


@dataclass
class Walk:
    route: Route
    findings: list[Finding] = field(default_factory=list)
    reached: dict[str, str] = field(default_factory=dict)  # layer -> note, for layers passed
    stopped: str | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    proxy_date: str | None = None

    def fail(self, layer: str, found: list[Finding]) -> Walk:
        self.findings.extend(found)
        self.stopped = layer
        close(self.writer)
        self.reader = self.writer = None
        return self

    @property
    def ok(self) -> bool:
        return self.stopped is None


FAMILY_GRACE = 1.0  # how long the other family may lag once one has connected


async def race_families(candidates: list[str], port: int, env: Env) -> list[
        tuple[asyncio.StreamReader, asyncio.StreamWriter] | ConnectAttempt]:
    """One attempt per address family, in parallel, happy-eyeballs style: once one connects,
    the other gets FAMILY_GRACE more, so an IPv6 black hole costs a second, not the whole
    connect timeout, when IPv4 works."""
    tasks = [asyncio.create_task(connect(a, port, env.deadline.left(env.connect_timeout)))
             for a in candidates]
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if any(not isinstance(t.result(), ConnectAttempt) for t in done):
            break
    if pending:
        _, pending = await asyncio.wait(pending, timeout=FAMILY_GRACE)
    for t in pending:
        t.cancel()
    return [t.result() if t.done() and not t.cancelled() else ConnectAttempt(
        addr, False, f"no answer within {FAMILY_GRACE:.0f} s while the other family connected "
        "at once (packets dropped)", "timeout", FAMILY_GRACE)
        for addr, t in zip(candidates, tasks, strict=True)]


def walk_address(walk: Walk, host: str) -> str:
    """The address the walk's TCP connection went to (for a second look at the same port)."""
    peer = walk.writer.get_extra_info("peername") if walk.writer is not None else None
    return str(peer[0]) if peer else host


async def _tunnel(route: Route, env: Env, walk: Walk) -> Walk:
    proxy = route.proxy
    if route.blocked_by is not None:
        walk.stopped = "config"
        return walk
    host, port = (proxy.host, proxy.port) if proxy else (route.host, route.port)
    res = await resolve(host, port, env.resolve, env.deadline.left(env.connect_timeout))
    found = classify_dns(res, role="proxy" if proxy else "")
    if found and found[0].severity is Severity.FAIL:
        return walk.fail("dns", found)
    walk.reached["dns"] = f"{host} -> {', '.join(res.addresses)}" + (
        " (--resolve)" if res.overridden else "")
    candidates = [a for a in (res.v4[:1] + res.v6[:1])]
    results = await race_families(candidates, port, env)
    attempts: list[ConnectAttempt] = []
    chosen: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    for addr, r in zip(candidates, results, strict=True):
        if isinstance(r, ConnectAttempt):
            attempts.append(r)
        else:
            attempts.append(ConnectAttempt(addr, True))
            if chosen is None:
                chosen = r
            else:
                close(r[1])
    found = classify_tcp(host, port, attempts, proxy=proxy, proxy_var=route.proxy_var)
    if chosen is None:
        return walk.fail("proxy" if proxy else "tcp", found)
    walk.findings.extend(found)
    walk.reader, walk.writer = chosen
    walk.reached["tcp"] = f"{host}:{port} connected"
    if proxy is None:
        walk.reached["proxy"] = f"direct ({route.reason})"
        return walk
    if proxy.scheme == "https":
        tls = await start_tls(walk.writer, proxy.host, env.deadline.left(env.connect_timeout))
        if tls.error is not None:
            low = tls.error.lower().replace("_", " ")
            plain = "wrong version number" in low or "record" in low
            problem = ("the proxy port speaks plain HTTP, not TLS" if plain else tls.error)
            return walk.fail("proxy", [finding(
                "env.proxy_scheme_unsupported", severity=Severity.FAIL,
                subject=route.proxy_var or "",
                var=route.proxy_var or "HTTPS_PROXY", scheme="https",
                summary=f"{route.proxy_var} says https:// but {problem} "
                        "(Claude Code fails with ERR_SOCKET_CLOSED)",
                evidence=[f"TLS handshake with {proxy.host}:{proxy.port}: {tls.error}"],
                fix=[f"Use http:// in {route.proxy_var}: "
                     f"{proxy.display.replace('https://', 'http://', 1)}"])])
    auth = basic_auth(proxy.username, proxy.password) if proxy.username is not None else None
    reply = await proxy_connect(walk.reader, walk.writer, route.host, route.port, auth=auth,
                                user_agent=env.user_agent,
                                timeout=env.deadline.left(env.connect_timeout * 2))
    var = route.proxy_var or "HTTPS_PROXY"
    found = classify_connect(proxy, var, route.host, route.port, reply)
    if found and reply.response is None and proxy.scheme == "http" and await speaks_socks5(
            walk_address(walk, host), port, env.deadline.left(env.connect_timeout)):
        found = [classify_socks_port(proxy, var, found[0].evidence)]
    if found:
        return walk.fail("proxy", found)
    if reply.response is not None:
        walk.proxy_date = reply.response.header("date")
    walk.reached["proxy"] = f"CONNECT {route.hostport} via {proxy.display}: 200"
    return walk


async def open_channel(route: Route, env: Env) -> Walk:
    walk = await _tunnel(route, env, Walk(route))
    if not walk.ok or not route.url.startswith("https://"):
        if walk.ok:
            walk.reached["tls"] = "plain http:// (no TLS)"
        return walk
    assert walk.writer is not None
    tls = await start_tls(walk.writer, route.host, env.deadline.left(env.connect_timeout * 2),
                          ctx=env.trust)
    if tls.error is None:
        issuer = ""
        if tls.peer:
            issuer_rdns = tls.peer.get("issuer", ())
            issuer = ", ".join(f"{k}={v}" for rdn in issuer_rdns for k, v in rdn)
        walk.reached["tls"] = f"{tls.version}, trusted" + (f", issuer {issuer}" if issuer else "")
        return walk
    if tls.verify_code is None:
        return walk.fail("tls", [classify_handshake_failure(
            route.host, route.port, tls.error,
            [f"TLS handshake with {route.hostport}"
             + (f" through {route.proxy.display}" if route.proxy else "") + f": {tls.error}"])])
    # Verification failed: capture the chain with verification off, for the evidence.
    close(walk.writer)
    capture = await _tunnel(route, env, Walk(route))
    chain: list[bytes] = []
    server_date: str | None = None
    if capture.ok and capture.writer is not None and capture.reader is not None:
        raw = await start_tls(capture.writer, route.host, env.deadline.left(env.connect_timeout))
        chain = raw.chain
        if raw.error is None:  # no credentials are sent on this unverified connection
            resp = await http_request(capture.reader, capture.writer, "HEAD", "/", route.host,
                                      {"User-Agent": env.user_agent}, None,
                                      env.deadline.left(2.0))
            if isinstance(resp, HttpResponse):
                server_date = resp.header("date")
        close(capture.writer)
    ref_source, ref = ("server", parse_http_date(server_date))
    if ref is None:
        ref_source, ref = ("proxy", parse_http_date(walk.proxy_date))
    return walk.fail("tls", [classify_tls_failure(
        route.host, route.port, verify_code=tls.verify_code, verify_message=tls.verify_message,
        chain=describe_chain(chain), now=datetime.now(UTC), reference_date=ref,
        reference_source=ref_source, via_proxy=route.proxy.display if route.proxy else None,
        ca_sources=env.ca_sources)])


async def fetch(
    route: Route, env: Env, method: str, headers: dict[str, str], body: bytes | None,
    target: str | None = None,
) -> tuple[Walk, HttpResponse | str | None]:
    walk = await open_channel(route, env)
    if not walk.ok or walk.reader is None or walk.writer is None:
        return walk, None
    host_header = route.host if route.port in (80, 443) else f"{route.host}:{route.port}"
    try:
        resp = await http_request(walk.reader, walk.writer, method, target or route.target,
                                  host_header, headers, body, env.deadline.left(10.0))
    finally:
        close(walk.writer)
    return walk, resp
