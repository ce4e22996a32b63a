"""Where a requested model goes: the ``models:`` rules of the config, resolved to targets.

The first rule whose ``match`` glob fits the requested model gives the primary target and its
fallbacks, in order, and the per-model limits; with no matching rule the request goes to the
first provider under the name it asked for. Pure: the config in, a ``Route`` out.

Discovery aliases come before the rules: ``claude-via-<provider>/<model>`` names a model that
``GET /v1/models`` found on a translated provider, under an id Claude Code's model discovery
keeps (it drops ids without ``claude`` or ``anthropic``). Provider names never contain
``/``, so the first ``/`` after the prefix splits the alias and the model part is kept as
it is, slashes and colons included (``claude-via-openrouter/vendor/model``,
``claude-via-ollama/qwen3:8b``). An alias routes to that provider and model only, with no
fallbacks; a catch-all rule (``match: "*"``) does not capture it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from ccgate.config.model import Config, Provider


@dataclass(frozen=True)
class Target:
    """One place a request can go: a provider and the model name it is sent with."""

    provider: Provider
    model: str


@dataclass(frozen=True)
class Route:
    """Where a requested model goes: the primary target, its fallbacks, and per-model limits."""

    targets: tuple[Target, ...]
    max_tokens: int | None = None
    context_window: int | None = None

    @property
    def primary(self) -> Target:
        return self.targets[0]


ALIAS_PREFIX = "claude-via-"


def model_alias(provider: str, model: str) -> str:
    """The id ``GET /v1/models`` lists for ``model`` of a translated ``provider``."""
    return f"{ALIAS_PREFIX}{provider}/{model}"


def parse_alias(model: str) -> tuple[str, str] | None:
    """``(provider, model)`` of a discovery alias, or None when ``model`` is not one."""
    if not model.startswith(ALIAS_PREFIX):
        return None
    provider, slash, real = model[len(ALIAS_PREFIX):].partition("/")
    return (provider, real) if slash and provider and real else None


def route_model(config: Config, model: str) -> Route:
    """The route for ``model``: a discovery alias of a configured provider, else the first
    matching ``models`` entry, else the first provider."""
    if model.startswith(ALIAS_PREFIX):
        alias = _alias_route(config, model)
        if alias is not None:
            return alias
    for entry in config.models:
        if fnmatchcase(model, entry.match):
            targets = [_target(config, spec, model) for spec in (entry.to, *entry.fallbacks)]
            return Route(tuple(targets), entry.max_tokens, entry.context_window)
    return Route((Target(config.providers[0], model),))


def _alias_route(config: Config, model: str) -> Route | None:
    parsed = parse_alias(model)
    if parsed is None:
        return None
    name, real = parsed
    provider = next((p for p in config.providers if p.name == name), None)
    # An alias of an unknown provider is an ordinary model name (the rules or the default).
    return Route((Target(provider, real),)) if provider is not None else None


def _target(config: Config, spec: str, requested: str) -> Target:
    # "provider" keeps the requested name, "provider/model" rewrites it; config validation
    # (config.load.check_semantics) has made sure the provider exists.
    name, _, rewrite = spec.partition("/")
    provider = next(p for p in config.providers if p.name == name)
    return Target(provider, rewrite or requested)


__all__ = ["ALIAS_PREFIX", "Route", "Target", "model_alias", "parse_alias", "route_model"]
