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
# auto: ccgate's own HTTP/1.1 client when the provider is reached directly, aiohttp through a
# proxy; aiohttp: aiohttp always (upstream/choose.py).
HttpClient = Literal["auto", "aiohttp"]


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


class Console(_Strict):
    """``server.console``: the web console at /console (docs/console.md)."""

    enabled: bool = True
    # Minutes a console session lives without use, and at most in all.
    idle_minutes: float = 60.0
    max_hours: float = 12.0
    # Sign-in through the login: section's identity provider: members of these IdP groups, or
    # these e-mail addresses, get a console session (both empty: nobody, only the admin key).
    admin_groups: list[str] = msgspec.field(default_factory=list)
    admin_emails: list[str] = msgspec.field(default_factory=list)
    # What the sign-in button names ("Sign in with <idp_name>"); default: the issuer's host.
    idp_name: str | None = None

    def __post_init__(self) -> None:
        if self.idle_minutes <= 0 or self.max_hours <= 0:
            raise ValueError("console.idle_minutes and console.max_hours must be positive")
        if any(not e or "@" not in e for e in self.admin_emails):
            raise ValueError("console.admin_emails: each entry must be an e-mail address")
        if self.idp_name is not None and not 0 < len(self.idp_name) <= 64:
            raise ValueError("console.idp_name must be 1 to 64 characters")


class MetricsAccess(_Strict):
    # Who may read /metrics: "auto" = open on a loopback listen address, else the admin key or
    # `token`; "required" = always one of them; "none" = open everywhere (an explicit opt-out).
    auth: Literal["auto", "required", "none"] = "auto"
    # Secret reference for a scrape-only Bearer token (Prometheus `authorization.credentials`).
    token: str | None = None
    # Label per-client metrics with the issued key's (or config token's) name. Off by default:
    # one series per key is unbounded cardinality on a gateway with many keys.
    key_names: bool = False


def dial_host(listen_host: str) -> str:
    """Where a client on this machine reaches a server listening on ``listen_host``: a
    wildcard address is asked on loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen_host, listen_host)


def local_url(listen_host: str, port: int) -> str:
    """``http://host:port`` of a server on this machine (IPv6 in brackets)."""
    host = dial_host(listen_host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Limits(_Strict):
    """What one client connection may hold (server/protocol.py, docs/configuration.md)."""

    # The request target, header names and values together, in bytes; more gets 431.
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    # Seconds from the connection (or a request's first byte) to the end of its headers.
    header_timeout: float = 15.0
    # Seconds from the end of the headers to the end of the body.
    body_timeout: float = 60.0
    # Seconds an idle keep-alive connection stays open between requests.
    idle_timeout: float = 75.0
    # Open client connections; one more is answered 503 and closed at once.
    max_connections: int = 10_000
    # Requests being answered at once (health and metrics excepted); one more gets 529
    # overloaded_error with retry-after. None: bounded by max_connections only.
    max_concurrent_requests: int | None = None

    def __post_init__(self) -> None:
        if self.max_header_bytes < 4096:
            raise ValueError("limits.max_header_bytes must be at least 4096")
        for name in ("max_headers", "max_connections", "max_concurrent_requests"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"limits.{name} must be at least 1")
        for name in ("header_timeout", "body_timeout", "idle_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"limits.{name} must be positive")


MAX_WORKERS = 256


class Server(_Strict):
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body_bytes: int = DEFAULT_MAX_BODY
    auth: Auth = msgspec.field(default_factory=Auth)
    admin: Admin = msgspec.field(default_factory=Admin)
    metrics: MetricsAccess = msgspec.field(default_factory=MetricsAccess)
    console: Console = msgspec.field(default_factory=Console)
    limits: Limits = msgspec.field(default_factory=Limits)
    # Seconds an upstream success keeps /readyz green without a fresh probe.
    ready_window: float = 60.0
    # Translated streams: seconds of upstream silence before an SSE ping goes to the client.
    ping_interval: float = 10.0
    # Reload the config when this file changes (polled every second); SIGHUP and
    # POST /admin/config/reload reload it either way.
    watch_config: bool = False
    # Worker processes of `ccgate serve` (--workers): 1 is one process; "auto" one per CPU.
    workers: int | Literal["auto"] = 1

    def __post_init__(self) -> None:
        if isinstance(self.workers, int) and not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be from 1 to {MAX_WORKERS} or \"auto\", got {self.workers}")
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
    # Requests in flight to this provider at once; None: no limit (each stream holds one
    # connection, and a team gateway holds thousands). When set, a request waits at most
    # wait_timeout seconds for a free one, then fails naming the pool.
    max_connections: int | None = None
    wait_timeout: float = 10.0
    keepalive_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("pool.max_connections must be at least 1 (or null: no limit)")
        if self.wait_timeout <= 0:
            raise ValueError("pool.wait_timeout must be positive")


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
    http_client: HttpClient = "auto"
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


class RequestLog(_Strict):
    """``store.request_log``: the bounded log behind the console's Requests page (no bodies)."""

    enabled: bool = True
    # Rows older than this many days are deleted (checked about once a minute).
    retention_days: float = 7.0
    # At most this many rows are kept; the oldest go first.
    max_rows: int = 100_000

    def __post_init__(self) -> None:
        if self.retention_days <= 0:
            raise ValueError("request_log.retention_days must be positive")
        if self.max_rows < 1:
            raise ValueError("request_log.max_rows must be at least 1")


STORE_URL_SCHEMES = ("postgresql", "postgres", "sqlite")


class StorePool(_Strict):
    """``store.pool``: PostgreSQL connections and the bound on every wait, in seconds."""

    min_size: int = 1
    max_size: int = 4
    connect_timeout: float = 5.0  # connecting, and waiting for a free pooled connection
    statement_timeout: float = 5.0  # any one statement (PostgreSQL's statement_timeout)

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size or not 1 <= self.max_size <= 100:
            raise ValueError("pool: need 0 <= min_size <= max_size <= 100 and max_size >= 1")
        if not 0 < self.connect_timeout <= 300 or not 0 < self.statement_timeout <= 3600:
            raise ValueError("pool: connect_timeout must be in (0, 300] and statement_timeout in (0, 3600]")


class Store(_Strict):
    # Issued keys and usage. Default: SQLite in the user data dir; $CCGATE_DB overrides.
    enabled: bool = True
    path: str | None = None
    # postgresql://user@host:5432/db (or postgres://); a path or sqlite:///path is SQLite.
    # Exclusive with path. Needs the ccgate[postgres] extra.
    url: str | None = None
    # The PostgreSQL password as a secret reference (env:NAME, file:PATH), kept out of the URL.
    password: str | None = None
    pool: StorePool = msgspec.field(default_factory=StorePool)
    # Usage rows held in memory while the store cannot be written (PostgreSQL down); past this
    # many, new rows are dropped and counted (ccgate_usage_rows_dropped_total).
    buffer_rows: int = 100_000
    record_usage: bool = True
    request_log: RequestLog = msgspec.field(default_factory=RequestLog)

    def __post_init__(self) -> None:
        if self.path and self.url:
            raise ValueError("store: set either path (SQLite) or url, not both")
        scheme = self.url.partition("://")[0].lower() if self.url and "://" in self.url else None
        if self.url is not None and scheme not in STORE_URL_SCHEMES:
            raise ValueError("store.url must start with postgresql://, postgres:// or sqlite:///")
        if not 1 <= self.buffer_rows <= 10_000_000:
            raise ValueError("store.buffer_rows must be from 1 to 10000000")


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
    # "json": every log line one JSON object (observe/logs.py), like the access log.
    format: Literal["text", "json"] = "text"
    # Where log lines go: "stderr" or a file path.
    file: str = "stderr"


class Oidc(_Strict):
    """The company's identity provider (OpenID Connect), ``login.oidc``."""

    issuer: str
    client_id: str
    # Secret reference (env:NAME, file:PATH); None for a public client (PKCE only).
    client_secret: str | None = None
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "profile", "email", "offline_access"])
    # Only these e-mail domains may sign in (empty: any the IdP vouches for).
    allowed_email_domains: list[str] = []
    # The id_token claim holding the user's groups (Okta/Keycloak "groups", Entra "groups" ids).
    groups_claim: str = "groups"
    # Extra CA bundle for an IdP behind a private CA (certifi is always trusted).
    ca_file: str | None = None


class LoginSession(_Strict):
    """The gateway's own session tokens (JWTs), ``login.session``."""

    # Secret reference; at least 32 characters. Changing it signs every developer out.
    jwt_secret: str
    # Lifetime of one JWT: seconds, or 30m / 1h / 12h. Claude Code refreshes 5 minutes before.
    ttl: int | str = 3600


class LoginPolicy(_Strict):
    """One managed-settings policy: the first whose ``groups`` meets the developer's wins;
    a policy without ``groups`` matches everyone (put it last as the default)."""

    groups: list[str] = []
    # Claude Code managed settings pushed to the CLI: availableModels, permissions, env ...
    settings: dict[str, Any] = {}


class LoginTelemetry(_Strict):
    # OTLP/HTTP collector the CLI's /v1/metrics, /v1/logs and /v1/traces are relayed to
    # (its base URL; the path is appended). None: accepted and dropped.
    forward_to: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024


class Login(_Strict):
    """Claude Code's own /login into this gateway (docs/login.md)."""

    # The origin developers type into /login (http only on loopback, else https).
    public_url: str
    oidc: Oidc
    session: LoginSession
    policies: list[LoginPolicy] = []
    telemetry: LoginTelemetry = msgspec.field(default_factory=LoginTelemetry)
    # Device authorizations per client address per 10 minutes before slow_down.
    device_rate_limit: int = 30
    # Accept a public_url on a public IP (the CLI then needs gatewayInternalNetworks).
    allow_public_address: bool = False


class ModelPrice(_Strict):
    """``prices:`` entries: USD per million tokens. Cache prices left out bill those tokens
    as plain input (a provider without prompt-cache pricing)."""

    input: float
    output: float
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None
    cache_read: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read"):
            value = getattr(self, name)
            if value is not None and not (0 <= value <= 100_000):
                raise ValueError(f"{name} must be between 0 and 100000 (USD per million tokens)")


REDIS_SCHEMES = ("redis", "rediss", "unix")


class RedisOnFailure(_Strict):
    """What each feature does while Redis does not answer (docs/team.md#redis). Only rate
    limits have a choice; events are dropped and counted (the processes converge through the
    store's key poll), short-lived records (console sessions, /login state) answer 503."""

    rate_limits: Literal["open", "closed"] = "open"


class Redis(_Strict):
    """``redis:``: state shared between gateway replicas (ccgate.shared.redis)."""

    # redis://[user:password@]host:port/db, rediss:// (TLS), unix:///path.sock; or a secret
    # reference (env:NAME, file:PATH) holding the URL, since it may carry the password.
    url: str
    password: str | None = None  # secret reference; else the URL's own password, if any
    timeout: float = 0.25  # seconds per operation: a limited key's request waits this at most
    prefix: str = "ccgate:"  # namespace of every key and channel (several gateways on one Redis)
    tls: Tls = msgspec.field(default_factory=Tls)  # for rediss://: ca_file, verify, client_cert/key
    on_failure: RedisOnFailure = msgspec.field(default_factory=RedisOnFailure)

    def __post_init__(self) -> None:
        if not self.url.startswith(("env:", "file:")):
            scheme = self.url.partition("://")[0].lower() if "://" in self.url else ""
            if scheme not in REDIS_SCHEMES:
                # Never echo the URL: it may hold the password.
                raise ValueError("url must start with redis://, rediss:// or unix:// "
                                 "(or be env:NAME / file:PATH)")
        if not 0 < self.timeout <= 10:
            raise ValueError("timeout must be more than 0 and at most 10 seconds")
        if not 1 <= len(self.prefix) <= 64 or not self.prefix.isprintable() or " " in self.prefix:
            raise ValueError("prefix must be 1-64 printable characters without spaces")


class Config(_Strict):
    server: Server = msgspec.field(default_factory=Server)
    providers: list[Provider] = msgspec.field(
        default_factory=lambda: [Provider(name="anthropic")]
    )
    models: list[ModelRoute] = []
    routing: Routing = msgspec.field(default_factory=Routing)
    store: Store = msgspec.field(default_factory=Store)
    log: Log = msgspec.field(default_factory=Log)
    login: Login | None = None
    # Prices per model ("model" or "provider/model", fnmatch globs), ahead of the built-in
    # Anthropic table (store/prices.json); see docs/configuration.md.
    prices: dict[str, ModelPrice] = {}
    # Shared state between replicas (rate limits, revocations, cooldowns); None: this process only.
    redis: Redis | None = None


class ResolvedSecrets(msgspec.Struct):
    """Secrets resolved at load time, kept apart from the schema so it can be printed."""

    client_tokens: dict[str, Secret]  # name -> token
    provider_keys: dict[str, list[Secret]]  # provider name -> keys
    admin_key: Secret | None = None
    metrics_token: Secret | None = None
    redis_url: Secret | None = None  # redis.url resolved (it may hold a password)
    redis_password: Secret | None = None
