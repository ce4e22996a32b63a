"""Routes: one upstream endpoint each; every gateway is configured with the same ones."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Route:
    name: str  # also the model name that selects it (where a gateway allows)
    protocol: str  # "anthropic" (root; /v1/messages appended) | "openai" (.../v1)
    base: str

    @property
    def upstream_path(self) -> str:
        p = urlsplit(self.base).path
        return p + ("/v1/messages" if self.protocol == "anthropic" else "/chat/completions")


def routes(nginx: str, su: str) -> dict[str, Route]:
    """pt-*: passthrough, tr-*: translated; json/sse/burst on nginx, paced/slow/cc scripted."""
    r = [
        Route("pt-json", "anthropic", nginx), Route("pt-sse", "anthropic", nginx + "/sse"),
        Route("pt-burst", "anthropic", nginx + "/sse500"),
        Route("pt-paced", "anthropic", su + "/paced"), Route("pt-slow", "anthropic", su + "/slow"),
        Route("pt-cc", "anthropic", su),
        Route("tr-json", "openai", nginx + "/v1"), Route("tr-sse", "openai", nginx + "/sse/v1"),
        Route("tr-burst", "openai", nginx + "/sse500/v1"),
        Route("tr-paced", "openai", su + "/paced/v1"), Route("tr-slow", "openai", su + "/slow/v1"),
        Route("tr-cc", "openai", su + "/v1"),
    ]
    return {x.name: x for x in r}
