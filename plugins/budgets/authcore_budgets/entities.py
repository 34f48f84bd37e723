"""Which budgets apply to a request, and the counter each one is charged to in its current period."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Final, TypeVar
from urllib.parse import quote

from authcore import Forbidden, Identity
from authcore.durations import Duration, month_period, parse_duration
from authcore_budgets.pricing import MICROS_PER_USD

ENTITIES = ("key", "team", "user", "team_member", "org", "end_user", "global")
TIER = "budget"
"""The kind of a named budget (`/budget/new`, LiteLLM's budget table): charged to no one itself, it is the
budget of every entity linked to it by `budget_id`, each entity with its own spend."""
T = TypeVar("T")
NO_LIMIT = -1
"""`limit` of a counter that only tracks spend (a soft budget without a hard one)."""
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""Where budget periods are counted from: fixed ones in whole lengths, monthly ones in calendar months (the 1st)."""

# Identity attribute and ledger column of each entity kind.
ENTITY_COLUMNS: Mapping[str, tuple[str, ...]] = {
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
    values = [getattr(identity, column) for column in ENTITY_COLUMNS[kind]]
    if any(value is None or value == "" for value in values):
        return None
    return "/".join(values)


def entity_columns(kind: str, entity_id: str) -> tuple[tuple[str, str], ...]:
    """The ledger columns naming one entity (`team_member` ids are `team_id/user_id`)."""
    values = entity_id.split("/", 1) if kind == "team_member" else [entity_id]
    return tuple(zip(ENTITY_COLUMNS[kind], values, strict=False))


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """One configured budget: a hard limit and/or a soft one, optionally per model and per period."""

    entity: str
    entity_id: str
    model: str | None
    limit: int
    soft: int | None
    duration: Duration | None
    valid_until_ms: int | None = None
    """When `limit` stops being right (a temporary increase expires); `None` while it holds for good."""

    @property
    def duration_s(self) -> int | None:
        """The period in seconds; `None` without a period and for calendar months (their length varies)."""
        return None if self.duration is None else self.duration.seconds


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
    """The counter of `rule` for the period containing `now_ms`.

    Fixed periods are aligned to the Unix epoch; monthly ones are calendar months
    starting on the 1st at 00:00 UTC, so every replica picks the same period.
    """
    columns = tuple((column, identity_columns[column]) for column in ENTITY_COLUMNS[rule.entity])
    duration = rule.duration
    if duration is None:
        start, end, expire = 0, None, 0
        period, length_tag = "all", "0"
    else:
        start, end = _period(duration, now_ms)
        expire = end + grace_ms
        period = str(start)
        # Fixed periods keep their length in seconds in the name (counters stored before months existed).
        length_tag = str(duration) if duration.seconds is None else str(duration.seconds)
    model = quote(rule.model, safe="") if rule.model is not None else "*"
    name = f"{rule.entity}:{quote(rule.entity_id, safe='')}:{model}:{length_tag}:{period}"
    return Counter(rule, name, end, expire, LedgerFilter(columns, rule.model, start, end))


def _period(duration: Duration, now_ms: int) -> tuple[int, int]:
    """`[start, end)` in epoch milliseconds of the period of `duration` containing `now_ms`."""
    if duration.seconds is not None:
        length = duration.seconds * 1000
        start = now_ms - now_ms % length
        return start, start + length
    assert duration.months is not None
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    first, after = month_period(EPOCH, duration.months, now)
    return _ms(first), _ms(after)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


def identity_columns(identity: Identity) -> dict[str, str]:
    """The non-empty ledger columns of an identity."""
    names = ("key_id", "team_id", "user_id", "org_id", "end_user_id")
    return {name: value for name in names if (value := getattr(identity, name))}


def _duration(value: Any) -> Duration | None:
    if value is None or value == "":
        return None
    return parse_duration(str(value))


def _temporary_increase(limits: Mapping[str, Any], now_ms: int) -> tuple[int, int] | None:
    """(micro-USD, expiry in epoch ms) of the key's temporary increase while it runs, else `None`.

    `virtual_keys` hands over `temp_budget_increase` (USD) and `temp_budget_expiry`
    (ISO-8601, UTC); an expiry without an offset is read as UTC. An unreadable
    expiry grants nothing: the key keeps its base budget (the safe side).
    """
    amount, expiry = limits.get("temp_budget_increase"), limits.get("temp_budget_expiry")
    if amount is None or expiry is None:
        return None
    try:
        ends = expiry if isinstance(expiry, datetime) else datetime.fromisoformat(str(expiry))
    except ValueError:
        return None
    if ends.tzinfo is None:
        ends = ends.replace(tzinfo=UTC)
    ends_ms = int(ends.timestamp() * 1000)
    if now_ms >= ends_ms:
        return None
    micros = limit_micros(amount)
    return (micros, ends_ms) if micros > 0 else None


def key_rules(
    identity: Identity,
    model: str,
    now_ms: int | None = None,
    stored: Mapping[tuple[str, str], Iterable[BudgetRule]] | None = None,
) -> list[BudgetRule]:
    """The key's own budgets from `identity.limits` (written there by `virtual_keys`): those of the named
    budget its `budget_id` links it to (looked up in `stored`), else its own fields."""
    if not identity.key_id:
        return []
    tier = tier_of("key", identity.limits, None)
    if tier is not None and stored is not None:
        return tier_rules(stored, tier, "key", identity.key_id, model)
    return limit_rules("key", identity.key_id, identity.limits, model, now_ms)


def tier_rules(
    stored: Mapping[tuple[str, str], Iterable[BudgetRule]], tier: str, kind: str, entity_id: str, model: str
) -> list[BudgetRule]:
    """The named budget `tier`'s rules for `model`, as one entity's own (charged to its own counters).

    403 (`UnknownTier`) when there is no such named budget (`tier_rows`).
    """
    return [
        replace(rule, entity=kind, entity_id=entity_id)
        for rule in tier_rows(stored, tier)
        if rule.model in (None, model)
    ]


def tier_rows(stored: Mapping[tuple[str, str], T], tier: str) -> T:
    """What `stored` (rules or rate limits by entity) holds for the named budget `tier`.

    403 (`UnknownTier`) when there is no such named budget: its limits cannot be known. Every named budget
    is listed in both maps, empty where it sets nothing, so a missing one is told apart in either.
    """
    found = stored.get((TIER, tier))
    if found is None:
        raise UnknownTier(reason_id="budget_not_found")
    return found


def handed_over_limits(identity: Identity, kind: str) -> Mapping[str, Any] | None:
    """The limits the identity's plugin hands over for one of its entities: `identity.limits[kind]`.

    `virtual_keys` puts a key's team and organization settings there (`max_budget`,
    `tpm_limit`...), so budgets set through `/team/new` hold without `/budget/set`.
    """
    found = identity.limits.get(kind)
    return found if isinstance(found, Mapping) else None


class UnknownTier(Forbidden):
    """403: an entity is linked to a named budget that does not exist (its limits cannot be known)."""

    default_code = "budget_not_found"
    default_message = "The named budget this request is linked to does not exist."


def tier_of(kind: str, handed: Mapping[str, Any] | None, default_end_user_tier: str | None) -> str | None:
    """The named budget an entity without stored budgets of its own is held to, if any.

    Its `budget_id` in the limits its plugin hands over; for an end user that hands over
    no budget at all (an unknown one included), `default_end_user_tier` (LiteLLM's
    `max_end_user_budget_id`).
    """
    linked = handed.get("budget_id") if handed is not None else None
    if isinstance(linked, str) and linked:
        return linked
    unbudgeted = handed is None or (handed.get("max_budget") is None and handed.get("soft_budget") is None)
    return default_end_user_tier if kind == "end_user" and unbudgeted else None


def limit_rules(
    kind: str, entity_id: str, limits: Mapping[str, Any], model: str, now_ms: int | None = None
) -> list[BudgetRule]:
    """The budgets written in a mapping of LiteLLM's budget fields, for one entity.

    A temporary increase raises the hard budget over every model until its
    expiry; the rule then says when it stops holding (`valid_until_ms`).
    """
    rules: list[BudgetRule] = []
    duration = _duration(limits.get("budget_duration"))
    hard = limits.get("max_budget")
    soft = limits.get("soft_budget")
    if hard is not None or soft is not None:
        limit = limit_micros(hard) if hard is not None else NO_LIMIT
        valid_until: int | None = None
        if limit != NO_LIMIT:
            increase = _temporary_increase(limits, time.time_ns() // 1_000_000 if now_ms is None else now_ms)
            if increase is not None:
                limit, valid_until = limit + increase[0], increase[1]
        rules.append(
            BudgetRule(
                kind,
                entity_id,
                None,
                limit,
                limit_micros(soft) if soft is not None else None,
                duration,
                valid_until,
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
            rules.append(BudgetRule(kind, entity_id, model, limit_micros(amount), None, period))
    return rules


def applicable_rules(
    identity: Identity,
    model: str,
    stored: Mapping[tuple[str, str], Iterable[BudgetRule]],
    global_rule: BudgetRule | None,
    now_ms: int | None = None,
    default_end_user_tier: str | None = None,
) -> list[BudgetRule]:
    """Every budget this request is charged against: the key's, each entity's, the global one.

    An entity's budgets are those stored by `/budget/set` when it has any, else the named budget it
    is linked to (`tier_of`), else those the identity hands over in `identity.limits[kind]` (see
    `handed_over_limits`).

    `now_ms` decides whether the key's temporary increase still runs (default: the wall clock).
    """
    rules = key_rules(identity, model, now_ms, stored)
    for kind in ENTITIES:
        if kind == "global":
            continue
        entity_id = entity_id_of(kind, identity)
        if entity_id is None:
            continue
        own = stored.get((kind, entity_id))
        if own is not None:
            # Budgets set here (`/budget/set`) replace what the identity's plugin hands over.
            rules.extend(rule for rule in own if rule.model in (None, model))
            continue
        handed = handed_over_limits(identity, kind) if kind != "key" else None
        tier = tier_of(kind, handed, default_end_user_tier)
        if tier is not None:
            rules.extend(tier_rules(stored, tier, kind, entity_id, model))
        elif handed is not None:
            rules.extend(limit_rules(kind, entity_id, handed, model, now_ms))
    if global_rule is not None:
        rules.append(global_rule)
    return rules
