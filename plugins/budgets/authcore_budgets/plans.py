"""Which counters and rate limits a request is charged to, remembered per identity and models.

Working them out (every entity's rules, counter names, periods) costs tens of
microseconds; the answer only changes when the identity's ids or limits, the
stored budgets, or a budget period change, so it is reused until one does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authcore import Identity
from authcore_budgets.entities import Counter
from authcore_budgets.limits_store import LimitsView
from authcore_budgets.pricing import Quote
from authcore_budgets.ratelimits import RateLimit

MAX_PLANS = 10_000
"""Cached plans before the cache is emptied (one per identity and model set in use)."""
PlanKey = tuple[str | None, str | None, str | None, str | None, str | None, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Plan:
    counters: tuple[Counter, ...]
    rates: tuple[RateLimit, ...]
    columns: Mapping[str, str]
    budgeted: bool
    """Some budget applies (so an unpriced model is refused rather than let through unrecorded)."""
    quote: Quote
    """The requested models' prices."""


@dataclass(frozen=True, slots=True)
class _Cached:
    plan: Plan
    limits: Mapping[str, Any]
    per_model_rates: tuple[Any, Any]
    version: int
    valid_until_ms: int | None


class PlanCache:
    """Plans keyed by the identity's ids and the requested models, checked against its limits and the periods."""

    def __init__(self) -> None:
        self._plans: dict[PlanKey, _Cached] = {}

    @staticmethod
    def _key(identity: Identity, models: tuple[str, ...]) -> PlanKey:
        return (identity.key_id, identity.team_id, identity.user_id, identity.org_id, identity.end_user_id, models)

    def get(self, identity: Identity, models: tuple[str, ...], view: LimitsView, now_ms: int) -> Plan | None:
        cached = self._plans.get(self._key(identity, models))
        if cached is None or cached.version != view.version:
            return None
        if cached.valid_until_ms is not None and now_ms >= cached.valid_until_ms:
            return None
        # By value: an identity rebuilt with other limits (an updated key) must not reuse the plan.
        if cached.limits != identity.limits or cached.per_model_rates != _per_model_rates(identity):
            return None
        return cached.plan

    def put(self, identity: Identity, models: tuple[str, ...], view: LimitsView, now_ms: int, plan: Plan) -> Plan:
        ends = [counter.period_end_ms for counter in plan.counters if counter.period_end_ms is not None]
        if view.valid_until is not None:
            ends.append(int(view.valid_until.timestamp() * 1000))
        # A key's temporary increase ends on its own clock: the plan holding the raised limit ends with it.
        ends.extend(c.rule.valid_until_ms for c in plan.counters if c.rule.valid_until_ms is not None)
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        limits = dict(identity.limits)
        self._plans[self._key(identity, models)] = _Cached(
            plan, limits, _per_model_rates(identity), view.version, min(ends, default=None)
        )
        return plan


def _per_model_rates(identity: Identity) -> tuple[Any, Any]:
    """LiteLLM keeps per-model rate limits in key metadata, which `limits` does not cover."""
    metadata = identity.metadata
    if not metadata:
        return (None, None)
    return (metadata.get("model_rpm_limit"), metadata.get("model_tpm_limit"))
