"""Settings of the `budgets` plugin; budget durations (`30s`, `1h`, `30d`, `1mo`) are parsed by `authcore.durations`."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from authcore.durations import Duration, parse_duration

__all__ = ["BudgetsConfig", "Duration", "DurationText", "ModelPrice", "parse_duration"]


def _checked_duration(value: str) -> str:
    parse_duration(value)
    return value


DurationText = Annotated[str, AfterValidator(_checked_duration)]
"""A budget period as written (`30s`, `1h`, `30d`, `2w`, `1mo`), refused when `parse_duration` cannot read it."""


class ModelPrice(BaseModel):
    """Prices of one model in USD, per 1M tokens or per token (LiteLLM's names); one style per model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_1m_tokens: Decimal | None = Field(None, ge=0)
    output_per_1m_tokens: Decimal | None = Field(None, ge=0)
    input_cost_per_token: Decimal | None = Field(None, ge=0)
    output_cost_per_token: Decimal | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_style(self) -> ModelPrice:
        per_1m = self.input_per_1m_tokens is not None or self.output_per_1m_tokens is not None
        per_token = self.input_cost_per_token is not None or self.output_cost_per_token is not None
        if per_1m == per_token:
            raise ValueError("give input/output prices either per 1M tokens or per token (exactly one style)")
        return self

    def micros_per_token(self) -> tuple[Decimal, Decimal]:
        """(input, output) in micro-USD per token: a USD price per 1M tokens is exactly that number."""
        if self.input_cost_per_token is not None or self.output_cost_per_token is not None:
            million = Decimal(1_000_000)
            return (self.input_cost_per_token or Decimal(0)) * million, (
                self.output_cost_per_token or Decimal(0)
            ) * million
        return self.input_per_1m_tokens or Decimal(0), self.output_per_1m_tokens or Decimal(0)


class BudgetsConfig(BaseModel):
    """How costs are estimated, which budgets apply, and where counters live."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prices: dict[str, ModelPrice] = Field(default_factory=dict, description="Model name -> price.")
    unpriced_models: Literal["deny", "default_price"] = Field(
        "deny", description="A model missing from `prices`: refuse it (403), or charge `default_price`."
    )
    default_price: ModelPrice | None = Field(None, description="Price of unlisted models with `default_price`.")
    default_max_tokens: int = Field(
        4096, gt=0, description="Output tokens reserved when the request sets no max_tokens/max_completion_tokens."
    )
    prompt_bytes_per_token: float = Field(
        1.0,
        gt=0,
        description="Prompt tokens are estimated as body bytes / this; 1.0 is an upper bound for BPE tokenizers.",
    )
    global_budget: Decimal | None = Field(None, ge=0, description="USD limit over every request of this instance.")
    global_soft_budget: Decimal | None = Field(None, ge=0)
    global_budget_duration: DurationText | None = Field(
        None, description="Reset period of the global budget, e.g. 30d or 1mo."
    )
    end_user_budget_id: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="Named budget (`/budget/new`) of end users that have no budget of their own, unknown ones "
        "included (LiteLLM's `max_end_user_budget_id`). A request naming a budget that does not exist gets 403.",
    )
    hold_ttl_s: float = Field(
        600.0, gt=0, le=86400, description="A reservation not settled by then (a crashed replica's) is dropped."
    )
    store_timeout_s: float = Field(0.5, gt=0, le=10, description="Longest wait for Redis on the request path.")
    soft_budget_webhook_url: SecretStr | None = Field(
        None, description="POST a JSON alert here when a soft budget is passed (kept secret: it may hold a token)."
    )
    webhook_timeout_s: float = Field(2.0, gt=0, le=30)
    fail_open: bool = Field(
        False, description="Admit budgeted requests without a hold when Redis fails (logged on every use)."
    )
    limits_refresh_s: float = Field(
        5.0, ge=0, le=300, description="How long team/user/org budgets read from SQL are trusted."
    )
    create_schema: bool = Field(
        True, description="Run the plugin's database migrations at start-up (creates the tables when missing)."
    )
    lock_file: str | None = Field(
        None,
        description="Without Redis: the file locked so one process owns the counters (default: by the SQLite file).",
    )

    @model_validator(mode="after")
    def _default_price(self) -> BudgetsConfig:
        if self.unpriced_models == "default_price" and self.default_price is None:
            raise ValueError("unpriced_models: default_price needs default_price")
        return self
