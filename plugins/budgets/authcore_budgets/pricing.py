"""Costs in integer micro-USD: the most a request can cost before it runs, and what it cost after."""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal
from typing import Any

from authcore import Forbidden, Usage
from authcore_budgets.config import BudgetsConfig

MICROS_PER_USD = 1_000_000
_MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def to_micros(usd: Decimal | float | int) -> int:
    """USD -> micro-USD, rounded up so a charge is never smaller than the price."""
    value = usd if isinstance(usd, Decimal) else Decimal(str(usd))
    return int((value * MICROS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def to_usd(micros: int) -> float:
    return micros / MICROS_PER_USD


class UnpricedModel(Forbidden):
    """403: the model has no price and the policy is to deny it (its cost could not be bounded)."""

    default_code = "model_not_priced"
    default_message = "This model has no configured price; budgeted requests to it are refused."


class Pricer:
    """Estimates and charges from the configured price table."""

    def __init__(self, config: BudgetsConfig) -> None:
        self._prices = {model: price.micros_per_token() for model, price in config.prices.items()}
        self._default = config.default_price.micros_per_token() if config.default_price is not None else None
        self._deny_unpriced = config.unpriced_models == "deny"
        self._default_max_tokens = config.default_max_tokens
        self._bytes_per_token = config.prompt_bytes_per_token

    def rates(self, model: str) -> tuple[Decimal, Decimal]:
        """(input, output) micro-USD per token; raises `UnpricedModel` under the deny policy."""
        found = self._prices.get(model)
        if found is not None:
            return found
        if self._deny_unpriced or self._default is None:
            raise UnpricedModel(reason_id="model_not_priced")
        return self._default

    def is_free(self, model: str) -> bool:
        input_rate, output_rate = self.rates(model)
        return input_rate == 0 and output_rate == 0

    def max_output_tokens(self, body: Any) -> int:
        if isinstance(body, dict):
            for name in _MAX_TOKEN_FIELDS:
                value = body.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
        return self._default_max_tokens

    def max_tokens(self, body_size: int, body: Any) -> int:
        """The most tokens the request can use: the prompt bound plus the output cap (for tpm)."""
        return math.ceil(body_size / self._bytes_per_token) + self.max_output_tokens(body)

    def estimate(self, model: str, body_size: int, body: Any) -> int:
        """The most this request can cost: every body byte a prompt token, plus the output cap."""
        input_rate, output_rate = self.rates(model)
        prompt_tokens = math.ceil(body_size / self._bytes_per_token)
        total = input_rate * prompt_tokens + output_rate * self.max_output_tokens(body)
        return int(total.to_integral_value(rounding=ROUND_CEILING))

    def actual(self, model: str, usage: Usage) -> int:
        """The upstream's own price when it gave one, else the token counts at this table's rates."""
        if usage.cost is not None:
            return max(0, to_micros(usage.cost))
        input_rate, output_rate = self.rates(model)
        total = input_rate * usage.prompt_tokens + output_rate * usage.completion_tokens
        return max(0, int(total.to_integral_value(rounding=ROUND_CEILING)))
