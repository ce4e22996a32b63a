"""Pure classifiers: observation in, findings out. No sockets here; unit-tested directly."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from ccgate.doctor.inputs import is_anthropic_host
from ccgate.doctor.mask import format_headers
from ccgate.doctor.model import Finding, Severity, finding
from ccgate.doctor.net import ConnectAttempt, ConnectReply, HttpResponse, Resolution
from ccgate.proxy_env import ProxySpec

VENDOR_HEADERS = ("server", "via", "x-squid-error", "x-cache", "proxy-agent", "x-bluecoat-via",
                  "cf-mitigated")


def response_evidence(resp: HttpResponse, prefix: str = "< ") -> list[str]:
    keep = [(k, v) for k, v in resp.headers if k.lower() in (
        *VENDOR_HEADERS, "content-type", "request-id", "proxy-authenticate", "date",
        "retry-after", "x-should-retry", "location", "www-authenticate",
    ) or k.lower().startswith("anthropic-ratelimit")]
    out = [prefix + resp.status_line, *format_headers(keep, prefix)]
    if resp.body:
        out.append(prefix + resp.text())
    return out


def vendor_of(resp: HttpResponse) -> str:
    """Who produced a response, from fingerprints (Squid, Zscaler, tinyproxy, ...)."""
    squid = resp.header("x-squid-error")
    server = resp.header("server") or ""
    agent = resp.header("proxy-agent") or ""
    body = resp.text(2000).lower()
    if squid:
        return f"squid {squid}"
    for name in ("squid", "zscaler", "tinyproxy", "proxy.py", "mitmproxy", "bluecoat", "fortigate",
                 "netskope", "cloudflare"):
        if name in server.lower() or name in agent.lower():
            return (server or agent).strip()
    if "zscaler" in body:
        return "Zscaler"
    if "fortiguard" in body or "fortinet" in body:
        return "Fortinet"
    return server.strip() or agent.strip()


# -- DNS / TCP ---------------------------------------------------------------------------


def is_sinkhole(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_unspecified or ip.is_loopback


def classify_dns(res: Resolution, *, role: str = "") -> list[Finding]:
    label = f"{role} {res.host}".strip()
    if res.error is not None and not res.addresses:
        fix = None
        if role == "proxy":
            fix = [f"The proxy host {res.host} does not resolve: check the name in the proxy "
                   "variable, or use the proxy's IP address."]
        elif not is_anthropic_host(res.host):  # a gateway: a proxy would not help reach it
            fix = [f"Check {res.host} in ANTHROPIC_BASE_URL for typos, and that this machine's "
                   "DNS (/etc/resolv.conf, VPN) knows the gateway's name; or use its IP address."]
        return [finding("dns.unresolvable", subject=res.host, host=label, problem=res.error,
                        evidence=[f"getaddrinfo({res.host}) A/AAAA: {res.error}"], fix=fix)]
    if not res.overridden and is_anthropic_host(res.host):
        bad = [a for a in res.addresses if is_sinkhole(a)]
        if bad:
            return [finding("dns.unresolvable", subject=res.host, host=res.host,
                            problem=f"sinkholed: the resolver answers {', '.join(bad)}",
                            evidence=[f"A={res.v4} AAAA={res.v6}"],
                            fix=["A DNS filter blocks the name: ask IT to allow "
                                 "api.anthropic.com, or use the corporate proxy."])]
    return []


def classify_tcp(
    host: str, port: int, attempts: list[ConnectAttempt], *, proxy: ProxySpec | None = None,
    proxy_var: str | None = None,
) -> list[Finding]:
    ok4 = [a for a in attempts if a.ok and ":" not in a.address]
    ok6 = [a for a in attempts if a.ok and ":" in a.address]
    bad6 = [a for a in attempts if not a.ok and ":" in a.address]
    ev = [f"connect {a.address}:{port}: " + ("ok" if a.ok else f"{a.error}") for a in attempts]
    if ok4 or ok6:
        if bad6 and ok4 and not ok6:
            return [finding("net.ipv6_broken", subject=host, host=host, problem=bad6[0].error,
                            evidence=ev)]
        return []
    problem = attempts[0].error if attempts else "no address"
    if proxy is not None:
        return [finding("proxy.unreachable", subject=proxy.display, proxy=proxy.display,
                        problem=f"TCP connect to {proxy.host}:{proxy.port} failed: {problem}",
                        var=proxy_var or "HTTPS_PROXY", evidence=ev)]
    return [finding("net.tcp_blocked", subject=f"{host}:{port}", host=host, port=port,
                    problem=problem, evidence=ev)]


# -- proxy CONNECT -----------------------------------------------------------------------


def auth_schemes(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        for part in re.split(r",\s*(?=[A-Za-z]+(?:\s|$))", v):
            scheme = part.strip().split(" ", 1)[0]
            if scheme and "=" not in scheme and scheme not in out:
                out.append(scheme)
    return out


def classify_connect(
    proxy: ProxySpec, proxy_var: str, host: str, port: int, reply: ConnectReply
) -> list[Finding]:
    ev = list(reply.sent)
    if reply.response is None:
        raw = reply.raw[:1]
        problem = reply.error or "no answer"
        if raw == b"\x05" or raw == b"\x00":
            problem = "it answered like a SOCKS server, not an HTTP proxy"
        elif raw == b"\x15" or raw == b"\x16":
            problem = "it answered with TLS: the proxy port expects https://"
        elif reply.raw:
            ev.append("< " + reply.raw[:120].decode("iso-8859-1", "replace"))
        return [finding("proxy.unreachable", subject=proxy.display, proxy=proxy.display,
                        problem=problem, var=proxy_var, evidence=ev)]
    resp = reply.response
    ev += response_evidence(resp)
    if resp.status == 200:
        return []
    vendor = vendor_of(resp)
    vtext = f", {vendor}" if vendor else ""
    common: dict[str, Any] = {"subject": proxy.display, "proxy": proxy.display, "var": proxy_var,
              "host": host, "port": port, "status": resp.status, "vendor": vtext,
              "hostport": f"{proxy.host}:{proxy.port}", "evidence": ev}
    if resp.status == 407:
        schemes = auth_schemes(resp.getall("proxy-authenticate"))
        if schemes and not any(s.lower() == "basic" for s in schemes):
            return [finding("proxy.auth_scheme_unsupported", schemes="/".join(schemes), **common)]
        problem, fix = proxy_auth_problem(proxy, proxy_var)
        offered = ", ".join(schemes) or "none"
        common["evidence"] = [*ev, f"schemes offered: {offered}"]
        return [finding("proxy.auth_required", problem=problem, fix=fix, **common)]
    if resp.status in (502, 503, 504):
        return [finding("proxy.upstream_failed", **common)]
    if 400 <= resp.status < 500:
        return [finding("proxy.denied", **common)]
    return [finding("proxy.upstream_failed", **common)]


def proxy_auth_problem(proxy: ProxySpec, var: str) -> tuple[str, list[str] | None]:
    """What is wrong with the proxy credentials, and the fix for that case (None: the
    catalogue's, which adds missing credentials)."""
    hostport = f"{proxy.host}:{proxy.port}"
    if proxy.username is None:
        return "no credentials in " + var, None
    if not proxy.password:
        return (f"{var} names user {proxy.username!r} but has no password", [
            f"Add the password after the user name, percent-encoded: "
            f"{var}=http://{proxy.username}:PASSWORD@{hostport} (@ -> %40, : -> %3A, / -> %2F)."])
    problem = f"it rejected the credentials of user {proxy.username!r}"
    fix = [f"The proxy refused user {proxy.username!r} with this password: check the user name "
           f"and password in {var} (a changed or expired domain password, a locked account), "
           "keeping special characters percent-encoded (@ -> %40, : -> %3A, / -> %2F)."]
    if re.search(r"[@:/%#? ]", proxy.password):
        problem += " (the password has special characters: are they percent-encoded?)"
    return problem, fix


def classify_socks_port(proxy: ProxySpec, var: str, evidence: list[str]) -> Finding:
    """The HTTP proxy variable points at a port that speaks SOCKS5."""
    return finding(
        "proxy.unreachable", subject=proxy.display, proxy=proxy.display, var=var,
        problem=f"{proxy.host}:{proxy.port} is a SOCKS5 proxy, given as http://",
        evidence=[*evidence, "a SOCKS5 greeting on the same port got a SOCKS5 answer"],
        fix=[f"Claude Code cannot use a SOCKS proxy: set {var} to the HTTP proxy port if there "
             f"is one, or run `ccgate serve` with proxy: socks5://{proxy.host}:{proxy.port} for "
             "its provider and point ANTHROPIC_BASE_URL at the gateway (no proxy variables)."])


def classify_handshake_failure(host: str, port: int, error: str, evidence: list[str]) -> Finding:
    """A handshake that ended without a certificate verdict. A reset or close right after our
    ClientHello is a middlebox judging the SNI name; a stall is the classic MTU/VPN case."""
    common: dict[str, Any] = {"subject": f"{host}:{port}", "host": host, "port": port,
                              "evidence": evidence}
    if re.search(r"reset|closed|EOF", error, re.I):
        return finding("tls.handshake_failed", problem=f"{error}; the connection was cut right "
                       f"after the ClientHello naming {host}", fix=[
                           f"Something in between drops TLS for the name {host} (SNI filtering "
                           "by a firewall or transparent proxy): ask IT to allow it, or use "
                           "the corporate proxy (HTTPS_PROXY) if that is the sanctioned way out."],
                       **common)
    return finding("tls.handshake_failed", problem=error, **common)


# -- HTTP: Claude Code's preflight -------------------------------------------------------


def is_region_block(resp: HttpResponse) -> bool:
    if resp.status != 403:
        return False
    data = resp.json()
    if not isinstance(data, dict):
        return False
    err = data.get("error")
    return isinstance(err, dict) and (
        err.get("type") == "forbidden"
        or str(err.get("message", "")).strip().lower() == "request not allowed"
    ) and "request not allowed" in str(err.get("message", "")).lower()


def intermediary(resp: HttpResponse) -> bool:
    """An answer that did not come from the API: HTML, vendor headers, no request-id."""
    ctype = (resp.header("content-type") or "").lower()
    if resp.header("x-squid-error") or "zscaler" in (resp.header("server") or "").lower():
        return True
    if "html" in ctype and resp.status >= 300:
        return True
    return resp.header("request-id") is None and resp.status >= 300 and not is_region_block(resp)


def is_html(resp: HttpResponse) -> bool:
    ctype = (resp.header("content-type") or "").lower()
    return "html" in ctype or resp.text(200).lstrip().lower().startswith(("<!doctype", "<html"))


def is_api_success(resp: HttpResponse) -> bool:
    """A 2xx in the API's shape: JSON with a message or a token count. Claude Code rejects
    anything else ("API returned an empty or malformed response (HTTP 200)")."""
    data = resp.json()
    if is_html(resp) or not isinstance(data, dict):
        return False
    return "input_tokens" in data or data.get("type") == "message"


def preflight_message(host: str, status: int) -> str:
    return (f"Claude Code prints: 'Failed to connect to {host}: Status {status}' "
            f"(before 2.1.222: ERR_{'BAD_REQUEST' if status < 500 else 'BAD_RESPONSE'})")


def classify_preflight(url: str, host: str, resp: HttpResponse) -> list[Finding]:
    ev = [f"> GET {url}", *response_evidence(resp)]
    if resp.status == 200 and not is_html(resp):
        return []
    if resp.status != 200:
        ev.append(preflight_message(host, resp.status))
    if is_region_block(resp):
        return [finding("api.region_blocked", subject=host, host=host, evidence=ev)]
    vendor = vendor_of(resp)
    return [finding("http.intermediary_response", subject=host, url=url, status=resp.status,
                    vendor=f", {vendor}" if vendor else "", evidence=ev)]


# -- API ---------------------------------------------------------------------------------

MALFORMED_200_NOTE = ("Claude Code shows this as 'API returned an empty or malformed response "
                      "(HTTP 200)'.")

RELAY_PATTERNS = re.compile(
    r"分组|已被弃用|额度|令牌|余额|渠道|new_api_error|one_api_error|无可用|group .*(deprecated|"
    r"disabled|not)|quota|insufficient (balance|credit)|token (group|quota)", re.I)


OAUTH_EXPIRED = re.compile(r"oauth token has expired", re.I)

# A 400 for Claude Code's beta header or the body fields those betas add.
BETA_REJECTION = re.compile(r"anthropic-beta|unexpected value\(s\)|"
                            r"context_management: extra inputs", re.I)


@dataclass
class ApiContext:
    url: str
    base: str
    host: str
    model: str
    credential_display: str
    credential_var: str
    sent_header: str


def error_message(resp: HttpResponse) -> tuple[str | None, str]:
    """(error type, message) of an Anthropic-shaped or OpenAI/relay-shaped error body."""
    data = resp.json()
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return (str(err.get("type")) if err.get("type") else None,
                    str(err.get("message", "")).strip())
        if isinstance(err, str):
            return None, err
        for key in ("message", "detail", "msg"):
            if isinstance(data.get(key), str):
                return None, str(data[key])
    return None, resp.text(200)


def is_anthropic_envelope(resp: HttpResponse) -> bool:
    data = resp.json()
    return isinstance(data, dict) and data.get("type") == "error" and isinstance(
        data.get("error"), dict)


def mentions_model(message: str, model: str) -> bool:
    low = message.lower()
    return (model.lower() in low or "model" in low) and bool(
        re.search(r"not.?found|not exist|unknown|invalid|not supported|no such|"
                  r"not available|unsupported", low) or low.startswith("model:"))


def classify_api(ctx: ApiContext, resp: HttpResponse, *, sent: list[str]) -> list[Finding]:
    """Classify the answer to the authenticated minimal call (count_tokens or messages)."""
    ev = [*sent, *response_evidence(resp)]
    etype, message = error_message(resp)
    common: dict[str, Any] = {
        "subject": ctx.host, "host": ctx.host, "url": ctx.url, "status": resp.status,
              "message": message or resp.reason, "evidence": ev}
    if 200 <= resp.status < 300 and not is_api_success(resp):
        vendor = vendor_of(resp)
        return [finding("http.intermediary_response", vendor=f", {vendor}" if vendor else "",
                        extra_fix=[MALFORMED_200_NOTE], **common)]
    if 200 <= resp.status < 300:
        return [finding("api.ok", subject=ctx.host, evidence=ev,
                        summary_text=f"{ctx.base} answers as the Anthropic API and accepts "
                                     f"{ctx.credential_display} (model {ctx.model})")]
    if ccgate_request_id(resp) and resp.status in (502, 504):
        return [classify_ccgate_upstream(ctx, resp, message, ev)]
    relay = bool(RELAY_PATTERNS.search(resp.text(2000))) and not is_region_block(resp)
    if relay and resp.status in (400, 401, 402, 403, 429, 503):
        return [finding("relay.account_config_error", **common)]
    if is_region_block(resp):
        return [finding("api.region_blocked", subject=ctx.host, host=ctx.host, evidence=ev)]
    if resp.status in (400, 422) and BETA_REJECTION.search(message):
        return [finding("api.beta_rejected", **common)]
    if resp.status in (401, 403) and intermediary(resp) and not is_anthropic_envelope(resp) and (
        "html" in (resp.header("content-type") or "") or resp.header("x-squid-error")
    ):
        vendor = vendor_of(resp)
        return [finding("http.intermediary_response", vendor=f", {vendor}" if vendor else "",
                        **common)]
    if resp.status == 401 and OAUTH_EXPIRED.search(message):
        return [finding("api.oauth_expired", **common)]
    if resp.status == 401 or (resp.status == 403 and etype in (
            "authentication_error", "permission_error")):
        return [finding("api.invalid_key", credential=ctx.credential_display,
                        var=ctx.credential_var, **common)]
    if resp.status == 404 or (resp.status == 400 and mentions_model(message, ctx.model)):
        if mentions_model(message, ctx.model) and (
                resp.status == 400 or "model" in message.lower()):
            return [finding("api.model_not_found", model=ctx.model, **common)]
        if resp.status == 404:
            return [finding("api.wrong_path", base=ctx.base, **common)]
    if resp.status == 429:
        retry = resp.header("retry-after")
        return [finding("api.rate_limited", retry=f", retry after {retry} s" if retry else "",
                        **common)]
    if resp.status == 529 or etype == "overloaded_error":
        return [finding("api.overloaded", **common)]
    if intermediary(resp):
        vendor = vendor_of(resp)
        return [finding("http.intermediary_response", vendor=f", {vendor}" if vendor else "",
                        **common)]
    if resp.status >= 500:
        return [finding("api.server_error", **common)]
    return [finding("api.unexpected_response", **common)]


def ccgate_request_id(resp: HttpResponse) -> str | None:
    """The request id when a ccgate gateway wrote the answer (its ids start req_ccgate_)."""
    data = resp.json()
    body_id = data.get("request_id") if isinstance(data, dict) else None
    for rid in (resp.header("request-id"), body_id):
        if isinstance(rid, str) and rid.startswith("req_ccgate_"):
            return rid
    return None


# ccgate's 502/504 messages name the hop behind it (ccgate/upstream/failures.py).
GATEWAY_HOP_FIXES = (
    (re.compile(r"^(SOCKS )?proxy|via proxy", re.I),
     "the proxy the gateway uses for this provider: check providers[].proxy in the gateway's "
     "config (URL, credentials), or ask IT to allow the provider's host through it"),
    (re.compile(r"^TLS|certificate", re.I),
     "TLS from the gateway to the provider: give the gateway the inspecting proxy's root CA "
     "(tls.ca_file, or tls.use_system_store: true)"),
    (re.compile(r"^DNS", re.I),
     "DNS on the gateway's host: it cannot resolve the provider's name"),
    (re.compile(r"timed out", re.I),
     "the provider or the network behind the gateway is too slow or drops packets"),
)


def classify_ccgate_upstream(ctx: ApiContext, resp: HttpResponse, message: str,
                             ev: list[str]) -> Finding:
    """A ccgate gateway answered and says which hop behind it failed: that hop is the cause,
    not the gateway, and "retry later" is the wrong advice."""
    hop = next((fix for pattern, fix in GATEWAY_HOP_FIXES if pattern.search(message)),
               "the provider behind the gateway (its address and keys in the gateway's config)")
    return finding("gateway.upstream_failed", subject=ctx.host, host=ctx.host,
                   status=resp.status, message=message, hop=hop, evidence=ev)


def is_openai_model_list(resp: HttpResponse) -> bool:
    """``GET /v1/models`` in OpenAI's shape: ``{"object": "list", "data": [{"object":
    "model", ...}]}`` (Anthropic's has ``type`` and ``display_name`` instead)."""
    data = resp.json()
    if not (200 <= resp.status < 300 and isinstance(data, dict)):
        return False
    items = data.get("data")
    if not isinstance(items, list):
        return False
    return data.get("object") == "list" or any(
        isinstance(m, dict) and m.get("object") == "model" for m in items)


def classify_openai_compatible(ctx: ApiContext, models_url: str, resp: HttpResponse,
                               earlier: list[str]) -> Finding:
    return finding("api.openai_compatible", subject=ctx.host, host=ctx.host, base=ctx.base,
                   evidence=[*earlier, f"> GET {models_url}", *response_evidence(resp)])


def classify_unauthenticated(ctx: ApiContext, resp: HttpResponse, *, sent: list[str]) -> Finding:
    """No credential. Against Anthropic a 401 still proves the path (a /login subscription is
    not testable here): a warning. A gateway that demands a credential fails every call."""
    found = classify_api(ctx, resp, sent=sent)
    if found and found[0].id == "api.invalid_key":
        if is_anthropic_host(ctx.host):
            return finding("api.no_credential", subject=ctx.host, host=ctx.host,
                           evidence=found[0].evidence, severity=Severity.WARN,
                           summary=f"no credential to test with; {ctx.host} is reachable and "
                                   "answered as the API does")
        return finding("api.no_credential", subject=ctx.host, host=ctx.host,
                       status=resp.status, evidence=found[0].evidence)
    return found[0]
