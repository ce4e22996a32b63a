"""Decide what ``ccgate setup claude-code`` changes, and why. Pure: works on what
``gather`` read and writes nothing.

What Claude Code needs to reach the gateway (see the shared reference, Claude Code as a client,
sections 1 and 2, and https://code.claude.com/docs/en/llm-gateway-connect):

* ``ANTHROPIC_BASE_URL`` = the gateway root (no ``/v1``; the client appends ``/v1/messages``).
* ``ANTHROPIC_AUTH_TOKEN`` = the gateway key, sent as ``Authorization: Bearer``. A token also
  stops the first-run wizard's connectivity check, which goes to api.anthropic.com whatever
  ``ANTHROPIC_BASE_URL`` says. ``ANTHROPIC_API_KEY`` would not: an env key only counts after
  the user approves it in the wizard, after the check.
* ``hasCompletedOnboarding: true`` in the global config: the wizard, and its check, never run.
* No second credential: a non-empty ``ANTHROPIC_API_KEY`` beside the token gives "Auth
  conflict". Settings ``env`` overrides the shell, so an empty value in settings hides a key
  exported by the shell profile.
* With a proxy variable set, ``NO_PROXY``/``no_proxy`` must list the gateway's exact host:
  Claude Code matches hosts exactly (``localhost`` does not cover ``127.0.0.1``), and it is not
  known which of the two spellings it reads first, so both are written with the same value.

Subscription mode (``SetupOptions.subscription``): Claude Code keeps its own login (a Claude
subscription sends ``Authorization: Bearer sk-ant-oat...``), so the gateway key goes in
``ANTHROPIC_CUSTOM_HEADERS`` as ``x-ccgate-key`` and no ``ANTHROPIC_AUTH_TOKEN`` is written
(one in the user settings is removed: it would replace the login). Onboarding is left alone:
the first-run wizard is where a subscription login happens.

Which files, and which wins, is ``ccgate.claude_code.files``; which variables, ``.env``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ccgate.claude_code import env as cc
from ccgate.claude_code.files import ONBOARDING_DONE, STORED_API_KEY, layered_env, settings_env
from ccgate.config.secrets import mask
from ccgate.proxy_env import NO_PROXY_VARS, no_proxy_matches, split_no_proxy
from ccgate.setup.gather import OverridingFile, SetupInputs
from ccgate.setup.jsonedit import JsonDoc
from ccgate.setup.model import (
    DEFAULT_GATEWAY,
    GATEWAY_KEY_HEADER,
    MISSING,
    PLACEHOLDER_TOKEN,
    Change,
    Note,
    Plan,
    SetupError,
    SetupOptions,
    display_path,
)

__all__ = ["choose_token", "gateway_hosts", "no_proxy_for_gateway", "normalize_gateway", "plan_changes"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def normalize_gateway(url: str) -> str:
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SetupError(
            f"--gateway {url!r}: expected an http:// or https:// URL with a host, for example {DEFAULT_GATEWAY}"
        )
    if parts.query or parts.fragment:
        raise SetupError(f"--gateway {url!r}: remove the query string or fragment")
    if parts.username or parts.password:
        raise SetupError("--gateway: put the key in --key, not in the URL")
    try:
        _ = parts.port
    except ValueError:
        raise SetupError(f"--gateway {url!r}: invalid port") from None
    if parts.path.rstrip("/").endswith("/v1"):
        fixed = text[: -len("/v1")]
        raise SetupError(
            f"--gateway {url!r} ends in /v1, but Claude Code appends /v1/messages itself; use --gateway {fixed}"
        )
    return text


def choose_token(options: SetupOptions, user_env: Mapping[str, str], gateway: str) -> tuple[str, str]:
    """(token, where it came from): explicit > ccgate config > the one already set for this
    gateway > the placeholder."""
    if options.key:
        return options.key, "--key"
    if options.config_tokens:
        return options.config_tokens[0], "the ccgate config (client token)"
    same_gateway = user_env.get(cc.BASE_URL, "").rstrip("/") == gateway
    in_header = cc.custom_header(user_env.get(cc.CUSTOM_HEADERS, ""), GATEWAY_KEY_HEADER)
    if options.subscription and in_header and same_gateway:
        return in_header, "already in the settings"
    if not options.subscription and user_env.get(cc.AUTH_TOKEN) and same_gateway:
        return user_env[cc.AUTH_TOKEN], "already in the settings"
    return PLACEHOLDER_TOKEN, "placeholder (the gateway has no client keys)"


# -- NO_PROXY, Claude Code's rules -----------------------------------------------------------


def gateway_hosts(host: str) -> list[str]:
    """The names Claude Code may use for the gateway: a loopback gateway has two."""
    host = host.lower()
    if host in LOOPBACK_NAMES:
        return [host] + [h for h in LOOPBACK_NAMES if h != host]
    if host == "::1":
        return ["::1", "localhost"]
    return [host]


def no_proxy_for_gateway(values: Iterable[str], host: str) -> tuple[list[str], str]:
    """(the entries already in ``values``, the NO_PROXY that keeps them and adds each name of
    the gateway Claude Code would not exempt yet)."""
    entries: list[str] = []
    for value in values:
        entries.extend(e for e in split_no_proxy(value) if e not in entries)
    missing = [h for h in gateway_hosts(host) if no_proxy_matches(entries, h) is None]
    return entries, ",".join(entries + missing)


# -- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Wanted:
    value: str
    why: str
    secret: bool = False


@dataclass
class _Draft:
    """The plan being built and the two documents it edits (copies of what gather read)."""

    plan: Plan
    user: JsonDoc
    global_config: JsonDoc
    home: Path

    def where(self, path: Path) -> str:
        return display_path(path, self.home)

    def user_env(self) -> dict[str, str]:
        return settings_env(self.user.data)

    def set_env(self, var: str, value: str, why: str, secret: bool = False) -> None:
        old = self.user.get(("env", var), MISSING)
        if old == value:
            return
        self.user.set(("env", var), value)
        self.plan.changes.append(Change(self.plan.files.user_settings, f"env.{var}", old, value, why, secret))

    def warn(self, text: str, fix: str) -> None:
        self.plan.notes.append(Note("warn", text, fix))


def plan_changes(options: SetupOptions, inputs: SetupInputs) -> Plan:
    """Every change setup makes to Claude Code's files, with the reason, and every warning."""
    gateway = normalize_gateway(options.gateway)
    user_env = settings_env(inputs.user_settings.doc.data)  # as found, before any edit
    token, token_source = choose_token(options, user_env, gateway)
    plan = Plan(files=inputs.files, gateway=gateway, token=token, token_source=token_source)
    plan.notes.extend(inputs.notes)
    plan.secrets = _secrets(options, inputs, token)
    draft = _Draft(
        plan, copy.deepcopy(inputs.user_settings.doc), copy.deepcopy(inputs.global_config.doc), options.home
    )

    wanted = _wanted_env(gateway, token, token_source, options.models)
    wanted |= slow_provider_env(options.slow_providers, user_env)
    if options.subscription:
        wanted = _subscription_env(wanted, user_env)
    for var, want in wanted.items():
        draft.set_env(var, want.value, want.why, want.secret)
    _plan_credential_mode(draft, user_env, options.subscription)
    _plan_api_key(draft, user_env, options.env)
    _plan_no_proxy(draft, options.env, inputs.overriding, urlsplit(gateway).hostname or "")
    if not options.subscription:
        _plan_onboarding(draft)
    _warn_overridden(draft, inputs.overriding, wanted)
    _note_shell_differs(draft, options.env, wanted)
    _warn_second_credentials(draft, inputs.overriding)
    _warn_provider_switches(draft, options.env, inputs.overriding, options.subscription)

    layers = [(str(inputs.files.user_settings), draft.user.data)]
    layers += [(str(o.path), o.data) for o in inputs.overriding]
    plan.effective_env = layered_env(options.env, layers)[0]
    for read, doc in ((inputs.user_settings, draft.user), (inputs.global_config, draft.global_config)):
        new = doc.encoded()
        if read.state.raw != new and (read.state.raw is not None or doc.data):
            plan.writes.append((read.state, new))
    return plan


def _secrets(options: SetupOptions, inputs: SetupInputs, token: str) -> set[str]:
    """What output must mask: secrets in every file read and in the shell, and the token."""
    out: set[str] = set()
    read = [inputs.user_settings.doc.data, inputs.global_config.doc.data, *(o.data for o in inputs.overriding)]
    for data in read:
        cc.collect_secrets(data, out)
    cc.collect_secrets(dict(options.env), out)
    if token != PLACEHOLDER_TOKEN:  # not a secret, and shown as is
        out.add(token)
    return out


# Claude Code's longest stream idle timeout (it ignores values at or below 300000 and caps them
# at 1800000), and the same for the wait for the answer's first byte (API_TIMEOUT_MS, default
# 600000). docs/providers.md, "Slow self-hosted providers".
SLOW_TIMEOUT_MS = 1_800_000
SLOW_ENV = ("CLAUDE_STREAM_IDLE_TIMEOUT_MS", "API_TIMEOUT_MS")


def slow_provider_env(slow: tuple[str, ...], user_env: Mapping[str, str]) -> dict[str, _Wanted]:
    """For a gateway with providers marked slow: the longest idle timeouts Claude Code allows,
    unless the settings already give a longer one (or 0 for API_TIMEOUT_MS)."""
    if not slow:
        return {}
    why = (f"provider(s) {', '.join(slow)} marked slow: a self-hosted model reading a long prompt "
           "can send nothing for minutes, and Claude Code drops a stream after 5 minutes without "
           "an event (pings count only 30 in a row); 30 minutes is the most it allows")
    wanted: dict[str, _Wanted] = {}
    for var in SLOW_ENV:
        current = user_env.get(var, "")
        if current.isdigit() and (int(current) >= SLOW_TIMEOUT_MS or int(current) == 0):
            continue
        wanted[var] = _Wanted(str(SLOW_TIMEOUT_MS), why)
    return wanted


def _wanted_env(gateway: str, token: str, token_source: str, models: Mapping[str, str]) -> dict[str, _Wanted]:
    wanted = {
        cc.BASE_URL: _Wanted(
            gateway, "Claude Code sends its API requests (/v1/messages) to this root: the gateway"
        ),
        cc.AUTH_TOKEN: _Wanted(
            token,
            f"the gateway key, sent as Authorization: Bearer (source: {token_source}); "
            "a token also makes Claude Code skip the first-run check of api.anthropic.com",
            secret=True,
        ),
    }
    for var, value in models.items():
        why = _MODEL_VAR_WHY.get(var, "the model this alias resolves to, as you asked")
        wanted[var] = _Wanted(value, why)
    return wanted


# Variables other than model aliases that a caller (ccgate connect) may ask setup to write.
_MODEL_VAR_WHY = {
    "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY":
        "Claude Code lists the gateway's models (GET /v1/models) in /model",
}


def _subscription_env(wanted: dict[str, _Wanted], user_env: Mapping[str, str]) -> dict[str, _Wanted]:
    """The gateway key moves from ANTHROPIC_AUTH_TOKEN to x-ccgate-key in the custom headers."""
    token = wanted.pop(cc.AUTH_TOKEN).value
    headers = cc.custom_headers_with(user_env.get(cc.CUSTOM_HEADERS, ""), GATEWAY_KEY_HEADER, token)
    wanted[cc.CUSTOM_HEADERS] = _Wanted(
        headers,
        f"the gateway key in its own header ({GATEWAY_KEY_HEADER}); Claude Code keeps sending your "
        "Claude login as Authorization, which the gateway passes to Anthropic unchanged",
        secret=True,
    )
    return wanted


def _plan_credential_mode(draft: _Draft, user_env: Mapping[str, str], subscription: bool) -> None:
    """Remove what belongs to the other mode: a token that would replace the subscription login,
    or an x-ccgate-key header left from subscription mode."""
    settings = draft.plan.files.user_settings
    if subscription and user_env.get(cc.AUTH_TOKEN):
        draft.user.remove(("env", cc.AUTH_TOKEN))
        draft.plan.changes.append(Change(
            settings, f"env.{cc.AUTH_TOKEN}", user_env[cc.AUTH_TOKEN], MISSING,
            "a token here replaces your Claude subscription login in every request", True))
        return
    headers = user_env.get(cc.CUSTOM_HEADERS, "")
    if subscription or cc.custom_header(headers, GATEWAY_KEY_HEADER) is None:
        return
    rest = cc.custom_headers_with(headers, GATEWAY_KEY_HEADER, None)
    why = f"the gateway key now goes as ANTHROPIC_AUTH_TOKEN, not in {GATEWAY_KEY_HEADER}"
    if rest:
        draft.set_env(cc.CUSTOM_HEADERS, rest, why, secret=True)
    else:
        draft.user.remove(("env", cc.CUSTOM_HEADERS))
        draft.plan.changes.append(Change(settings, f"env.{cc.CUSTOM_HEADERS}", headers, MISSING, why, True))


def _plan_api_key(draft: _Draft, user_env: Mapping[str, str], shell: Mapping[str, str]) -> None:
    """No ``ANTHROPIC_API_KEY`` beside the token: removed from the settings, hidden from the shell."""
    if user_env.get(cc.API_KEY):
        old = draft.user.get(("env", cc.API_KEY))
        draft.user.remove(("env", cc.API_KEY))
        draft.plan.changes.append(
            Change(
                draft.plan.files.user_settings,
                f"env.{cc.API_KEY}",
                old,
                MISSING,
                "a second credential beside ANTHROPIC_AUTH_TOKEN makes Claude Code report "
                "an auth conflict and may send the wrong key to the gateway",
                True,
            )
        )
    if not shell.get(cc.API_KEY):
        return
    if cc.API_KEY not in draft.user_env():
        draft.set_env(
            cc.API_KEY,
            "",
            "your shell exports ANTHROPIC_API_KEY; settings override the shell, and an empty "
            "value hides that key from Claude Code so only the gateway token is sent",
        )
    draft.plan.notes.append(
        Note(
            "info",
            "your shell exports ANTHROPIC_API_KEY; Claude Code will not see it (the "
            "settings set it empty), other programs will",
            "remove the export from your shell profile if the key is no longer needed",
        )
    )


def _plan_no_proxy(
    draft: _Draft, shell: Mapping[str, str], overriding: list[OverridingFile], host: str
) -> None:
    """Keep Claude Code's traffic to the gateway off any proxy set anywhere."""
    user_env = draft.user_env()
    sources: list[str] = []
    for var in cc.PROXY_VARS:
        if shell.get(var, "").strip():
            sources.append(f"{var} in the shell")
        if user_env.get(var, "").strip():
            sources.append(f"{var} in {draft.where(draft.plan.files.user_settings)}")
        for o in overriding:
            if settings_env(o.data).get(var, "").strip():
                sources.append(f"{var} in {draft.where(o.path)}")
    if not sources:
        return
    current = [user_env[var] if var in user_env else shell.get(var, "") for var in NO_PROXY_VARS]
    entries, value = no_proxy_for_gateway(current, host)
    why = (
        f"a proxy is configured ({', '.join(sources)}); Claude Code bypasses it only for hosts "
        f"listed exactly, so the gateway's host ({host}) goes here"
        + (" (existing entries kept)" if entries else "")
    )
    draft.set_env("NO_PROXY", value, why)
    draft.set_env(
        "no_proxy",
        value,
        "the same list under the lowercase name: tools differ in which spelling they read "
        "first, and Claude Code's order is not documented",
    )
    for o in overriding:
        env = settings_env(o.data)
        for var in NO_PROXY_VARS:
            if var in env and no_proxy_matches(split_no_proxy(env[var]), host) is None:
                draft.warn(
                    f"{var} in {draft.where(o.path)} ({o.scope}) does not list {host} and wins over "
                    "the user settings, so Claude Code will send gateway traffic to the proxy",
                    f"add {host} to {var} in {o.path}",
                )


def _plan_onboarding(draft: _Draft) -> None:
    """The first-run wizard's check ignores ANTHROPIC_BASE_URL: mark onboarding done."""
    old = draft.global_config.get((ONBOARDING_DONE,), MISSING)
    if old is True:
        return
    draft.global_config.set((ONBOARDING_DONE,), True)
    draft.plan.changes.append(
        Change(
            draft.plan.files.global_config,
            ONBOARDING_DONE,
            old,
            True,
            "Claude Code's first-run wizard checks api.anthropic.com directly (it ignores "
            "ANTHROPIC_BASE_URL) and exits when that fails; marking onboarding done skips it",
        )
    )


# -- warnings: who wins ----------------------------------------------------------------------


def _warn_overridden(draft: _Draft, overriding: list[OverridingFile], wanted: Mapping[str, _Wanted]) -> None:
    """A wanted variable that a higher settings file sets to another value: that file wins."""
    settings_name = draft.where(draft.plan.files.user_settings)
    for var, want in wanted.items():
        winners = [o for o in overriding if settings_env(o.data).get(var, want.value) != want.value]
        if not winners:
            continue
        winner = winners[-1]  # the highest precedence
        other = settings_env(winner.data)[var]
        shown = mask(other) if want.secret else other
        fix = (
            "ask your administrator to change it; managed settings cannot be overridden"
            if winner.scope == "managed settings"
            else f"remove env.{var} from {winner.path}, or run setup with the same value"
        )
        draft.warn(
            f"{var} is also set in {draft.where(winner.path)} ({winner.scope}) to {shown!r}; that file wins "
            f"over {settings_name}, so Claude Code will use it there",
            fix,
        )


def _note_shell_differs(draft: _Draft, shell: Mapping[str, str], wanted: Mapping[str, _Wanted]) -> None:
    settings_name = draft.where(draft.plan.files.user_settings)
    for var, want in wanted.items():
        value = shell.get(var)
        if value is None or value == want.value:
            continue
        shown = mask(value) if want.secret else value
        draft.plan.notes.append(
            Note(
                "info",
                f"your shell exports {var}={shown}; Claude Code uses {settings_name} "
                "instead (settings override the shell), other programs still see the "
                "shell value",
                f"remove the export of {var} from your shell profile to avoid confusion",
            )
        )


def _warn_second_credentials(draft: _Draft, overriding: list[OverridingFile]) -> None:
    """Credential sources beside the gateway token (``ccgate.claude_code.env`` lists them)."""
    for o in overriding:
        where = f"{draft.where(o.path)} ({o.scope})"
        for source in cc.credential_sources(settings_env(o.data), o.data, None):
            if source == cc.API_KEY:
                draft.warn(
                    f"ANTHROPIC_API_KEY is set in {where}; beside the gateway token Claude Code "
                    "reports an auth conflict",
                    f"remove env.ANTHROPIC_API_KEY from {o.path}",
                )
            elif source == cc.KEY_HELPER:
                draft.warn(
                    f"apiKeyHelper is set in {where}; a second credential source beside the gateway token",
                    f"remove apiKeyHelper from {o.path}",
                )
    files = draft.plan.files
    if cc.KEY_HELPER in cc.credential_sources({}, draft.user.data, None):
        draft.warn(
            f"apiKeyHelper is set in {draft.where(files.user_settings)}; ANTHROPIC_AUTH_TOKEN takes "
            "precedence, but two credential sources can make Claude Code report an auth conflict",
            f"remove apiKeyHelper from {files.user_settings} if the gateway is your only endpoint",
        )
    if STORED_API_KEY in cc.credential_sources({}, {}, draft.global_config.data):
        draft.warn(
            f"{draft.where(files.global_config)} holds a stored API key (primaryApiKey, "
            "from an earlier /login); beside the gateway token Claude Code reports an "
            "auth conflict, and setup does not delete logins",
            "run `claude`, then /logout (or remove primaryApiKey from the file by hand)",
        )


def _warn_provider_switches(
    draft: _Draft, shell: Mapping[str, str], overriding: list[OverridingFile], subscription: bool = False
) -> None:
    """A cloud-provider switch sends traffic past the gateway; an OAuth token is a second credential
    (except in subscription mode, where it is the credential)."""
    user_env = draft.user_env()
    oauth = () if subscription else (cc.OAUTH_TOKEN,)
    for var in (*cc.PROVIDER_SWITCHES, *oauth):
        places = []
        if shell.get(var):
            places.append("the shell")
        if user_env.get(var):
            places.append(draft.where(draft.plan.files.user_settings))
        places.extend(draft.where(o.path) for o in overriding if settings_env(o.data).get(var))
        if not places:
            continue
        effect = (
            "has a second credential beside the gateway token"
            if var == cc.OAUTH_TOKEN
            else "uses that cloud provider and ignores ANTHROPIC_BASE_URL"
        )
        draft.warn(f"{var} is set ({', '.join(places)}); Claude Code then {effect}", f"unset {var}")
