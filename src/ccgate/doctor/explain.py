"""``--explain``: decode the error text a user saw, from any Claude Code version.

Data-driven: each rule is a regex, what the message means, and the finding ids that can
cause it. Rules are tried in order; every match contributes (a pasted screen often holds
two clues, e.g. ``Status 403`` and ``A proxy is configured``).
"""

from __future__ import annotations

import re

from ccgate.doctor.model import Explanation

AUTH_REJECTED = (r"API Error:? 401|Invalid API key|invalid x-api-key|authentication_error|"
                 r"Please run /login")

RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (r"empty or malformed response",
     "The call got an answer that is not the API's (an HTML page, an empty body): a proxy, "
     "firewall or captive portal answered in the API's place.",
     ("http.intermediary_response",)),
    (r"Unexpected value\(s\)|anthropic-beta|Extra inputs are not permitted",
     "The endpoint (or a gateway or proxy in front of it) rejects the anthropic-beta values or "
     "the body fields Claude Code sends.",
     ("api.beta_rejected",)),
    (r"req_ccgate_|provider '[^']+' \(|could not reach provider|refused the connection to "
     r"provider",
     "A ccgate gateway answered: Claude Code reached it, and the gateway names the hop behind "
     "it (its proxy, TLS, DNS or the provider) that failed.",
     ("gateway.upstream_failed",)),
    (r"Not logged in",
     "Claude Code has no credential to send (no key, token or login), so it makes no request; "
     "a gateway needs its client token in ANTHROPIC_AUTH_TOKEN.",
     ("api.no_credential",)),
    (r"OAuth token has expired",
     "The claude.ai login (OAuth token) Claude Code sends has expired.",
     ("api.oauth_expired",)),
    (r"Request timed out",
     "No answer in time: the endpoint, a proxy or the network dropped or held the request.",
     ("http.no_response", "net.tcp_blocked", "proxy.unreachable", "dns.unresolvable")),
    (r"Auth conflict",
     "Two credentials are configured (a token and an API key, or a stored /login); Claude "
     "Code uses the token and warns.",
     ("env.auth_conflict",)),
    (r"Request not allowed",
     "Anthropic refused the request because of where it comes from: the region block.",
     ("api.region_blocked", "claude.preflight_will_run")),
    (r"分组|已被弃用|new_api_error|one_api_error|额度|令牌",
     "A third-party relay (new-api / one-api family) refused the request for an account, "
     "group or quota setting; this is the relay's own error, not Anthropic's.",
     ("relay.account_config_error",)),
    (r"\bERR_BAD_REQUEST\b|Status 4\d\d\b",
     "TCP and TLS worked; the server (or something impersonating it) answered with a 4xx. On "
     "the first-run screen this is Claude Code's own connectivity check to api.anthropic.com, "
     "which ignores ANTHROPIC_BASE_URL.",
     ("api.region_blocked", "http.intermediary_response", "claude.preflight_will_run",
      "proxy.denied")),
    (r"\bERR_BAD_RESPONSE\b|Status 5\d\d\b",
     "The server or a proxy answered with a 5xx.",
     ("proxy.upstream_failed", "api.overloaded", "http.intermediary_response")),
    (r"\bERR_SOCKET_CLOSED\b|\bERR_PROXY_TUNNEL\b|proxy refused the (connection|tunnel)|"
     r"Couldn't connect through your proxy",
     "The proxy closed or refused the CONNECT tunnel (407 authentication, 403 policy, 502 "
     "upstream), or an https:// proxy URL points at a plain-HTTP proxy port.",
     ("proxy.auth_required", "proxy.auth_scheme_unsupported", "proxy.denied",
      "proxy.upstream_failed", "env.proxy_scheme_unsupported")),
    (r"A proxy is configured via",
     "Claude Code used a proxy for this request (from HTTPS_PROXY or HTTP_PROXY).",
     ("proxy.denied", "proxy.auth_required", "http.intermediary_response")),
    (r"SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|"
     r"UNABLE_TO_VERIFY_LEAF_SIGNATURE|[Ss]elf-signed certificate|certificate verify failed|"
     r"DEPTH_ZERO_SELF_SIGNED_CERT",
     "The TLS certificate chain is not trusted: usually a TLS-inspecting proxy or firewall "
     "whose root CA Claude Code does not know (NODE_EXTRA_CA_CERTS).",
     ("tls.intercepted_untrusted", "tls.untrusted", "env.ca_file_invalid")),
    (r"CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|certificate has expired",
     "The certificate is outside its validity period: an expired certificate, or this "
     "machine's clock is wrong.",
     ("tls.expired_or_clock_skew",)),
    (r"ERR_TLS_CERT_ALTNAME_INVALID|Hostname/IP does not match",
     "The certificate is for another name: a captive portal, wrong DNS, or the wrong port.",
     ("tls.untrusted",)),
    (r"\bENOTFOUND\b|\bEAI_AGAIN\b|getaddrinfo",
     "A name did not resolve (DNS).",
     ("dns.unresolvable", "proxy.unreachable")),
    (r"\bECONNREFUSED\b|\bEHOSTUNREACH\b|\bENETUNREACH\b|\bETIMEDOUT\b|timed out after 10 "
     r"seconds|fetch failed|Connection error",
     "No TCP path: a firewall, a closed port, a proxy that does not answer, or no proxy where "
     "one is required.",
     ("net.tcp_blocked", "proxy.unreachable", "dns.unresolvable", "net.ipv6_broken",
      "proxy.auth_scheme_unsupported")),
    (r"\b407\b|Proxy Authentication Required",
     "The proxy wants credentials.",
     ("proxy.auth_required", "proxy.auth_scheme_unsupported")),
    (AUTH_REJECTED,
     "The endpoint rejected the credential: a wrong or revoked key, or the key sent in the "
     "header this endpoint does not read (x-api-key vs Authorization: Bearer).",
     ("api.invalid_key", "api.wrong_credential_header", "env.auth_conflict")),
    (r"API Error:? 403|permission_error|\bforbidden\b",
     "The endpoint or something in between refused the request (403).",
     ("api.region_blocked", "relay.account_config_error", "http.intermediary_response",
      "api.invalid_key")),
    (r"issue with the selected model|API Error:? 404|404 page not found|not_found_error",
     "The request reached a server that does not know the path or the model: a base URL with "
     "/v1 or a provider root instead of its Anthropic path, or an unknown model id.",
     ("env.base_url_has_v1", "api.wrong_path", "api.openai_compatible", "api.model_not_found")),
    (r"API Error:? 429|rate_limit_error|[Rr]ate limit",
     "The credential is rate limited.",
     ("api.rate_limited",)),
    (r"API Error:? 529|overloaded_error|Overloaded",
     "The API is overloaded (temporary).",
     ("api.overloaded",)),
    (r"Unable to connect to Anthropic services",
     "Claude Code's first-run connectivity check failed (it tests api.anthropic.com and "
     "platform.claude.com directly, whatever ANTHROPIC_BASE_URL says).",
     ("claude.preflight_will_run",)),
)


# A generic rule is left out when a more specific one explains the same words (Claude Code
# appends "Please run /login" to an expired-token message; that is not a wrong key).
UNLESS: dict[str, str] = {AUTH_REJECTED: r"OAuth token has expired|Not logged in"}


def decode(text: str) -> Explanation:
    meanings: list[str] = []
    candidates: list[str] = []
    for pattern, meaning, ids in RULES:
        unless = UNLESS.get(pattern)
        if re.search(pattern, text) and not (unless and re.search(unless, text)):
            if meaning not in meanings:
                meanings.append(meaning)
            candidates += [i for i in ids if i not in candidates]
    host = None
    m = re.search(r"Failed to connect to ([A-Za-z0-9.-]+)", text)
    if m:
        host = m.group(1)
    status = None
    m = re.search(r"(?:Status|API Error:?)\s+(\d{3})\b", text)
    if m:
        status = int(m.group(1))
    code = None
    m = re.search(r"\b(ERR_[A-Z_]+|E[A-Z]{4,}|[A-Z_]*CERT[A-Z_]*)\b", text)
    if m:
        code = m.group(1)
    if not meanings:
        meanings.append("This message is not in the doctor's table; the checks below look at "
                        "every layer anyway.")
    return Explanation(text=text, meaning=" ".join(meanings), candidates=candidates,
                       host=host, status=status, code=code)
