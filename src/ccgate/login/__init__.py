"""Claude Code's own ``/login`` into ccgate (docs/login.md).

The protocol pieces are here, without HTTP: public URL rules (``urls``), managed-settings
policies and their checksum (``policy``), the compiled ``login:`` section (``settings``), the
RFC 8628 device grant (``devicecode``), the browser round trip through the identity provider
(``browser``), session tokens and the refresh-family rule (``tokens``), the OIDC client
(``oidc``: pure checks plus one small I/O class), developers as issued keys (``accounts``),
the OTLP relay (``telemetry``) and the HTML pages (``pages``). ``server/login.py`` puts them
on the gateway's routes; ``server/login_state.py`` keeps the records (device codes, flows,
refresh families, attempt counters) in the gateway's short-lived store.
"""
