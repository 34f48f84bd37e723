"""Which budgets apply to a request, and the counter each one is charged to in its current period."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from authcore import Identity
from authcore_budgets.config import parse_duration
from authcore_budgets.pricing import MICROS_PER_USD

ENTITIES = ("key", "team", "user", "team_member", "org", "end_user", "global")
NO_LIMIT = -1
"""`limit` of a counter that only tracks spend (a soft budget without a hard one)."""

# Identity attribute and ledger column of each entity kind.
_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "key": ("key_id",),
    "team": ("team_id",),
    "user": ("user_id",),
    "team_member": ("team_id", "user_id"),
    "org": ("org_id",),
    "end_user": ("end_user_id",),
    "global": (),
}


def limit_micros(usd: Decimal | float | int | str) -> int:
    """A USD limit in micro-USD, rounded down so the limit is never exceeded by rounding."""
    try:
        value = usd if isinstance(usd, Decimal) else Decimal(str(usd))
    except InvalidOperation:
        raise ValueError(f"not a number: {usd!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError("a budget must be a finite number >= 0")
    return int((value * MICROS_PER_USD).to_integral_value(rounding=ROUND_FLOOR))


def entity_id_of(kind: str, identity: Identity) -> str | None:
    """The id `identity` has for an entity kind (`team_member` is `team_id/user_id`); `None` when absent."""
    if kind == "global":
        return "global"
    values = [getattr(identity, column) for column in _COLUMNS[kind]]
    if any(value is None or value == "" for value in values):
        return None
    return "/".join(values)


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """One configured budget: a hard limit and/or a soft one, optionally per model and per period."""

    entity: str
    entity_id: str
    model: str | None
    limit: int
    soft: int | None
    duration_s: int | None


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """The ledger rows a counter sums: these identity columns, this model, reserved in this window."""

    columns: tuple[tuple[str, str], ...]
    model: str | None
    start_ms: int
    end_ms: int | None


@dataclass(frozen=True, slots=True)
class Counter:
    """A budget rule in its current period: the unit the backends reserve against."""

    rule: BudgetRule
    name: str
    """Unique per entity, model and period; safe in a Redis key."""
    period_end_ms: int | None
    expire_at_ms: int
    """When the store may forget the counter (0 = never): the period's end plus a grace for late settlements."""
    ledger: LedgerFilter

    @property
    def limit(self) -> int:
        return self.rule.limit


def counter_for(rule: BudgetRule, identity_columns: Mapping[str, str], now_ms: int, grace_ms: int) -> Counter:
    """The counter of `rule` for the period containing `now_ms` (periods are aligned to the Unix epoch)."""
    columns = tuple((column, identity_columns[column]) for column in _COLUMNS[rule.entity])
    if rule.duration_s is None:
        start, end, expire = 0, None, 0
        period = "all"
    else:
        length = rule.duration_s * 1000
        start = now_ms - now_ms % length
        end = start + length
        expire = end + grace_ms
        period = str(start)
    model = quote(rule.model, safe="") if rule.model is not None else "*"
    name = f"{rule.entity}:{quote(rule.entity_id, safe='')}:{model}:{rule.duration_s or 0}:{period}"
    return Counter(rule, name, end, expire, LedgerFilter(columns, rule.model, start, end))


def identity_columns(identity: Identity) -> dict[str, str]:
    """The non-empty ledger columns of an identity."""
    names = ("key_id", "team_id", "user_id", "org_id", "end_user_id")
    return {name: value for name in names if (value := getattr(identity, name))}


def _duration(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return parse_duration(str(value))


def key_rules(identity: Identity, model: str) -> list[BudgetRule]:
    """The key's own budgets from `identity.limits` (written there by `virtual_keys`)."""
    if not identity.key_id:
        return []
    limits = identity.limits
    rules: list[BudgetRule] = []
    duration = _duration(limits.get("budget_duration"))
    hard = limits.get("max_budget")
    soft = limits.get("soft_budget")
    if hard is not None or soft is not None:
        rules.append(
            BudgetRule(
                "key",
                identity.key_id,
                None,
                limit_micros(hard) if hard is not None else NO_LIMIT,
                limit_micros(soft) if soft is not None else None,
                duration,
            )
        )
    per_model = limits.get("model_max_budget")
    if isinstance(per_model, Mapping) and model in per_model:
        spec = per_model[model]
        # LiteLLM's shape {"budget_limit": x, "time_period": "1d"}, or a bare number.
        if isinstance(spec, Mapping):
            amount, period = spec.get("budget_limit"), _duration(spec.get("time_period"))
        else:
            amount, period = spec, None
        if amount is not None:
            rules.append(BudgetRule("key", identity.key_id, model, limit_micros(amount), None, period))
    return rules


def applicable_rules(
    identity: Identity,
    model: str,
    stored: Mapping[tuple[str, str], Iterable[BudgetRule]],
    global_rule: BudgetRule | None,
) -> list[BudgetRule]:
    """Every budget this request is charged against: the key's, each stored entity budget, the global one."""
    rules = key_rules(identity, model)
    for kind in ENTITIES:
        if kind == "global":
            continue
        entity_id = entity_id_of(kind, identity)
        if entity_id is None:
            continue
        rules.extend(rule for rule in stored.get((kind, entity_id), ()) if rule.model in (None, model))
    if global_rule is not None:
        rules.append(global_rule)
    return rules
