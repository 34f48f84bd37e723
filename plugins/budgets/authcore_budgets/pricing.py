"""Costs in integer micro-USD: the most a request can cost before it runs, and what it cost after."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Quote:
    """What pricing a request for some models needs, worked out once per set of models."""

    rates: tuple[tuple[int, int, int, str], ...]
    """(input numerator, output numerator, denominator, model) of every model that is not free."""
    unpriced: bool
    """Some model has no price (under the deny policy, or with no default price)."""


class Pricer:
    """Estimates and charges from the configured price table."""

    def __init__(self, config: BudgetsConfig) -> None:
        self._exact = {model: _exact(price.micros_per_token()) for model, price in config.prices.items()}
        default = config.default_price
        self._default_exact = _exact(default.micros_per_token()) if default is not None else None
        self._deny_unpriced = config.unpriced_models == "deny"
        self._default_max_tokens = config.default_max_tokens
        self._bytes_per_token = config.prompt_bytes_per_token

    def exact_rates(self, model: str) -> tuple[int, int, int]:
        """(input, output) micro-USD per token as (input numerator, output numerator, denominator).

        Raises `UnpricedModel` for a model with no price under the deny policy or with no default price.
        """
        found = self._exact.get(model)
        if found is not None:
            return found
        if self._deny_unpriced or self._default_exact is None:
            raise UnpricedModel(reason_id="model_not_priced")
        return self._default_exact

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

    def cost(self, model: str, prompt_tokens: int, output_tokens: int) -> int:
        """micro-USD of these token counts at `model`'s rates, rounded up."""
        input_rate, output_rate, denominator = self.exact_rates(model)
        return -(-(input_rate * prompt_tokens + output_rate * output_tokens) // denominator)

    def estimate(self, model: str, body_size: int, body: Any) -> int:
        """The most a request to `model` can cost; raises `UnpricedModel` as `exact_rates` does."""
        quote = self.quote((model,))
        if quote.unpriced:
            raise UnpricedModel(reason_id="model_not_priced")
        charged = self.charge(quote, body_size, body)
        return 0 if charged is None else charged[0]

    def quote(self, models: Sequence[str]) -> Quote:
        """The rates of `models` that are not free, or `unpriced` when one of them has no price."""
        rates: list[tuple[int, int, int, str]] = []
        for model in models:
            try:
                input_rate, output_rate, denominator = self.exact_rates(model)
            except UnpricedModel:
                return Quote((), True)
            if input_rate or output_rate:
                rates.append((input_rate, output_rate, denominator, model))
        return Quote(tuple(rates), False)

    def charge(self, quote: Quote, body_size: int, body: Any) -> tuple[int, str, int] | None:
        """(amount, model, token bound) for a body of `body_size` bytes parsed as `body`: the dearest of the
        quote's models at the prompt bound and output cap. `None` when every model is free."""
        rates = quote.rates
        if not rates:
            return None
        prompt = self.prompt_tokens(body_size)
        output = self.max_output_tokens(body)
        if len(rates) == 1:
            input_rate, output_rate, denominator, model = rates[0]
            return -(-(input_rate * prompt + output_rate * output) // denominator), model, prompt + output
        # The body and the path may name different models: reserve for the dearer one.
        amount, model = max((-(-(i * prompt + o * output) // d), m) for i, o, d, m in rates)
        return amount, model, prompt + output

    def actual(self, model: str, usage: Usage) -> int:
        """The upstream's own price when it gave one, else the token counts at the rates of the model that
        answered (`usage.model`) when the table has it, else at `model`'s (the reservation's)."""
        if usage.cost is not None:
            return max(0, to_micros(usage.cost))
        answered = usage.model
        priced = answered if answered is not None and answered in self._exact else model
        return max(0, self.cost(priced, usage.prompt_tokens, usage.completion_tokens))
