"""The few HTML pages of the browser leg. Every value is escaped; no script, no external
resource; the CSP sent with them allows forms only to this origin and the IdP."""

from __future__ import annotations

from html import escape

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;"
          "color:#222}code,.code{font-family:ui-monospace,monospace;font-size:1.4rem;letter-spacing:.1em}"
          "button{font-size:1rem;padding:.5rem 1rem;margin:.5rem .5rem 0 0}input{font-size:1.2rem}"
          ".muted{color:#666;font-size:.9rem}")


def page(title: str, body: str) -> bytes:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width"><style>{_STYLE}</style></head>'
            f"<body><h1>{escape(title)}</h1>{body}</body></html>").encode()


def enter_code(user_code: str, csrf: str) -> bytes:
    return page("Sign in to Claude Code", (
        "<p>Check that this code matches the one Claude Code shows in your terminal, then continue "
        "to your company's sign-in.</p>"
        '<form method="post" action="/device">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<p><label>Code <input name="user_code" value="{escape(user_code)}" autocomplete="off" '
        'spellcheck="false" required></label></p>'
        '<button type="submit">This matches my device — continue</button>'
        '<button type="submit" formaction="/device/deny">Deny</button>'
        "</form>"
        '<p class="muted">If you did not just run /login in Claude Code, press Deny.</p>'))


def approve(user_code: str, who: str, groups: tuple[str, ...], flow_id: str, csrf: str) -> bytes:
    group_text = f" (groups: {escape(', '.join(groups))})" if groups else ""
    return page("Approve sign-in?", (
        f"<p>Claude Code on the device showing <span class=\"code\">{escape(user_code)}</span> will be "
        f"signed in to this gateway as <strong>{escape(who)}</strong>{group_text}.</p>"
        '<form method="post" action="/device/approve">'
        f'<input type="hidden" name="flow" value="{escape(flow_id)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<button type="submit">Approve</button>'
        '<button type="submit" formaction="/device/deny">Deny</button>'
        "</form>"))


def signed_in(who: str) -> bytes:
    return page("You're signed in", (
        f"<p>Claude Code is signed in as <strong>{escape(who)}</strong>. Return to your terminal: "
        "it connects within a few seconds. You can close this window.</p>"))


def denied() -> bytes:
    return page("Sign-in stopped", "<p>You stopped this sign-in. No access was granted, and the code is "
                                   "no longer valid.</p>")


def problem(title: str, message: str) -> bytes:
    return page(title, f"<p>{escape(message)}</p>")
