"""``--print-env``: the same settings as shell lines, for users who keep them in a profile.

Output is only assignments and unsets, so ``eval "$(ccgate setup claude-code --print-env)"``
is safe; explanations go to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ccgate.claude_code import env as cc
from ccgate.proxy_env import NO_PROXY_VARS
from ccgate.setup.plan import no_proxy_for_gateway

__all__ = ["SHELLS", "detect_shell", "env_assignments", "render"]

SHELLS = ("bash", "zsh", "fish", "powershell")


def detect_shell(env: Mapping[str, str]) -> str:
    name = os.path.basename(env.get("SHELL", "")).lower()
    if name in ("bash", "zsh", "fish"):
        return name
    if name in ("pwsh", "powershell") or sys.platform == "win32":
        return "powershell"
    return "bash"


def env_assignments(
    gateway: str, token: str, models: Mapping[str, str], env: Mapping[str, str], host: str
) -> tuple[dict[str, str], list[str]]:
    """(variables to set, variables to unset) for a shell-only setup."""
    out = {cc.BASE_URL: gateway, cc.AUTH_TOKEN: token}
    out.update(models)
    if cc.proxy_variable(env) is not None:
        _, value = no_proxy_for_gateway((env.get(var, "") for var in NO_PROXY_VARS), host)
        out.update(dict.fromkeys(NO_PROXY_VARS, value))
    return out, [cc.API_KEY]


def _quote_sh(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _quote_fish(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ps(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render(shell: str, assign: Mapping[str, str], unset: list[str]) -> str:
    lines: list[str] = []
    for var in unset:
        if shell == "fish":
            lines.append(f"set -e {var}")
        elif shell == "powershell":
            lines.append(f"Remove-Item Env:{var} -ErrorAction SilentlyContinue")
        else:
            lines.append(f"unset {var}")
    for var, value in assign.items():
        if shell == "fish":
            lines.append(f"set -gx {var} {_quote_fish(value)}")
        elif shell == "powershell":
            lines.append(f"$env:{var} = {_quote_ps(value)}")
        else:
            lines.append(f"export {var}={_quote_sh(value)}")
    return "\n".join(lines) + "\n"
