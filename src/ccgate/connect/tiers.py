"""Claude Code's tiers -> ``models:`` routes (pure).

Claude Code asks for ``claude-opus-…``, ``claude-sonnet-…`` and ``claude-haiku-…`` ids (haiku
also for background calls); the gateway's routes rewrite them to the provider's model. One
chosen model serves every tier unless the user maps a tier to another model: then that tier
gets its own glob route ahead of the catch-all. A subagent model that is none of the tiers'
gets an id of its own (``claude-ccgate-subagent``, which contains "claude" so Claude Code keeps
it) and ``CLAUDE_CODE_SUBAGENT_MODEL`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ccgate.connect.model import TIERS, ConnectError, RouteInfo

TIER_MATCH = {"opus": "claude-*opus*", "sonnet": "claude-*sonnet*", "haiku": "claude-*haiku*"}
CATCH_ALL = "*"  # the main model: whatever else Claude Code (or another client) asks for
SUBAGENT_ID = "claude-ccgate-subagent"
SUBAGENT_VAR = "CLAUDE_CODE_SUBAGENT_MODEL"
# Claude Code asks the gateway's GET /v1/models and offers what it lists in /model; the gateway
# lists a translated provider's models as claude-via-<provider>/<model> (routing/route.py).
DISCOVERY_VAR = "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"
# Every match connect writes; reconnecting replaces exactly these routes and no others.
MANAGED_MATCHES = frozenset([*TIER_MATCH.values(), CATCH_ALL, SUBAGENT_ID])


@dataclass(frozen=True)
class TierPlan:
    routes: tuple[RouteInfo, ...]
    claude_code_env: Mapping[str, str]  # model variables for Claude Code's settings


def parse_map(text: str) -> dict[str, str]:
    """``opus=ID,sonnet=ID,haiku=ID`` (also main= and subagent=) -> {tier: id}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        tier, sep, model = part.partition("=")
        tier, model = tier.strip().lower(), model.strip()
        if tier == "background":
            tier = "haiku"
        if not sep or not model:
            raise ConnectError(f"--map: {part!r} is not TIER=MODEL", bad_input=True)
        if tier not in TIERS:
            raise ConnectError(f"--map: unknown tier {tier!r} (known: {', '.join(TIERS)})", bad_input=True)
        out[tier] = model
    return out


def plan_tiers(
    provider: str, main: str | None, tiers: Mapping[str, str],
    context_windows: Mapping[str, int] | None = None,
) -> TierPlan:
    """Routes for ``provider``: one per tier whose model differs from main, then the catch-all.

    ``main`` None (an Anthropic-compatible provider that maps claude-* names itself): routes
    keep the requested name (``to: provider``)."""
    for tier in tiers:
        if tier not in TIERS:
            raise ConnectError(f"unknown tier {tier!r} (known: {', '.join(TIERS)})", bad_input=True)
    main = tiers.get("main") or main
    windows = context_windows or {}

    def route(match: str, model: str | None, tier: str) -> RouteInfo:
        to = f"{provider}/{model}" if model else provider
        return RouteInfo(match, to, tier, windows.get(model) if model else None)

    routes = [route(TIER_MATCH[t], tiers[t], t) for t in ("opus", "sonnet", "haiku")
              if tiers.get(t) and tiers[t] != main]
    env: dict[str, str] = {}
    subagent = tiers.get("subagent")
    if subagent and subagent not in ("main", main):
        alias = _tier_alias(subagent, tiers)
        if alias is not None:
            env[SUBAGENT_VAR] = alias
        else:
            routes.insert(0, route(SUBAGENT_ID, subagent, "subagent"))
            env[SUBAGENT_VAR] = SUBAGENT_ID
    routes.append(route(CATCH_ALL, main, "main"))
    return TierPlan(tuple(routes), env)


def _tier_alias(subagent: str, tiers: Mapping[str, str]) -> str | None:
    """Claude Code's alias ("opus", "sonnet", "haiku") when the subagent names a tier or its model."""
    if subagent in TIER_MATCH:
        return subagent
    return next((t for t in ("opus", "sonnet", "haiku") if tiers.get(t) == subagent), None)


def tier_defaults(models: Sequence[str]) -> dict[str, str]:
    """The wizard's suggestion: the first model for every tier, a name with 'haiku', 'mini',
    'flash', 'small' or 'lite' for the background tier when the list has one."""
    if not models:
        return {}
    main = models[0]
    small = next((m for m in models if any(w in m.lower() for w in
                                             ("haiku", "mini", "flash", "small", "lite", "8b"))), main)
    return {"main": main, "opus": main, "sonnet": main, "haiku": small, "subagent": main}
