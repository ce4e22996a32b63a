"""Layer 1: configuration lint, and the route (proxy or direct) each target would take.

Pure: works on an ``Inputs`` snapshot, touches no network. Proxy rules are Claude Code's:
``https_proxy > HTTPS_PROXY > http_proxy > HTTP_PROXY`` for every target (ALL_PROXY is
not read), NO_PROXY matched with ``ccgate.proxy_env.no_proxy_matches``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ccgate.claude_code import env as cc
from ccgate.claude_code.files import STORED_API_KEY
from ccgate.doctor.inputs import Inputs, is_anthropic_host, preflight_reason
from ccgate.doctor.mask import mask_url_userinfo
from ccgate.doctor.model import DoctorOptions, Finding, Severity, finding
from ccgate.proxy_env import (
    DIRECT,
    ProxySpec,
    ProxyURLError,
    no_proxy_entries,
    no_proxy_matches,
    parse_proxy_url,
)

CA_VARS = ("NODE_EXTRA_CA_CERTS",)


@dataclass
class Route:
    """How Claude Code (and so the doctor's replay) reaches ``url``."""

    url: str
    host: str
    port: int
    target: str  # path + query
    proxy: ProxySpec | None
    proxy_var: str | None  # variable or "--proxy" that named the proxy
    reason: str
    blocked_by: str | None = None  # finding id that makes the route unusable

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"


def shell_export(shell: str, var: str, value: str) -> str:
    quoted = "'" + value.replace("'", "'\\''") + "'"
    if shell == "fish":
        return f"set -gx {var} {quoted}"
    if shell in ("csh", "tcsh"):
        return f"setenv {var} {quoted}"
    return f"export {var}={quoted}"


def shell_unset(shell: str, var: str) -> str:
    if shell == "fish":
        return f"set -e {var}"
    if shell in ("csh", "tcsh"):
        return f"unsetenv {var}"
    return f"unset {var}"


def set_var_fix(inputs: Inputs, var: str, value: str) -> str:
    where = inputs.where(var)
    if where != "environment":
        return f'In {where}, set "env": {{"{var}": "{value}"}}'
    return shell_export(inputs.shell, var, value)


def claude_proxy(inputs: Inputs, options: DoctorOptions) -> tuple[str, str] | None:
    if options.proxy is not None:
        return ("--proxy", options.proxy)
    return cc.proxy_variable(inputs.env)


def plan_route(url: str, inputs: Inputs, options: DoctorOptions) -> Route:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    found = claude_proxy(inputs, options)
    if found is None:
        return Route(url, host, port, target, None, None, "no proxy variable set")
    var, value = found
    if var == "--proxy" and value.strip().lower() in DIRECT:
        return Route(url, host, port, target, None, None, "--proxy none")
    if var != "--proxy":
        exempt = no_proxy_entries(inputs.env)
        if exempt is not None:
            hit = no_proxy_matches(exempt[1], host, port)
            if hit is not None:
                return Route(url, host, port, target, None, None,
                             f"{host} matches {exempt[0]} entry {hit!r}")
    try:
        spec = parse_proxy_url(value, source=var)
    except ProxyURLError:
        return Route(url, host, port, target, None, var, f"proxy from {var}",
                     blocked_by="env.proxy_malformed")
    route = Route(url, host, port, target, spec, var, f"proxy from {var}")
    if spec.is_socks:
        route.blocked_by = "env.proxy_scheme_unsupported"
    return route


_UNENCODED = re.compile(r"[@/#?\s]")


def lint_proxy_value(var: str, raw: str) -> list[Finding]:
    """Every mistake in one proxy variable's value (reference lint PX004-PX009)."""
    out: list[Finding] = []
    shown = mask_url_userinfo(raw)
    ev = [f"{var}={shown}"]
    text = raw.strip()
    if text != raw:
        out.append(finding("env.proxy_malformed", severity=Severity.WARN, subject=var, var=var,
                           problem="leading or trailing whitespace", evidence=ev))
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        out.append(finding("env.proxy_malformed", subject=var, var=var,
                           problem="the value is wrapped in quotes", evidence=ev,
                           fix=[f"Remove the quotes: {var}={mask_url_userinfo(text[1:-1])}"]))
        return out
    if "://" not in text:
        out.append(finding("env.proxy_malformed", subject=var, var=var,
                           problem="no scheme (write http://...)", evidence=ev,
                           fix=[f"Set {var}=http://{mask_url_userinfo(text)}"]))
        return out
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    if scheme.startswith("socks"):
        out.append(finding("env.proxy_scheme_unsupported", subject=var, var=var, scheme=scheme,
                           evidence=[*ev, "Claude Code has no SOCKS support (API traffic fails)"]))
        return out
    if scheme == "https":
        out.append(finding(
            "env.proxy_scheme_unsupported", severity=Severity.WARN, subject=var, var=var,
            scheme=scheme,
            summary=f"{var} uses https:// (TLS to the proxy); most corporate proxies speak "
                    "plain HTTP on their port, and Claude Code's https:// proxy support is "
                    "unreliable (ERR_SOCKET_CLOSED)",
            evidence=ev,
            fix=[f"Use http:// unless the proxy really expects TLS: {var}="
                 f"{mask_url_userinfo('http://' + rest)}"]))
    elif scheme != "http":
        out.append(finding("env.proxy_malformed", subject=var, var=var,
                           problem=f"unknown scheme {scheme!r}", evidence=ev))
        return out
    authority = rest.split("/", 1)[0] if rest.count("@") == 0 else rest.rsplit("@", 1)[1]
    if "@" in rest:
        userinfo = rest.rsplit("@", 1)[0]
        bad = sorted(set(_UNENCODED.findall(userinfo)))
        if bad:
            out.append(finding(
                "env.proxy_malformed", subject=var, var=var,
                problem="the credentials contain unencoded " + " ".join(repr(c) for c in bad),
                evidence=ev,
                fix=[f"Percent-encode the user name and password in {var}: @ -> %40, "
                     ": -> %3A, / -> %2F, # -> %23, ? -> %3F (python3 -c \"import urllib.parse,"
                     "getpass; print(urllib.parse.quote(getpass.getpass(), safe=''))\")"]))
            return out
    try:
        spec = parse_proxy_url(text, source=var)
    except ProxyURLError as exc:
        out.append(finding("env.proxy_malformed", subject=var, var=var, problem=str(exc),
                           evidence=ev))
        return out
    hostpart = authority.split("/")[0]
    if not re.search(r":\d+$", hostpart.split("@")[-1]):
        out.append(finding(
            "env.proxy_malformed", severity=Severity.WARN, subject=var, var=var,
            problem=f"no port (Claude Code and Python use {spec.port}, curl uses 1080)",
            evidence=ev))
    return out


def is_local_host(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_pem_file(var: str, path_text: str) -> Finding | None:
    path = Path(path_text).expanduser()
    ev = [f"{var}={path_text}"]
    if not path.is_file():
        return finding("env.ca_file_invalid", subject=var, var=var, path=path_text,
                       problem="the file does not exist", evidence=ev)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return finding("env.ca_file_invalid", subject=var, var=var, path=path_text,
                       problem=f"cannot read it ({exc.strerror})", evidence=ev)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        kind = "DER/binary (.cer/.crt exported as DER)" if data[:1] == b"\x30" else "not PEM"
        return finding("env.ca_file_invalid", subject=var, var=var, path=path_text,
                       problem=f"it holds no PEM certificate ({kind}); Node ignores it",
                       evidence=ev,
                       extra_fix=[f"openssl x509 -inform der -in {path_text} -out {path_text}.pem"])
    try:
        import warnings

        from cryptography import x509

        with warnings.catch_warnings():
            # Real bundles carry a few legacy roots with non-positive serials; Node loads them.
            warnings.simplefilter("ignore")
            certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        return finding("env.ca_file_invalid", subject=var, var=var, path=path_text,
                       problem=f"a PEM block does not parse ({exc})", evidence=ev)
    if not certs:
        return finding("env.ca_file_invalid", subject=var, var=var, path=path_text,
                       problem="no certificate in it", evidence=ev)
    return None


def lint(inputs: Inputs, options: DoctorOptions) -> list[Finding]:
    """Every configuration finding, in the order the report lists them within a layer."""
    out = [finding("claude.settings_unreadable", subject=str(path), path=path, problem=problem)
           for path, problem in inputs.settings_errors]
    out += _lint_proxy_variables(inputs, options)
    out += _lint_base_url(inputs)
    out += _lint_no_proxy(inputs, options)
    out += _lint_credentials(inputs)
    out += _lint_ca_files(inputs, options)
    out += _lint_preflight(inputs, options)
    return out


def _lint_proxy_variables(inputs: Inputs, options: DoctorOptions) -> list[Finding]:
    env = inputs.env
    out: list[Finding] = []
    for lower, upper in (("https_proxy", "HTTPS_PROXY"), ("http_proxy", "HTTP_PROXY"),
                         ("no_proxy", "NO_PROXY")):
        lo, up = env.get(lower), env.get(upper)
        if lo and up and lo.strip() != up.strip():
            out.append(finding("env.proxy_case_conflict", subject=lower, lower=lower, upper=upper,
                               winner=lower,
                               evidence=[f"{lower}={mask_url_userinfo(lo)}",
                                         f"{upper}={mask_url_userinfo(up)}",
                                         "Claude Code, curl and Python read lowercase first; Go "
                                         "reads uppercase first"]))
    found = claude_proxy(inputs, options)
    if found is not None and not (found[0] == "--proxy" and found[1].strip().lower() in DIRECT):
        out.extend(lint_proxy_value(*found))
    elif any(env.get(v, "").strip() for v in ("ALL_PROXY", "all_proxy")):
        out.append(finding(
            "env.proxy_malformed", severity=Severity.WARN, subject="ALL_PROXY", var="ALL_PROXY",
            problem="only ALL_PROXY is set; Claude Code and Node ignore it",
            fix=[shell_export(inputs.shell, "HTTPS_PROXY",
                              mask_url_userinfo(env.get("ALL_PROXY") or env.get("all_proxy", ""))
                              )]))
    return out


def _lint_base_url(inputs: Inputs) -> list[Finding]:
    base = inputs.base_url
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [finding("env.base_url_malformed", subject=cc.BASE_URL, url=base)]
    for suffix in ("/v1/messages", "/v1"):  # Claude Code appends /v1/messages to the root
        if parts.path.rstrip("/").endswith(suffix):
            fixed = base.rstrip("/")[: -len(suffix)]
            return [finding("env.base_url_has_v1", subject=cc.BASE_URL, url=base, fixed=fixed,
                            summary=f"ANTHROPIC_BASE_URL ends in {suffix} ({base}); Claude Code "
                                    "appends /v1/messages itself",
                            evidence=[f"requests would go to {base.rstrip('/')}/v1/messages"],
                            fix=[set_var_fix(inputs, cc.BASE_URL, fixed)])]
    return []


def _lint_no_proxy(inputs: Inputs, options: DoctorOptions) -> list[Finding]:
    """NO_PROXY against the endpoint (a loopback gateway must be listed exactly; a remote API
    must not be) and against api.anthropic.com when the first-run check will go there."""
    env = inputs.env
    parts = urlsplit(inputs.base_url)
    found = claude_proxy(inputs, options)
    exempt = no_proxy_entries(env)
    out: list[Finding] = []
    if found is not None and found[0] != "--proxy" and parts.hostname:
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        hit = no_proxy_matches(exempt[1], host, port) if exempt else None
        var = exempt[0] if exempt else "NO_PROXY"
        if is_local_host(host):
            if hit is None:
                out.append(_gateway_not_exempt(inputs, host, var, found[0], exempt))
        elif hit is not None:
            out.append(finding("env.no_proxy_bypasses_api", subject=host, var=var, entry=hit,
                               host=host, evidence=[f"{var}={env.get(var)}"]))
    if exempt is not None and found is not None and not is_anthropic_host(parts.hostname or ""):
        api_hit = no_proxy_matches(exempt[1], "api.anthropic.com", 443)
        if api_hit is not None and preflight_reason(inputs) is not None:
            out.append(finding("env.no_proxy_bypasses_api", subject="api.anthropic.com",
                               var=exempt[0], entry=api_hit, host="api.anthropic.com",
                               evidence=[f"{exempt[0]}={env.get(exempt[0])}"]))
    return out


def _gateway_not_exempt(inputs: Inputs, host: str, var: str, proxy_var: str,
                        exempt: tuple[str, list[str]] | None) -> Finding:
    ev = [f"{cc.BASE_URL}={inputs.base_url}", f"{proxy_var} is set",
          f"{var}={inputs.env.get(var, '') or '(unset)'}"]
    if host != "localhost" and exempt and any(e.strip().lower() == "localhost" for e in exempt[1]):
        ev.append(f"'localhost' in {var} does not cover {host}: Claude Code matches "
                  "the exact host")
    current = inputs.env.get(var, "")
    new = f"{current},{host}" if current else host
    return finding("env.no_proxy_misses_gateway", subject=host, host=host, var=var, evidence=ev,
                   fix=[set_var_fix(inputs, "NO_PROXY", new)])


def _lint_credentials(inputs: Inputs) -> list[Finding]:
    sources = inputs.credential_sources
    if not cc.auth_conflict(sources):
        return []
    fix = (shell_unset(inputs.shell, cc.API_KEY) if cc.API_KEY in sources
           else f"Run /logout in Claude Code (or remove {STORED_API_KEY} from "
                f"{inputs.global_config_path})")
    labels = [inputs.credential_label(s) for s in sources]
    return [finding("env.auth_conflict", sources=", ".join(labels), winner=cc.AUTH_TOKEN,
                    evidence=[f"{s} is set" for s in labels], fix=[fix])]


def _lint_ca_files(inputs: Inputs, options: DoctorOptions) -> list[Finding]:
    out: list[Finding] = []
    for var in CA_VARS:
        if inputs.env.get(var):
            f = check_pem_file(var, inputs.env[var])
            if f is not None:
                if inputs.where(var) != "environment":
                    f.evidence.append(f"set in {inputs.where(var)}; some Claude Code versions "
                                      "apply it to TLS only when exported in the shell")
                out.append(f)
    if options.ca_file:
        f = check_pem_file("--ca-file", options.ca_file)
        if f is not None:
            f.severity = Severity.FAIL
            out.append(f)
    return out


def _lint_preflight(inputs: Inputs, options: DoctorOptions) -> list[Finding]:
    """Claude Code's first-run check, which ignores ANTHROPIC_BASE_URL."""
    reason = preflight_reason(inputs)
    if reason is None or options.preflight == "never":
        return []
    non_anthropic = not is_anthropic_host(urlsplit(inputs.base_url).hostname or "")
    return [finding(
        "claude.preflight_will_run",
        severity=Severity.WARN if non_anthropic else Severity.OK,
        reason=reason, global_config=inputs.global_config_path,
        evidence=[f"{cc.BASE_URL}={inputs.base_url}" if non_anthropic else
                  "base URL is Anthropic's own API"])]
