"""Where a requested model goes: the ``models:`` rules of the config, resolved to targets.

The first rule whose ``match`` glob fits the requested model gives the primary target and its
fallbacks, in order, and the per-model limits; with no matching rule the request goes to the
first provider under the name it asked for. Pure: the config in, a ``Route`` out.
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


def route_model(config: Config, model: str) -> Route:
    """The route for ``model``: the first matching ``models`` entry, else the first provider."""
    for entry in config.models:
        if fnmatchcase(model, entry.match):
            targets = [_target(config, spec, model) for spec in (entry.to, *entry.fallbacks)]
            return Route(tuple(targets), entry.max_tokens, entry.context_window)
    return Route((Target(config.providers[0], model),))


def _target(config: Config, spec: str, requested: str) -> Target:
    # "provider" keeps the requested name, "provider/model" rewrites it; config validation
    # (config.load.check_semantics) has made sure the provider exists.
    name, _, rewrite = spec.partition("/")
    provider = next(p for p in config.providers if p.name == name)
    return Target(provider, rewrite or requested)


__all__ = ["Route", "Target", "route_model"]
