"""What a request cost: a price per model, and the arithmetic on a usage row. No I/O.

Prices are USD per million tokens for five kinds of token, as Anthropic bills them: input
(not cached), output, cache writes with the 5-minute TTL, cache writes with the 1-hour TTL
(twice the input price, where 5-minute writes are 1.25x) and cache reads. Anthropic reports
cache writes as one total (``cache_creation_input_tokens``) plus, in
``usage.cache_creation``, the split by TTL; ``UsageRow.cache_write_1h_tokens`` is the 1-hour
part and the rest of the total is priced as 5-minute writes.

Where a price comes from, first match wins:

1. the config's ``prices:`` section, keyed ``provider/model`` or ``model`` (fnmatch globs
   allowed), so an operator can price any provider or correct a built-in price;
2. the built-in table (``prices.json``, Anthropic's published prices, with its source and
   the date it was checked), for providers of ``kind: anthropic`` only: an
   Anthropic-compatible provider serving a ``claude-*`` name bills at its own prices.

A model found nowhere is *unpriced*: its cost is None (shown as unknown), never 0, so a report
never passes an unknown bill off as free.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources

_PER_TOKEN = 1e-6  # prices are per million tokens
# Anthropic's dated snapshot ids (claude-sonnet-4-5-20250929) and Claude Code's client-side
# "[1m]" hint price as the model they name.
_SUFFIX = re.compile(r"(-\d{8}|-latest|\[1m\])$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. Cache prices left unset bill those tokens as plain input."""

    input: float
    output: float
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None
    cache_read: float | None = None

    def cost(self, *, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0,
             cache_creation_tokens: int = 0, cache_write_1h_tokens: int = 0) -> float:
        """USD for one request. ``cache_creation_tokens`` is the total of cache writes, of
        which ``cache_write_1h_tokens`` had the 1-hour TTL (clamped: never more than the total)."""
        one_hour = min(max(cache_write_1h_tokens, 0), cache_creation_tokens)
        five_min = cache_creation_tokens - one_hour
        plain = self.input
        total = (input_tokens * plain + output_tokens * self.output
                 + five_min * _or(self.cache_write_5m, plain)
                 + one_hour * _or(self.cache_write_1h, plain)
                 + cache_read_tokens * _or(self.cache_read, plain))
        return total * _PER_TOKEN


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def split_price_key(key: str, providers: Mapping[str, object]) -> tuple[str | None, str]:
    """``prices:`` key -> (provider or None, model glob). Model ids may hold a "/" themselves
    (OpenRouter's vendor/model), so the part before the first "/" scopes the price only when
    it names a configured provider."""
    head, sep, rest = key.partition("/")
    return (head, rest) if sep and head in providers else (None, key)


def base_model(model: str) -> str:
    """The id a price is listed under: without a date snapshot, ``-latest`` or ``[1m]``."""
    return _SUFFIX.sub("", model.strip())


@dataclass(frozen=True, slots=True)
class BuiltinPrices:
    source: str
    checked: str
    provider_kinds: frozenset[str]
    models: Mapping[str, Price]


@cache
def builtin_prices() -> BuiltinPrices:
    """The packaged table (read once)."""
    raw = json.loads(resources.files("ccgate.store").joinpath("prices.json").read_text("utf-8"))
    return BuiltinPrices(
        source=raw["source"], checked=raw["checked"], provider_kinds=frozenset(raw["provider_kinds"]),
        models={name: Price(**fields) for name, fields in raw["models"].items()},
    )


class PriceBook:
    """Prices for one config: the overrides from ``prices:`` and the built-in table.

    ``provider_kinds`` maps a provider name to its kind, to know where the built-in table
    applies. Lookups are memoised per (provider, model): the writer thread prices every row.
    """

    def __init__(self, overrides: Mapping[str, Price], provider_kinds: Mapping[str, str],
                 builtin: BuiltinPrices | None = None) -> None:
        self._kinds = dict(provider_kinds)
        self._overrides = tuple((*split_price_key(pattern, self._kinds), price)
                                for pattern, price in overrides.items())
        self._builtin = builtin if builtin is not None else builtin_prices()
        self._memo: dict[tuple[str | None, str], Price | None] = {}

    def price(self, provider: str | None, model: str | None) -> Price | None:
        if not model:
            return None
        memo_key = (provider, model)
        if memo_key in self._memo:
            return self._memo[memo_key]
        found = self._lookup(provider, model)
        if len(self._memo) < 10_000:  # model names come from clients: bound the memo
            self._memo[memo_key] = found
        return found

    def _lookup(self, provider: str | None, model: str) -> Price | None:
        bare = base_model(model)
        for scoped, glob, price in self._overrides:
            if scoped is not None and scoped != provider:
                continue
            if fnmatchcase(model, glob) or fnmatchcase(bare, glob):
                return price
        if provider is not None and self._kinds.get(provider) in self._builtin.provider_kinds:
            return self._builtin.models.get(bare)
        return None

    def cost(self, provider: str | None, model: str | None, *, input_tokens: int, output_tokens: int,
             cache_read_tokens: int, cache_creation_tokens: int, cache_write_1h_tokens: int) -> float | None:
        """USD for one request, or None when the model is unpriced (a request that used no
        tokens costs 0 whatever its model)."""
        if not (input_tokens or output_tokens or cache_read_tokens or cache_creation_tokens):
            return 0.0
        price = self.price(provider, model)
        if price is None:
            return None
        return price.cost(input_tokens=input_tokens, output_tokens=output_tokens,
                          cache_read_tokens=cache_read_tokens, cache_creation_tokens=cache_creation_tokens,
                          cache_write_1h_tokens=cache_write_1h_tokens)


def format_usd(value: float | None) -> str:
    """A cost for a table: "unknown" when unpriced, cents below a dollar kept to 4 places."""
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


__all__ = ["BuiltinPrices", "Price", "PriceBook", "base_model", "builtin_prices", "format_usd",
           "split_price_key"]
