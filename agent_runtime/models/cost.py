"""What model calls cost, and budgets that stop a submission before it spends more.

`PRICES` holds list prices in USD per million tokens (input, output; cache reads and
writes default to 0.1x and 1.25x the input price, as the Anthropic API bills them) for
the models this library knows, by ``provider/model`` prefix, as published in late 2025.
Prices change: a project overrides or adds entries with `set_prices({...})` (say, in an
agent module) or the ``AGENT_RUNTIME_PRICES`` environment variable (a JSON object of
``{"provider/model": [input, output]}``). A model without a price costs nothing here and
is named in the result's ``unpriced``; `test/` models are free.

`Budget(max_usd=, max_tokens=)` on an agent ends a submission whose spending so far has
reached either limit, before its next model call, with outcome ``failed`` and type
``budget_exceeded``.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

from agent_runtime.errors import DefinitionError
from agent_runtime.messages import Usage

ENV_PRICES = "AGENT_RUNTIME_PRICES"


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def of(self, usage: Usage) -> float:
        read = self.cache_read if self.cache_read is not None else self.input * 0.1
        write = self.cache_write if self.cache_write is not None else self.input * 1.25
        total = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * read
            + usage.cache_write_tokens * write
        )
        return total / 1_000_000


PRICES: dict[str, Price] = {
    "test/": Price(0.0, 0.0),
    "anthropic/claude-haiku-4-5": Price(1.0, 5.0),
    "anthropic/claude-3-5-haiku": Price(0.8, 4.0),
    "anthropic/claude-sonnet-4": Price(3.0, 15.0),
    "anthropic/claude-3-7-sonnet": Price(3.0, 15.0),
    "anthropic/claude-opus-4-5": Price(5.0, 25.0),
    "anthropic/claude-opus-4": Price(15.0, 75.0),
    "bedrock/anthropic.claude-haiku-4-5": Price(1.0, 5.0),
    "bedrock/us.anthropic.claude-haiku-4-5": Price(1.0, 5.0),
    "bedrock/anthropic.claude-3-5-haiku": Price(0.8, 4.0),
    "bedrock/us.anthropic.claude-3-5-haiku": Price(0.8, 4.0),
    "bedrock/anthropic.claude-sonnet-4": Price(3.0, 15.0),
    "bedrock/us.anthropic.claude-sonnet-4": Price(3.0, 15.0),
    "bedrock/amazon.nova-micro": Price(0.035, 0.14),
    "bedrock/us.amazon.nova-micro": Price(0.035, 0.14),
    "bedrock/amazon.nova-lite": Price(0.06, 0.24),
    "bedrock/us.amazon.nova-lite": Price(0.06, 0.24),
    "bedrock/amazon.nova-pro": Price(0.8, 3.2),
    "bedrock/us.amazon.nova-pro": Price(0.8, 3.2),
    "openai/gpt-4.1-nano": Price(0.1, 0.4, cache_read=0.025),
    "openai/gpt-4.1-mini": Price(0.4, 1.6, cache_read=0.1),
    "openai/gpt-4.1": Price(2.0, 8.0, cache_read=0.5),
    "openai/gpt-4o-mini": Price(0.15, 0.6, cache_read=0.075),
    "openai/gpt-4o": Price(2.5, 10.0, cache_read=1.25),
}
_OVERRIDES: dict[str, Price] = {}
#: Bumped by `set_prices`: a lookup remembered under an older version is not used.
_overrides_version = 0


def set_prices(prices: dict[str, Price | tuple[float, float]]) -> None:
    """Add or replace prices (USD per million tokens) by ``provider/model`` prefix."""
    global _overrides_version
    for name, price in prices.items():
        _OVERRIDES[name] = price if isinstance(price, Price) else Price(float(price[0]), float(price[1]))
    _overrides_version += 1


def _from_env(raw: str | None) -> dict[str, Price]:
    if not raw:
        return {}
    try:
        return {name: Price(float(p[0]), float(p[1])) for name, p in json.loads(raw).items()}
    except (ValueError, TypeError, IndexError, AttributeError):
        raise DefinitionError(ENV_PRICES, 'expected a JSON object {"provider/model": [input, output]}') from None


def price_of(model: str) -> Price | None:
    """The price of `model`: the longest matching prefix of the overrides, then of the table."""
    return _price_of(model, os.environ.get(ENV_PRICES), _overrides_version)


@functools.lru_cache(maxsize=1024)
def _price_of(model: str, env_prices: str | None, overrides_version: int) -> Price | None:
    """Remembered per model, prices in the environment and version of the overrides (a
    settle looks prices up for every model it used)."""
    for table in (_OVERRIDES, _from_env(env_prices), PRICES):
        matches = [name for name in table if model.startswith(name)]
        if matches:
            return table[max(matches, key=len)]
    return None


def cost_usd(by_model: dict[str, Usage]) -> tuple[float, list[str]]:
    """The cost of the usage of each model, and the models without a price."""
    total = 0.0
    unpriced: list[str] = []
    for model, usage in by_model.items():
        price = price_of(model)
        if price is None:
            unpriced.append(model)
        else:
            total += price.of(usage)
    return round(total, 6), unpriced


@dataclass(frozen=True, kw_only=True)
class Budget:
    """The most one submission may spend: USD (by `PRICES`) and / or tokens (input + output)."""

    max_usd: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.max_usd is None and self.max_tokens is None:
            raise DefinitionError("budget", "Budget(...) needs max_usd, max_tokens or both")
        if self.max_usd is not None and (not isinstance(self.max_usd, int | float) or self.max_usd <= 0):
            raise DefinitionError("budget", "max_usd must be a positive number")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens <= 0):
            raise DefinitionError("budget", "max_tokens must be a positive int")

    def exceeded(self, by_model: dict[str, Usage]) -> str | None:
        """Why the spending so far reached the budget (None while it has not)."""
        tokens = sum(u.input_tokens + u.output_tokens for u in by_model.values())
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"used {tokens} tokens of a budget of {self.max_tokens}"
        spent, _ = cost_usd(by_model)
        if self.max_usd is not None and spent >= self.max_usd:
            return f"spent ${spent:.4f} of a budget of ${self.max_usd:.4f}"
        return None


__all__ = ["ENV_PRICES", "PRICES", "Budget", "Price", "cost_usd", "price_of", "set_prices"]
