"""The configuration schema. Unknown keys are errors, so a typo never silently does nothing.

Every field is documented in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

from ccgate.config.secrets import Secret
from ccgate.translate.compat import AnthropicQuirks
from ccgate.translate.quirks import Quirks

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4545
DEFAULT_MAX_BODY = 32 * 1024 * 1024  # Anthropic's own request limit
ANTHROPIC_URL = "https://api.anthropic.com"

_Q = TypeVar("_Q", Quirks, AnthropicQuirks)
ProviderKind = Literal["anthropic", "anthropic-compatible", "openai-compatible"]
AuthHeader = Literal["x-api-key", "bearer", "none"]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class ClientToken(_Strict):
    token: str
    name: str = "client"


class Auth(_Strict):
    # Each entry is a secret reference, or {name, token} to name the client in logs.
    tokens: list[str | ClientToken] = []


class Admin(_Strict):
    # Secret reference for the admin API (/admin/*); unset (and no $CCGATE_ADMIN_KEY) = disabled.
    key: str | None = None


class MetricsAccess(_Strict):
    # Who may read /metrics: "auto" = open on a loopback listen address, else the admin key or
    # `token`; "required" = always one of them; "none" = open everywhere (an explicit opt-out).
    auth: Literal["auto", "required", "none"] = "auto"
    # Secret reference for a scrape-only Bearer token (Prometheus `authorization.credentials`).
    token: str | None = None


def dial_host(listen_host: str) -> str:
    """Where a client on this machine reaches a server listening on ``listen_host``: a
    wildcard address is asked on loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen_host, listen_host)


def local_url(listen_host: str, port: int) -> str:
    """``http://host:port`` of a server on this machine (IPv6 in brackets)."""
    host = dial_host(listen_host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Server(_Strict):
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body_bytes: int = DEFAULT_MAX_BODY
    auth: Auth = msgspec.field(default_factory=Auth)
    admin: Admin = msgspec.field(default_factory=Admin)
    metrics: MetricsAccess = msgspec.field(default_factory=MetricsAccess)
    # Seconds an upstream success keeps /readyz green without a fresh probe.
    ready_window: float = 60.0
    # Translated streams: seconds of upstream silence before an SSE ping goes to the client.
    ping_interval: float = 10.0
    # Reload the config when this file changes (polled every second); SIGHUP and
    # POST /admin/config/reload reload it either way.
    watch_config: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range 1-65535")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        if self.ping_interval <= 0:
            raise ValueError("ping_interval must be positive")


class Tls(_Strict):
    ca_file: str | None = None
    # Trust the operating system's store as well as the Mozilla bundle (certifi).
    use_system_store: bool = False
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True


class Timeouts(_Strict):
    connect: float = 10.0
    # Longest silence allowed between two reads; Anthropic pings streams every ~15 s.
    read: float = 300.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"timeouts.{name} must be positive")


class Pool(_Strict):
    max_connections: int = 256
    keepalive_seconds: float = 60.0


class Provider(_Strict):
    name: str
    # A named provider (config/presets.py) filling kind, base_url, auth_header and quirks;
    # applied to the raw file before this struct is built, so fields given here win.
    preset: str | None = None
    kind: ProviderKind = "anthropic"
    # anthropic kinds: the root ccgate appends /v1/messages to. openai-compatible: the OpenAI
    # base URL including its version (".../v1"), which ccgate appends /chat/completions to.
    base_url: str = ANTHROPIC_URL
    # Empty means bring-your-own-key: the client's credential passes through unchanged.
    api_keys: list[str] = []
    # "none": send no credential at all (self-hosted servers without auth).
    auth_header: AuthHeader = "x-api-key"
    # Overrides of the preset's quirks (translate.Quirks or translate.compat.AnthropicQuirks).
    quirks: dict[str, Any] = {}
    proxy: str | None = None
    tls: Tls = msgspec.field(default_factory=Tls)
    ipv4_only: bool = False
    timeouts: Timeouts = msgspec.field(default_factory=Timeouts)
    pool: Pool = msgspec.field(default_factory=Pool)
    # A server that may think for minutes before its first byte (a self-hosted model on CPU
    # reading a long prompt): `ccgate setup` then gives Claude Code its longest stream idle
    # timeout (docs/providers.md, "Slow self-hosted providers").
    slow: bool = False

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"provider name {self.name!r} must be non-empty and contain no '/'")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")
        self.base_url = self.base_url.rstrip("/")
        if self.kind == "openai-compatible":
            if self.base_url.endswith("/chat/completions"):
                raise ValueError(
                    f"base_url {self.base_url!r}: give the OpenAI base URL (for example "
                    "https://host/v1); ccgate appends /chat/completions itself"
                )
        elif self.base_url.endswith("/v1"):
            raise ValueError(
                f"base_url {self.base_url!r} ends in /v1; ccgate appends /v1/messages itself, "
                "so drop the /v1"
            )
        if self.auth_header == "none" and self.api_keys:
            raise ValueError("auth_header is none but api_keys are given; use bearer or x-api-key")
        # Fail at load time on a misspelt or mistyped quirk, not on the first request.
        self.openai_quirks()
        self.anthropic_quirks()

    @property
    def translated(self) -> bool:
        return self.kind == "openai-compatible"

    def openai_quirks(self) -> Quirks:
        return _quirks(Quirks, self.quirks if self.kind == "openai-compatible" else {})

    def anthropic_quirks(self) -> AnthropicQuirks:
        return _quirks(AnthropicQuirks, self.quirks if self.kind == "anthropic-compatible" else {})


def _quirks(cls: type[_Q], values: dict[str, Any]) -> _Q:
    known = set(cls.__dataclass_fields__)
    for name in values:
        if name not in known:
            raise ValueError(f"quirks.{name}: unknown quirk; known: {', '.join(sorted(known))}")
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"quirks: {exc}") from None


class ModelRoute(_Strict):
    # Exact model id or glob ("claude-*haiku*"), matched against what the client asked for.
    match: str
    # "provider" keeps the requested model name; "provider/model" rewrites it.
    to: str
    display_name: str | None = None
    # Clamp for the client's max_tokens (Claude Code asks 32000+; many models allow less).
    max_tokens: int | None = None
    # The model's context window: prompts estimated above it get Anthropic's "prompt is too
    # long" (so Claude Code compacts) instead of a provider that truncates silently.
    context_window: int | None = None
    # Ordered "provider[/model]" targets tried when this one's breaker is open or retries are spent.
    fallbacks: list[str] = []

    def __post_init__(self) -> None:
        for name in ("max_tokens", "context_window"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive")


class Store(_Strict):
    # Issued keys and usage. Default: SQLite in the user data dir; $CCGATE_DB overrides.
    enabled: bool = True
    path: str | None = None
    record_usage: bool = True


class Retries(_Strict):
    """``routing.retries``; also the fields of ``routing.RetryPolicy``, which applies them."""

    # Attempts per candidate provider, the first included (3 = up to 2 retries); backoff is
    # full jitter in [0, min(cap, base*2^n)].
    max_attempts: int = 3
    base: float = 0.5
    cap: float = 8.0
    # No new attempt starts later than this many seconds after the request arrived. It bounds
    # waiting and retrying, not the length of an attempt (a stream may run for minutes).
    deadline: float = 60.0
    # Longest single wait (retry-after, cooling keys) before a ready fallback is preferred;
    # on the last candidate the deadline rules.
    max_wait: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name in ("base", "cap", "deadline", "max_wait"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


class BreakerSettings(_Strict):
    """``routing.breaker``; also the defaults and checks of ``routing.Breaker``'s settings."""

    # Consecutive failures (5xx, 529, timeouts, connect errors) within `window` seconds that open it.
    failure_threshold: int = 5
    window: float = 60.0
    # Seconds it stays open before one probe request is let through (doubling up to 300).
    open_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.window <= 0 or self.open_seconds <= 0:
            raise ValueError("window and open_seconds must be positive")


class Routing(_Strict):
    retries: Retries = msgspec.field(default_factory=Retries)
    breaker: BreakerSettings = msgspec.field(default_factory=BreakerSettings)
    # How requests spread over a provider's api_keys: round_robin (healthy keys in turn) or random.
    key_strategy: Literal["round_robin", "random"] = "round_robin"


class Log(_Strict):
    access: bool = True
    level: Literal["debug", "info", "warning", "error"] = "info"
    # Where log lines go: "stderr" or a file path.
    file: str = "stderr"


class Config(_Strict):
    server: Server = msgspec.field(default_factory=Server)
    providers: list[Provider] = msgspec.field(
        default_factory=lambda: [Provider(name="anthropic")]
    )
    models: list[ModelRoute] = []
    routing: Routing = msgspec.field(default_factory=Routing)
    store: Store = msgspec.field(default_factory=Store)
    log: Log = msgspec.field(default_factory=Log)


class ResolvedSecrets(msgspec.Struct):
    """Secrets resolved at load time, kept apart from the schema so it can be printed."""

    client_tokens: dict[str, Secret]  # name -> token
    provider_keys: dict[str, list[Secret]]  # provider name -> keys
    admin_key: Secret | None = None
    metrics_token: Secret | None = None
