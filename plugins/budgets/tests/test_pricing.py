"""Cost estimates and charges in integer micro-USD."""

from __future__ import annotations

from decimal import Decimal

import pytest
from authcore_budgets.config import BudgetsConfig, parse_duration
from authcore_budgets.pricing import Pricer, UnpricedModel, to_micros
from pydantic import ValidationError

from authcore import Usage


def pricer(**config: object) -> Pricer:
    prices = {
        "gpt": {"input_per_1m_tokens": 2.5, "output_per_1m_tokens": 10},
        "tok": {"input_cost_per_token": 1e-6, "output_cost_per_token": 3e-6},
    }
    return Pricer(BudgetsConfig.model_validate({"prices": prices, **config}))


def test_estimate_bounds_prompt_by_body_bytes_and_output_by_max_tokens() -> None:
    # 100 bytes * 2.5 + 200 tokens * 10 micro-USD.
    assert pricer().estimate("gpt", 100, {"max_tokens": 200}) == 2250
    assert pricer().estimate("gpt", 100, {"max_completion_tokens": 200}) == 2250
    assert pricer().estimate("tok", 10, {"max_tokens": 10}) == 40


def test_missing_or_invalid_max_tokens_uses_the_default() -> None:
    assert pricer(default_max_tokens=100).estimate("gpt", 0, {}) == 1000
    assert pricer(default_max_tokens=100).estimate("gpt", 0, {"max_tokens": -5}) == 1000
    assert pricer(default_max_tokens=100).estimate("gpt", 0, {"max_tokens": True}) == 1000


def test_actual_cost_prefers_the_upstream_price_and_rounds_up() -> None:
    assert pricer().actual("gpt", Usage("gpt", 10, 10, cost=0.05)) == 50_000
    assert pricer().actual("gpt", Usage("gpt", 1, 1)) == 13  # 12.5 micro-USD, rounded up
    assert to_micros(Decimal("0.0000001")) == 1


def test_unpriced_model_is_refused_or_priced_by_default() -> None:
    with pytest.raises(UnpricedModel):
        pricer().estimate("unknown", 10, {})
    assert pricer().quote(["gpt", "unknown"]).unpriced
    fallback = pricer(
        unpriced_models="default_price", default_price={"input_per_1m_tokens": 1, "output_per_1m_tokens": 1}
    )
    assert fallback.estimate("unknown", 10, {"max_tokens": 5}) == 15
    assert not fallback.quote(["gpt", "unknown"]).unpriced


def test_a_request_naming_two_models_is_charged_for_the_dearer_and_free_models_cost_nothing() -> None:
    prices = pricer(
        prices={
            "cheap": {"input_per_1m_tokens": 1, "output_per_1m_tokens": 1},
            "dear": {"input_per_1m_tokens": 1, "output_per_1m_tokens": 3},
            "free": {"input_per_1m_tokens": 0, "output_per_1m_tokens": 0},
        }
    )
    # 10 body bytes (prompt bound) + 5 output tokens.
    assert prices.charge(prices.quote(["cheap", "dear"]), 10, {"max_tokens": 5}) == (25, "dear", 15)
    assert prices.charge(prices.quote(["dear", "cheap"]), 10, {"max_tokens": 5}) == (25, "dear", 15)
    assert prices.charge(prices.quote(["free", "cheap"]), 10, {"max_tokens": 5}) == (15, "cheap", 15)
    assert prices.charge(prices.quote(["free"]), 10, {"max_tokens": 5}) is None
    assert prices.charge(prices.quote([]), 10, {}) is None


def test_config_refuses_ambiguous_prices_and_bad_durations() -> None:
    with pytest.raises(ValidationError):
        BudgetsConfig.model_validate({"prices": {"m": {"input_per_1m_tokens": 1, "input_cost_per_token": 1}}})
    with pytest.raises(ValidationError):
        BudgetsConfig.model_validate({"unpriced_models": "default_price"})
    with pytest.raises(ValidationError):
        BudgetsConfig.model_validate({"global_budget": 1, "global_budget_duration": "1y"})
    # LiteLLM's calendar months are a budget period too.
    assert BudgetsConfig.model_validate({"global_budget": 1, "global_budget_duration": "1mo"}).global_budget_duration
    assert parse_duration("30d").seconds == 30 * 86400
    assert parse_duration("2s").seconds == 2
    assert parse_duration("1mo").months == 1
