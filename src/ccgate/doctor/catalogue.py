"""The findings catalogue, as data: stable id -> layer, default severity, summary, fix.

Summaries and fixes are templates; ``{name}`` placeholders are filled by the check that
emits the finding (``{subject}`` is always available). Checks may replace the fix with
lines specific to the user's shell and files. The ids are a public contract (``--json``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

LAYER_ORDER = ("config", "claude", "dns", "tcp", "proxy", "tls", "http", "api")


@dataclass(frozen=True)
class Entry:
    layer: str
    severity: str  # default severity: ok | warn | fail
    summary: str
    fix: tuple[str, ...] = ()


CATALOGUE: dict[str, Entry] = {
    # -- configuration lint ------------------------------------------------------------
    "env.proxy_malformed": Entry(
        "config", "fail",
        "{var} is not a usable proxy URL: {problem}",
        ("Set {var} to a full URL such as http://proxy.example:3128 "
         "(percent-encode @ : / in credentials).",),
    ),
    "env.proxy_case_conflict": Entry(
        "config", "warn",
        "{lower} and {upper} are both set, to different values; Claude Code uses {winner}",
        ("Give both variables the same value, or unset one of them.",),
    ),
    "env.proxy_scheme_unsupported": Entry(
        "config", "fail",
        "{var} uses the {scheme}:// scheme, which Claude Code cannot use for its traffic",
        ("Point {var} at an HTTP proxy (http://host:port), or run `ccgate serve` with the "
         "proxy in its config and let Claude Code talk to the gateway without proxy variables.",),
    ),
    "env.no_proxy_bypasses_api": Entry(
        "config", "warn",
        "{var} entry {entry} sends {host} around the proxy (direct connection)",
        ("Remove {entry} from {var}, or list only the internal hosts that must bypass "
         "the proxy.",),
    ),
    "env.no_proxy_misses_gateway": Entry(
        "config", "fail",
        "the gateway {host} is not in {var}, so Claude Code sends gateway traffic to the proxy",
        ("Add {host} to NO_PROXY (exact host: localhost does not cover 127.0.0.1), "
         "or unset the proxy variables for Claude Code and let the gateway use the proxy.",),
    ),
    "env.auth_conflict": Entry(
        "config", "warn",
        "two credentials are set ({sources}); Claude Code warns 'Auth conflict' and uses {winner}",
        ("Keep one credential: unset the other (for a gateway token: ANTHROPIC_API_KEY=\"\"), "
         "or run /logout in Claude Code to drop a stored login.",),
    ),
    "env.base_url_has_v1": Entry(
        "config", "fail",
        "ANTHROPIC_BASE_URL ends in /v1 ({url}); Claude Code appends /v1/messages itself",
        ("Set ANTHROPIC_BASE_URL={fixed}",),
    ),
    "env.base_url_malformed": Entry(
        "config", "fail",
        "ANTHROPIC_BASE_URL is not an http(s) URL: {url}",
        ("Set ANTHROPIC_BASE_URL to the provider's Anthropic endpoint, e.g. https://api.anthropic.com",),
    ),
    "env.ca_file_invalid": Entry(
        "config", "warn",
        "{var} = {path}: {problem}",
        ("Export the corporate root CA as PEM (-----BEGIN CERTIFICATE-----) and point "
         "{var} at it.",),
    ),
    "claude.preflight_will_run": Entry(
        "claude", "warn",
        "Claude Code's first interactive start will check api.anthropic.com and "
        "platform.claude.com directly, ignoring ANTHROPIC_BASE_URL ({reason})",
        ("Seed the onboarding flag: add \"hasCompletedOnboarding\": true to {global_config}, "
         "or use ANTHROPIC_AUTH_TOKEN instead of ANTHROPIC_API_KEY "
         "(`ccgate setup claude-code` does both safely).",),
    ),
    "claude.settings_unreadable": Entry(
        "claude", "warn",
        "{path} is not valid JSON ({problem}); Claude Code ignores it",
        ("Fix the JSON syntax in {path}.",),
    ),
    # -- DNS / TCP ------------------------------------------------------------------------
    "dns.unresolvable": Entry(
        "dns", "fail",
        "{host} does not resolve ({problem})",
        ("Check the name for typos and the DNS resolver (/etc/resolv.conf, VPN); "
         "behind a corporate network, set HTTPS_PROXY so the proxy resolves the name.",),
    ),
    "net.tcp_blocked": Entry(
        "tcp", "fail",
        "no TCP connection to {host}:{port} ({problem})",
        ("Allow outbound TCP to {host}:{port} in the firewall, or set HTTPS_PROXY to the "
         "proxy that is allowed to reach it.",),
    ),
    "net.ipv6_broken": Entry(
        "tcp", "warn",
        "{host} has IPv6 addresses but IPv6 connections fail ({problem}); IPv4 works",
        ("Prefer IPv4: export NODE_OPTIONS=--dns-result-order=ipv4first, or add "
         "'precedence ::ffff:0:0/96 100' to /etc/gai.conf; or fix the IPv6 route.",),
    ),
    # -- proxy ----------------------------------------------------------------------------
    "proxy.unreachable": Entry(
        "proxy", "fail",
        "the proxy {proxy} cannot be used: {problem}",
        ("Check the proxy host and port in {var} (ask IT for the exact address; "
         "a URL without a port means 1080 to curl and 80 to most others).",),
    ),
    "proxy.auth_required": Entry(
        "proxy", "fail",
        "the proxy {proxy} requires authentication ({problem})",
        ("Put the credentials in the proxy URL, percent-encoded: "
         "{var}=http://USER:PASSWORD@{hostport} (@ -> %40, : -> %3A, / -> %2F).",),
    ),
    "proxy.auth_scheme_unsupported": Entry(
        "proxy", "fail",
        "the proxy {proxy} only accepts {schemes} authentication; Claude Code can only do Basic",
        ("Run a local authenticating forwarder (px-proxy, cntlm) and point {var} at it, or run "
         "`ccgate serve` behind it and let Claude Code use the gateway without proxy variables.",),
    ),
    "proxy.denied": Entry(
        "proxy", "fail",
        "the proxy {proxy} refuses to connect to {host}:{port} (HTTP {status}{vendor})",
        ("Ask IT to allow CONNECT to api.anthropic.com:443 and platform.claude.com:443 "
         "for your user or machine (quote the evidence below).",),
    ),
    "proxy.upstream_failed": Entry(
        "proxy", "fail",
        "the proxy {proxy} could not reach {host}:{port} (HTTP {status}{vendor})",
        ("The proxy itself cannot reach the API: ask IT to check its DNS and egress to "
         "{host}:{port} (quote the evidence below).",),
    ),
    # -- TLS ------------------------------------------------------------------------------
    "tls.intercepted_untrusted": Entry(
        "tls", "fail",
        "TLS to {host} is intercepted by {interceptor}, whose root CA Claude Code does not trust",
        ("Export the interception root CA as PEM and run: "
         "export NODE_EXTRA_CA_CERTS=/path/to/corp-root.pem "
         "(never NODE_TLS_REJECT_UNAUTHORIZED=0).",),
    ),
    "tls.untrusted": Entry(
        "tls", "fail",
        "the certificate of {host} is not trusted ({problem})",
        ("Give the issuing CA as PEM with --ca-file / NODE_EXTRA_CA_CERTS, or fix the "
         "server's certificate chain.",),
    ),
    "tls.expired_or_clock_skew": Entry(
        "tls", "fail",
        "the certificate of {host} is outside its validity period ({problem})",
        ("If this machine's clock is wrong, fix it (timedatectl set-ntp true); otherwise the "
         "server or proxy must renew its certificate.",),
    ),
    "tls.handshake_failed": Entry(
        "tls", "fail",
        "the TLS handshake with {host} failed ({problem})",
        ("Check that {host}:{port} speaks TLS and that no middlebox drops large packets "
         "(VPN MTU).",),
    ),
    # -- HTTP / API -----------------------------------------------------------------------
    "http.intermediary_response": Entry(
        "http", "fail",
        "{url} was answered by something in between, not by the API (HTTP {status}{vendor})",
        ("A proxy, firewall or TLS inspector answered instead of Anthropic: ask IT to allow "
         "api.anthropic.com and platform.claude.com (quote the evidence below).",),
    ),
    "http.no_response": Entry(
        "http", "fail",
        "{url} gave no usable HTTP answer ({problem})",
        ("Check that the URL points at an HTTP(S) endpoint that is up (evidence below).",),
    ),
    "api.region_blocked": Entry(
        "api", "fail",
        "{host} answered 403 'Request not allowed': this network's egress is in a region "
        "Anthropic does not serve",
        ("Use a network or proxy in a supported country "
         "(https://anthropic.com/supported-countries): "
         "export HTTPS_PROXY=http://HOST:PORT, or run `ccgate serve` with an upstream proxy or a "
         "different provider.",),
    ),
    "api.invalid_key": Entry(
        "api", "fail",
        "{host} rejected the credential {credential} (HTTP {status}: {message})",
        ("Create a new key (https://console.anthropic.com/settings/keys, or your gateway's key "
         "command) and set {var}.",),
    ),
    "api.oauth_expired": Entry(
        "api", "fail",
        "{host} says the claude.ai login token has expired (HTTP {status}: {message})",
        ("Log in again: run /login in Claude Code (or `claude setup-token` and set "
         "CLAUDE_CODE_OAUTH_TOKEN to the new long-lived token); no console API key is needed.",),
    ),
    "api.wrong_credential_header": Entry(
        "api", "fail",
        "{host} rejects the credential in {sent_header} but accepts it in {good_header}",
        ("{fix_line}",),
    ),
    "api.wrong_path": Entry(
        "api", "fail",
        "{url} does not exist (HTTP 404): ANTHROPIC_BASE_URL {base} is not an Anthropic "
        "Messages endpoint",
        ("Set ANTHROPIC_BASE_URL to the provider's Anthropic-compatible root (without /v1), e.g. "
         "https://api.deepseek.com/anthropic, https://openrouter.ai/api, or your gateway's URL.",),
    ),
    "api.openai_compatible": Entry(
        "api", "fail",
        "ANTHROPIC_BASE_URL {base} is an OpenAI-compatible API (/v1/models in OpenAI's shape, "
        "no Anthropic /v1/messages); Claude Code speaks only the Anthropic Messages API",
        ("Put ccgate in between: `ccgate connect --base-url {base} --kind openai-compatible "
         "--key env:VAR` (it saves the provider and points Claude Code at the gateway), or add "
         "it as an openai provider to `ccgate serve`'s config and set ANTHROPIC_BASE_URL to "
         "the gateway.",),
    ),
    "api.model_not_found": Entry(
        "api", "fail",
        "{host} does not know the model {model} (HTTP {status}: {message})",
        ("Choose a model the endpoint serves: export ANTHROPIC_MODEL=<id> (and "
         "ANTHROPIC_DEFAULT_HAIKU_MODEL for background calls).",),
    ),
    "api.rate_limited": Entry(
        "api", "warn",
        "{host} is rate limiting this credential (HTTP 429{retry})",
        ("Wait and retry, lower concurrency, or raise the limit of the key / workspace.",),
    ),
    "api.overloaded": Entry(
        "api", "warn",
        "{host} is overloaded (HTTP {status}); this is temporary",
        ("Retry later; Claude Code retries by itself. A gateway fallback provider avoids it.",),
    ),
    "api.server_error": Entry(
        "api", "fail",
        "{host} answered HTTP {status}: {message}",
        ("Retry later; if it persists, report the request-id to the provider.",),
    ),
    "api.unexpected_response": Entry(
        "api", "fail",
        "{url} answered HTTP {status}: {message}",
        ("Check ANTHROPIC_BASE_URL and the request the endpoint expects (evidence below).",),
    ),
    "api.no_credential": Entry(
        "api", "fail",
        "{host} demands a credential and none is set (HTTP {status}), so every Claude Code "
        "call fails",
        ("Set the gateway's client token: export ANTHROPIC_AUTH_TOKEN=<token> (sent as "
         "Authorization: Bearer; for ccgate, a token from server.auth.tokens), or "
         "ANTHROPIC_API_KEY=<key> if the endpoint reads x-api-key.",),
    ),
    "api.beta_rejected": Entry(
        "api", "fail",
        "{host} rejects the anthropic-beta values Claude Code sends (HTTP {status}: {message})",
        ("Claude Code sends these betas on every call: make the gateway or proxy forward "
         "anthropic-beta unchanged (no allowlist), or trim them on the client with "
         "export CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS=1 (claude-code-20250219 is still sent).",),
    ),
    "gateway.upstream_failed": Entry(
        "api", "fail",
        "the ccgate gateway at {host} is reachable, but its own upstream failed "
        "(HTTP {status}): {message}",
        ("Claude Code's side works; fix the hop behind the gateway, where the gateway runs: "
         "{hop}. `ccgate doctor` on that host checks it; GET /readyz with the admin key lists each provider.",),
    ),
    "relay.account_config_error": Entry(
        "api", "fail",
        "the relay at {host} refused the request for an account or group setting: {message}",
        ("This is the relay's own error, not Anthropic's: fix the token's group/quota/model "
         "settings in the relay's console, or ask its operator.",),
    ),
    "api.ok": Entry(
        "api", "ok",
        "{summary_text}",
        (),
    ),
}

# Ids PRODUCT.md promises; a test keeps this list and the catalogue in step.
REQUIRED_IDS = (
    "env.proxy_malformed", "env.proxy_scheme_unsupported", "env.no_proxy_bypasses_api",
    "env.no_proxy_misses_gateway", "env.auth_conflict", "env.base_url_has_v1",
    "env.ca_file_invalid", "claude.preflight_will_run", "dns.unresolvable",
    "net.tcp_blocked", "net.ipv6_broken", "proxy.unreachable", "proxy.auth_required",
    "proxy.auth_scheme_unsupported", "proxy.denied", "proxy.upstream_failed",
    "tls.intercepted_untrusted", "tls.untrusted", "tls.expired_or_clock_skew",
    "http.intermediary_response", "api.region_blocked", "api.invalid_key",
    "api.wrong_credential_header", "api.wrong_path", "api.model_not_found",
    "api.rate_limited", "api.overloaded", "relay.account_config_error", "api.ok",
)


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_FORMATTER = string.Formatter()


def render_template(template: str, values: dict[str, str]) -> str:
    """``template.format_map(values)`` that leaves unknown placeholders visible."""
    try:
        return _FORMATTER.vformat(template, (), _Missing(values))
    except (ValueError, IndexError, KeyError):
        return template
