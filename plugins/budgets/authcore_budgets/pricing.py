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


def _exact(rates: tuple[Decimal, Decimal]) -> tuple[int, int, int]:
    """(input, output) micro-USD per token as integer numerators over one denominator.

    Charges are then integer arithmetic (exact, like the `Decimal` rates they come
    from) instead of a few microseconds of `Decimal` per request.
    """
    (input_num, input_den), (output_num, output_den) = rates[0].as_integer_ratio(), rates[1].as_integer_ratio()
    denominator = math.lcm(input_den, output_den)
    return input_num * (denominator // input_den), output_num * (denominator // output_den), denominator


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
        self._exact = {model: _exact(rates) for model, rates in self._prices.items()}
        self._default_exact = _exact(self._default) if self._default is not None else None
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

    def exact_rates(self, model: str) -> tuple[int, int, int]:
        """`rates` as (input numerator, output numerator, denominator); raises `UnpricedModel` likewise."""
        found = self._exact.get(model)
        if found is not None:
            return found
        if self._deny_unpriced or self._default_exact is None:
            raise UnpricedModel(reason_id="model_not_priced")
        return self._default_exact

    def is_free(self, model: str) -> bool:
        input_rate, output_rate, _ = self.exact_rates(model)
        return input_rate == 0 and output_rate == 0

    def max_output_tokens(self, body: Any) -> int:
        if isinstance(body, dict):
            for name in _MAX_TOKEN_FIELDS:
                value = body.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
        return self._default_max_tokens

    def prompt_tokens(self, body_size: int) -> int:
        """The prompt bound: every body byte a token (at `prompt_bytes_per_token`)."""
        return math.ceil(body_size / self._bytes_per_token)

    def max_tokens(self, body_size: int, body: Any) -> int:
        """The most tokens the request can use: the prompt bound plus the output cap (for tpm)."""
        return self.prompt_tokens(body_size) + self.max_output_tokens(body)

    def cost(self, model: str, prompt_tokens: int, output_tokens: int) -> int:
        """micro-USD of these token counts at `model`'s rates, rounded up."""
        input_rate, output_rate, denominator = self.exact_rates(model)
        return -(-(input_rate * prompt_tokens + output_rate * output_tokens) // denominator)

    def estimate(self, model: str, body_size: int, body: Any) -> int:
        """The most this request can cost: every body byte a prompt token, plus the output cap."""
        return self.cost(model, self.prompt_tokens(body_size), self.max_output_tokens(body))

    def actual(self, model: str, usage: Usage) -> int:
        """The upstream's own price when it gave one, else the token counts at this table's rates."""
        if usage.cost is not None:
            return max(0, to_micros(usage.cost))
        return max(0, self.cost(model, usage.prompt_tokens, usage.completion_tokens))
