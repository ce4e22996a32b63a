"""``ccgate setup claude-code --login URL``: make Claude Code's /login offer the gateway.

Claude Code (2.1.195+) reads ``forceLoginMethod: "gateway"`` and ``forceLoginGatewayUrl``
from the managed-settings file, and (2.1.332 verified, 2.1.330 too) from the user's own
settings when the machine has no managed source; project, local and flag settings are
ignored for them. So a developer writes user settings (no root), an admin writes the
managed-settings file (``--managed``) for everyone on the machine. The URL must pass the
CLI's own transport rules (docs/login.md), checked here before anything is written.

The plan is computed without I/O beyond reading the files (``setup/gather.py``); writing,
the backup and ``--undo`` are setup's usual ``apply_writes``/``restore_backup``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from ccgate.claude_code.files import ClaudeFiles
from ccgate.login.urls import check_public_url
from ccgate.setup.gather import _read_editable
from ccgate.setup.model import MISSING, Change, Note, Plan, SetupError, display_path

METHOD_KEY = "forceLoginMethod"
URL_KEY = "forceLoginGatewayUrl"
# While signed in to a gateway Claude Code ignores these (docs/login.md): worth a note.
_IGNORED_ENV = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY")


def plan_login(url: str, env: dict[str, str], home: Path, project_dir: Path, *, managed: bool) -> Plan:
    try:
        gateway = check_public_url(url)
    except ValueError as exc:
        raise SetupError(f"--login {exc}") from None
    files = ClaudeFiles.locate(env, home)
    target = files.managed_dir / "managed-settings.json" if managed else files.user_settings
    editable = _read_editable(target)
    doc = editable.doc
    plan = Plan(files=files, gateway=gateway, token="", token_source="Claude Code's /login")
    scope = "the managed-settings file (every user of this machine)" if managed else "your user settings"
    wanted = {METHOD_KEY: ("gateway", "/login offers only the Cloud gateway sign-in"),
              URL_KEY: (gateway, f"the gateway /login connects to, from {scope}")}
    for key, (value, why) in wanted.items():
        old = doc.get((key,), MISSING)
        if old != value:
            doc.set((key,), value)
            plan.changes.append(Change(target, key, old, value, why))
    if not managed:
        _note_managed_source(plan, files)
    env_block = doc.get(("env",), {})
    if isinstance(env_block, dict):
        for name in _IGNORED_ENV:
            if name in env_block:
                plan.notes.append(Note("info", f"{display_path(target, home)} also sets env.{name} (an earlier "
                                       "setup?); Claude Code ignores it while signed in to the gateway"))
    new = doc.encoded()
    if editable.state.raw != new:
        plan.writes.append((editable.state, new))
    return plan


def _note_managed_source(plan: Plan, files: ClaudeFiles) -> None:
    managed = files.managed_dir / "managed-settings.json"
    try:
        data = json.loads(managed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and (data.get(URL_KEY) or data.get(METHOD_KEY)):
        plan.notes.append(Note("warn", f"{managed} already configures the sign-in; Claude Code uses it and "
                               "ignores your user settings for this", "ask your administrator, or run with "
                               "--managed as root"))


def check_login_endpoint(gateway: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Does the gateway answer the discovery Claude Code asks first? (ok, what was found)."""
    url = gateway + "/.well-known/oauth-authorization-server"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as Claude Code: loopback direct
    try:
        with opener.open(url, timeout=timeout) as reply:
            doc = json.loads(reply.read(65536))
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}: is the login: section configured on this gateway?"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"cannot read {url}: {getattr(exc, 'reason', exc)}"
    token = doc.get("token_endpoint") if isinstance(doc, dict) else None
    if not isinstance(token, str):
        return False, f"{url} is not an OAuth discovery document"
    issuer = doc.get("issuer")
    if isinstance(issuer, str) and issuer.rstrip("/") != gateway:
        # Claude Code uses discovered endpoints only on the URL's own origin: sign-in still
        # works through the defaults, but sign-out skips the revocation endpoint.
        return True, (f"the gateway offers sign-in, but calls itself {issuer} (login.public_url); "
                      "use that URL so Claude Code can also revoke its tokens at sign-out")
    return True, f"the gateway offers sign-in (token endpoint {token})"
