"""Decide what ``ccgate setup claude-code`` changes, and why, without writing anything.

What Claude Code needs to reach the gateway (see ../shared reference, Claude Code as a client,
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

Settings precedence, lowest first: shell < user < project < project-local < managed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ccgate.config.secrets import mask
from ccgate.setup.files import FileState, read_state
from ccgate.setup.jsonedit import JsonDoc, JsonFileError
from ccgate.setup.paths import ClaudePaths
from ccgate.upstream.proxy_env import (
    CLAUDE_CODE_PROXY_VARS,
    NO_PROXY_VARS,
    no_proxy_matches,
    split_no_proxy,
)

__all__ = [
    "DEFAULT_GATEWAY",
    "MODEL_VARS",
    "PLACEHOLDER_TOKEN",
    "Change",
    "Note",
    "Plan",
    "SetupError",
    "SetupOptions",
    "build_plan",
    "mask",
    "no_proxy_covers",
    "normalize_gateway",
]

DEFAULT_GATEWAY = "http://127.0.0.1:4545"
PLACEHOLDER_TOKEN = "ccgate-local"
# Claude Code's proxy variables (it does not read ALL_PROXY).
PROXY_VARS = CLAUDE_CODE_PROXY_VARS
MODEL_VARS = {
    "model": "ANTHROPIC_MODEL",
    "haiku": "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "sonnet": "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "opus": "ANTHROPIC_DEFAULT_OPUS_MODEL",
}
PROVIDER_SWITCHES = (
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
_SECRET_KEY = re.compile(r"token|key|secret|passw|credential|auth", re.IGNORECASE)


class SetupError(Exception):
    """Bad input, or a file setup refuses to touch; nothing was changed."""


class _Missing:
    def __repr__(self) -> str:
        return "unset"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class SetupOptions:
    gateway: str = DEFAULT_GATEWAY
    key: str | None = None
    config_tokens: tuple[str, ...] = ()  # client tokens from the ccgate config, first wins
    models: Mapping[str, str] = field(default_factory=dict)  # env var name -> model id
    env: Mapping[str, str] = field(default_factory=dict)  # the shell environment
    home: Path = field(default_factory=Path.home)
    project_dir: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True)
class Change:
    file: Path
    key: str  # dotted, e.g. "env.ANTHROPIC_BASE_URL"
    old: Any
    new: Any  # MISSING: removed
    why: str
    secret: bool = False


@dataclass(frozen=True)
class Note:
    level: str  # "warn" or "info"
    text: str
    fix: str | None = None


@dataclass
class Plan:
    paths: ClaudePaths
    gateway: str
    token: str
    token_source: str
    changes: list[Change] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    writes: list[tuple[FileState, bytes]] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    effective_env: dict[str, str] = field(default_factory=dict)

    def diff(self) -> str:
        """A unified diff of every file that would change, secrets masked."""
        out: list[str] = []
        for state, new in self.writes:
            old_text = state.raw.decode("utf-8", "replace") if state.raw is not None else ""
            new_text = new.decode("utf-8", "replace")
            name = str(state.path)
            out.append(unified_diff(old_text, new_text, name if state.existed else "/dev/null", name))
        return self.redact("".join(out))

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, mask(secret))
        return text


def unified_diff(old: str, new: str, fromfile: str, tofile: str) -> str:
    """``diff -u`` output, with the "No newline at end of file" marker where it applies."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile, tofile)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


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


# -- NO_PROXY, Claude Code's rules -----------------------------------------------------------


def no_proxy_covers(entries: Iterable[str], host: str, port: int | None = None) -> str | None:
    """The entry that exempts ``host`` the way Claude Code matches, else None."""
    return no_proxy_matches(list(entries), host, port)


def gateway_hosts(host: str) -> list[str]:
    host = host.lower()
    if host in LOOPBACK_NAMES:
        return [host] + [h for h in LOOPBACK_NAMES if h != host]
    if host == "::1":
        return ["::1", "localhost"]
    return [host]


# -- loading ---------------------------------------------------------------------------------


@dataclass
class _Loaded:
    state: FileState
    doc: JsonDoc


def _load(path: Path) -> _Loaded:
    state = read_state(path)
    if state.raw is None:
        return _Loaded(state, JsonDoc.new())
    try:
        doc = JsonDoc.parse(state.raw, str(path))
    except JsonFileError as exc:
        raise SetupError(f"{exc}; fix or move the file and run again. Nothing was changed.") from None
    return _Loaded(state, doc)


def _env_of(data: Mapping[str, Any]) -> dict[str, str]:
    env = data.get("env")
    if not isinstance(env, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in env.items()}


def collect_secrets(value: Any, out: set[str], key: str = "") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            collect_secrets(v, out, str(k))
    elif isinstance(value, list):
        for v in value:
            collect_secrets(v, out, key)
    elif isinstance(value, str):
        if _SECRET_KEY.search(key) and value:
            out.add(value)
        m = re.match(r"^[a-z][a-z0-9+.-]*://[^/@:]*:([^/@]+)@", value, re.IGNORECASE)
        if m:
            out.add(m.group(1))


def _where(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


# -- the plan --------------------------------------------------------------------------------


def build_plan(options: SetupOptions) -> Plan:
    env = dict(options.env)
    gateway = normalize_gateway(options.gateway)
    host = urlsplit(gateway).hostname or ""
    paths = ClaudePaths.from_env(env, options.home)
    home = options.home

    def where(p: Path) -> str:
        return _where(p, home)

    user = _load(paths.settings)
    glob = _load(paths.global_config)
    env_block = user.doc.get(("env",), MISSING)
    if env_block is not MISSING and not isinstance(env_block, dict):
        raise SetupError(f'{paths.settings}: "env" is not a JSON object; fix it by hand. Nothing was changed.')

    higher: list[tuple[str, Path, dict[str, Any]]] = []
    notes: list[Note] = []
    for label, path in paths.overriding_settings(options.project_dir):
        try:
            state = read_state(path)
        except Exception as exc:  # unreadable managed file: report, do not fail
            notes.append(Note("warn", f"cannot read {path} ({exc}); overrides not checked"))
            continue
        if state.raw is None:
            continue
        try:
            data = JsonDoc.parse(state.raw, str(path)).data
        except JsonFileError as exc:
            notes.append(Note("warn", f"{label} {exc}; Claude Code will report it too"))
            continue
        higher.append((label, path, data))

    user_env = _env_of(user.doc.data)

    # The token: explicit > ccgate config > the one already set for this gateway > placeholder.
    if options.key:
        token, token_source = options.key, "--key"
    elif options.config_tokens:
        token, token_source = options.config_tokens[0], "the ccgate config (client token)"
    elif user_env.get("ANTHROPIC_AUTH_TOKEN") and user_env.get("ANTHROPIC_BASE_URL", "").rstrip("/") == gateway:
        token, token_source = user_env["ANTHROPIC_AUTH_TOKEN"], "already in the settings"
    else:
        token, token_source = PLACEHOLDER_TOKEN, "placeholder (the gateway has no client keys)"

    plan = Plan(paths=paths, gateway=gateway, token=token, token_source=token_source)
    plan.notes.extend(notes)
    collect_secrets(user.doc.data, plan.secrets)
    collect_secrets(glob.doc.data, plan.secrets)
    for _, _, data in higher:
        collect_secrets(data, plan.secrets)
    for k, v in env.items():
        collect_secrets({k: v}, plan.secrets)
    if token != PLACEHOLDER_TOKEN:
        plan.secrets.add(token)

    desired: dict[str, tuple[str, str, bool]] = {
        "ANTHROPIC_BASE_URL": (
            gateway,
            "Claude Code sends its API requests (/v1/messages) to this root: the gateway",
            False,
        ),
        "ANTHROPIC_AUTH_TOKEN": (
            token,
            f"the gateway key, sent as Authorization: Bearer (source: {token_source}); "
            "a token also makes Claude Code skip the first-run check of api.anthropic.com",
            True,
        ),
    }
    for var, model in options.models.items():
        desired[var] = (model, "the model this alias resolves to, as you asked", False)

    def set_env(var: str, value: str, why: str, secret: bool = False) -> None:
        old = user.doc.get(("env", var), MISSING)
        if old == value:
            return
        user.doc.set(("env", var), value)
        plan.changes.append(Change(paths.settings, f"env.{var}", old, value, why, secret))

    for var, (value, why, secret) in desired.items():
        set_env(var, value, why, secret)

    # Credential conflicts.
    if user_env.get("ANTHROPIC_API_KEY"):
        old = user.doc.get(("env", "ANTHROPIC_API_KEY"))
        user.doc.remove(("env", "ANTHROPIC_API_KEY"))
        plan.changes.append(
            Change(
                paths.settings,
                "env.ANTHROPIC_API_KEY",
                old,
                MISSING,
                "a second credential beside ANTHROPIC_AUTH_TOKEN makes Claude Code report "
                "an auth conflict and may send the wrong key to the gateway",
                True,
            )
        )
    if env.get("ANTHROPIC_API_KEY") and "ANTHROPIC_API_KEY" not in _env_of(user.doc.data):
        set_env(
            "ANTHROPIC_API_KEY",
            "",
            "your shell exports ANTHROPIC_API_KEY; settings override the shell, and an empty "
            "value hides that key from Claude Code so only the gateway token is sent",
        )
    if env.get("ANTHROPIC_API_KEY"):
        plan.notes.append(
            Note(
                "info",
                "your shell exports ANTHROPIC_API_KEY; Claude Code will not see it (the "
                "settings set it empty), other programs will",
                "remove the export from your shell profile if the key is no longer needed",
            )
        )

    # Keep Claude Code's traffic to the gateway off any proxy.
    _plan_no_proxy(plan, user, env, higher, host, set_env, where)

    # Onboarding: the first-run wizard's check ignores ANTHROPIC_BASE_URL.
    if glob.doc.get(("hasCompletedOnboarding",)) is not True:
        old = glob.doc.get(("hasCompletedOnboarding",), MISSING)
        glob.doc.set(("hasCompletedOnboarding",), True)
        plan.changes.append(
            Change(
                paths.global_config,
                "hasCompletedOnboarding",
                old,
                True,
                "Claude Code's first-run wizard checks api.anthropic.com directly (it ignores "
                "ANTHROPIC_BASE_URL) and exits when that fails; marking onboarding done skips it",
            )
        )

    _warn_conflicts(plan, user, glob, higher, env, desired, where)

    final_user_env = _env_of(user.doc.data)
    effective = dict(env)
    effective.update(final_user_env)
    for _, _, data in higher:
        effective.update(_env_of(data))
    plan.effective_env = effective

    for loaded in (user, glob):
        new = loaded.doc.encoded()
        if loaded.state.raw != new and (loaded.state.raw is not None or loaded.doc.data):
            plan.writes.append((loaded.state, new))
    return plan


def _plan_no_proxy(
    plan: Plan,
    user: _Loaded,
    env: Mapping[str, str],
    higher: list[tuple[str, Path, dict[str, Any]]],
    host: str,
    set_env: Any,
    where: Any,
) -> None:
    user_env = _env_of(user.doc.data)
    sources: list[str] = []
    for var in PROXY_VARS:
        if env.get(var, "").strip():
            sources.append(f"{var} in the shell")
        if user_env.get(var, "").strip():
            sources.append(f"{var} in {where(plan.paths.settings)}")
        for _label, path, data in higher:
            if _env_of(data).get(var, "").strip():
                sources.append(f"{var} in {where(path)}")
    if not sources:
        return
    entries: list[str] = []
    for var in NO_PROXY_VARS:
        value = user_env[var] if var in user_env else env.get(var, "")
        for entry in split_no_proxy(value):
            if entry not in entries:
                entries.append(entry)
    missing = [h for h in gateway_hosts(host) if no_proxy_covers(entries, h) is None]
    value = ",".join(entries + missing)
    why = (
        f"a proxy is configured ({', '.join(sources)}); Claude Code bypasses it only for hosts "
        f"listed exactly, so the gateway's host ({host}) goes here"
        + (" (existing entries kept)" if entries else "")
    )
    set_env("NO_PROXY", value, why)
    set_env(
        "no_proxy",
        value,
        "the same list under the lowercase name: tools differ in which spelling they read "
        "first, and Claude Code's order is not documented",
    )
    for label, path, data in higher:
        henv = _env_of(data)
        for var in NO_PROXY_VARS:
            if var in henv and no_proxy_covers(split_no_proxy(henv[var]), host) is None:
                plan.notes.append(
                    Note(
                        "warn",
                        f"{var} in {where(path)} ({label}) does not list {host} and wins over "
                        "the user settings, so Claude Code will send gateway traffic to the proxy",
                        f"add {host} to {var} in {path}",
                    )
                )


def _warn_conflicts(
    plan: Plan,
    user: _Loaded,
    glob: _Loaded,
    higher: list[tuple[str, Path, dict[str, Any]]],
    env: Mapping[str, str],
    desired: Mapping[str, tuple[str, str, bool]],
    where: Any,
) -> None:
    settings_name = where(plan.paths.settings)
    for var, (value, _, secret) in desired.items():
        winner: tuple[str, Path, str] | None = None
        for label, path, data in higher:
            other = _env_of(data).get(var)
            if other is not None and other != value:
                winner = (label, path, other)
        if winner is not None:
            label, path, other = winner
            shown = mask(other) if secret else other
            fix = (
                "ask your administrator to change it; managed settings cannot be overridden"
                if label == "managed settings"
                else f"remove env.{var} from {path}, or run setup with the same value"
            )
            plan.notes.append(
                Note(
                    "warn",
                    f"{var} is also set in {where(path)} ({label}) to {shown!r}; that file wins "
                    f"over {settings_name}, so Claude Code will use it there",
                    fix,
                )
            )
        shell = env.get(var)
        if shell is not None and shell != value:
            shown = mask(shell) if secret else shell
            plan.notes.append(
                Note(
                    "info",
                    f"your shell exports {var}={shown}; Claude Code uses {settings_name} "
                    "instead (settings override the shell), other programs still see the "
                    "shell value",
                    f"remove the export of {var} from your shell profile to avoid confusion",
                )
            )
    for label, path, data in higher:
        henv = _env_of(data)
        if henv.get("ANTHROPIC_API_KEY"):
            plan.notes.append(
                Note(
                    "warn",
                    f"ANTHROPIC_API_KEY is set in {where(path)} ({label}); beside the gateway "
                    "token Claude Code reports an auth conflict",
                    f"remove env.ANTHROPIC_API_KEY from {path}",
                )
            )
        if data.get("apiKeyHelper"):
            plan.notes.append(
                Note(
                    "warn",
                    f"apiKeyHelper is set in {where(path)} ({label}); a second credential "
                    "source beside the gateway token",
                    f"remove apiKeyHelper from {path}",
                )
            )
    if user.doc.get(("apiKeyHelper",)):
        plan.notes.append(
            Note(
                "warn",
                f"apiKeyHelper is set in {settings_name}; ANTHROPIC_AUTH_TOKEN takes precedence, "
                "but two credential sources can make Claude Code report an auth conflict",
                f"remove apiKeyHelper from {plan.paths.settings} if the gateway is your only endpoint",
            )
        )
    if glob.doc.get(("primaryApiKey",)):
        plan.notes.append(
            Note(
                "warn",
                f"{where(plan.paths.global_config)} holds a stored API key (primaryApiKey, "
                "from an earlier /login); beside the gateway token Claude Code reports an "
                "auth conflict, and setup does not delete logins",
                "run `claude`, then /logout (or remove primaryApiKey from the file by hand)",
            )
        )
    final_env = _env_of(user.doc.data)
    for var in (*PROVIDER_SWITCHES, "CLAUDE_CODE_OAUTH_TOKEN"):
        places = []
        if env.get(var):
            places.append("the shell")
        if final_env.get(var):
            places.append(settings_name)
        places.extend(where(p) for _, p, d in higher if _env_of(d).get(var))
        if places:
            plan.notes.append(
                Note(
                    "warn",
                    f"{var} is set ({', '.join(places)}); Claude Code then "
                    + (
                        "uses that cloud provider and ignores ANTHROPIC_BASE_URL"
                        if var != "CLAUDE_CODE_OAUTH_TOKEN"
                        else "has a second credential beside the gateway token"
                    ),
                    f"unset {var}",
                )
            )
