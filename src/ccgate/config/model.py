"""The configuration schema. Unknown keys are errors, so a typo never silently does nothing.

Every field is documented in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ccgate.config.secrets import Secret

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4545
DEFAULT_MAX_BODY = 32 * 1024 * 1024  # Anthropic's own request limit
ANTHROPIC_URL = "https://api.anthropic.com"

ProviderKind = Literal["anthropic", "anthropic-compatible", "openai-compatible"]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class ClientToken(_Strict):
    token: str
    name: str = "client"


class Auth(_Strict):
    # Each entry is a secret reference, or {name, token} to name the client in logs.
    tokens: list[str | ClientToken] = []


class Server(_Strict):
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body_bytes: int = DEFAULT_MAX_BODY
    auth: Auth = msgspec.field(default_factory=Auth)
    # Seconds an upstream success keeps /readyz green without a fresh probe.
    ready_window: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range 1-65535")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")


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
    kind: ProviderKind = "anthropic"
    base_url: str = ANTHROPIC_URL
    # Empty means bring-your-own-key: the client's credential passes through unchanged.
    api_keys: list[str] = []
    auth_header: Literal["x-api-key", "bearer"] = "x-api-key"
    proxy: str | None = None
    tls: Tls = msgspec.field(default_factory=Tls)
    ipv4_only: bool = False
    timeouts: Timeouts = msgspec.field(default_factory=Timeouts)
    pool: Pool = msgspec.field(default_factory=Pool)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"provider name {self.name!r} must be non-empty and contain no '/'")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")
        self.base_url = self.base_url.rstrip("/")
        if self.base_url.endswith("/v1"):
            raise ValueError(
                f"base_url {self.base_url!r} ends in /v1; ccgate appends /v1/messages itself, "
                "so drop the /v1"
            )


class ModelRoute(_Strict):
    match: str
    # "provider" keeps the requested model name; "provider/model" rewrites it.
    to: str
    display_name: str | None = None


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
    log: Log = msgspec.field(default_factory=Log)


class ResolvedSecrets(msgspec.Struct):
    """Secrets resolved at load time, kept apart from the schema so it can be printed."""

    client_tokens: dict[str, Secret]  # name -> token
    provider_keys: dict[str, list[Secret]]  # provider name -> keys
