"""Who may sign in to the console through the identity provider of the ``login:`` section,
without I/O.

A developer the IdP vouches for gets a console session only when listed: a member of one of
``server.console.admin_groups`` or one of ``server.console.admin_emails`` (compared without
case). Both empty means nobody: the admin key stays the only way in, and the sign-in page
offers no IdP button. Like all of ``server.console`` the lists are read at start.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ccgate.config.model import Console as ConsoleSettings
from ccgate.login.settings import LoginSettings
from ccgate.login.tokens import Identity

CALLBACK = "/console/signin/callback"  # register public_url + this at the IdP


def offered(login: LoginSettings | None, settings: ConsoleSettings) -> bool:
    """The sign-in page shows "Sign in with ..." (an IdP is configured and someone may use it)."""
    return login is not None and bool(settings.admin_groups or settings.admin_emails)


def may_use_console(identity: Identity, settings: ConsoleSettings) -> bool:
    if identity.email and identity.email.lower() in {e.lower() for e in settings.admin_emails}:
        return True
    return bool(set(identity.groups) & set(settings.admin_groups))


def display_name(login: LoginSettings, settings: ConsoleSettings) -> str:
    """``idp_name`` when configured, else the issuer's host (``login.example.com``)."""
    return settings.idp_name or urlsplit(login.oidc.issuer).netloc or login.oidc.issuer


def who(identity: Identity) -> str:
    return identity.email or identity.name or identity.sub
