"""Request and token rate limits: rpm and tpm as GCRA, parallel requests as expiring in-flight holds.

`rpm` spends one request's share of the minute on admission. `tpm` admits while
the tokens charged in the last minute are below the limit, and charges the
actual tokens at settlement (the count is not known before). `parallel` holds a
slot per in-flight request, dropped at settlement or after `hold_ttl_s`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from authcore import Identity
from authcore_budgets.entities import entity_id_of, handed_over_limits, tier_of, tier_rows

WINDOW_US = 60_000_000
"""The rate window: one minute, in microseconds."""
RATE_ENTITIES = ("key", "team", "user", "org", "end_user")
RateKind = Literal["rpm", "tpm", "parallel"]
# identity.limits / stored column name of each kind.
_FIELDS: Mapping[RateKind, str] = {"rpm": "rpm_limit", "tpm": "tpm_limit", "parallel": "max_parallel_requests"}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One limit of one entity."""

    kind: RateKind
    entity: str
    entity_id: str
    limit: int
    model: str | None = None
    """Set for a per-model limit (LiteLLM's `model_rpm_limit` / `model_tpm_limit`): only that model's requests."""
    name: str = field(init=False, compare=False, repr=False)
    """Unique per kind, entity and model; safe in a Redis key. Kept, not derived per request (a plan reuses it)."""
    interval_us: float = field(init=False, compare=False, repr=False)
    """Microseconds of the window one request (rpm) or one token (tpm) uses up."""

    def __post_init__(self) -> None:
        name = f"{self.kind}:{self.entity}:{quote(self.entity_id, safe='')}"
        if self.model is not None:
            name = f"{name}:{quote(self.model, safe='')}"
        if self.kind != "parallel":
            # GCRA keeps time, not counts: a state made under one limit means something else under
            # another. A changed limit starts afresh, so raising it gives room at once (lowering it
            # admits at most one window more than the new limit).
            name = f"{name}@{self.limit}"
        object.__setattr__(self, "name", name)
        interval = WINDOW_US / self.limit if self.limit else float(WINDOW_US) * 2
        object.__setattr__(self, "interval_us", interval)


def _limits_from(entity: str, entity_id: str, values: Mapping[str, object]) -> list[RateLimit]:
    found: list[RateLimit] = []
    for kind, column in _FIELDS.items():
        value = values.get(column)
        if value is None:
            continue
        found.append(RateLimit(kind, entity, entity_id, _number(column, value)))
    return found


_PER_MODEL_FIELDS: Mapping[RateKind, str] = {"rpm": "model_rpm_limit", "tpm": "model_tpm_limit"}


def _number(column: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{column} must be a number >= 0")
    return int(value)


def per_model_limits(key_id: str, identity: Identity, models: Iterable[str]) -> list[RateLimit]:
    """The key's per-model rpm/tpm limits of the requested models.

    LiteLLM keeps them in the key's metadata (`{"model_rpm_limit": {"gpt-4o": 10}}`);
    `identity.limits` is read first, then `identity.metadata`.
    """
    found: list[RateLimit] = []
    for kind, column in _PER_MODEL_FIELDS.items():
        spec = identity.limits.get(column, identity.metadata.get(column))
        if spec is None:
            continue
        if not isinstance(spec, Mapping):
            raise ValueError(f"{column} must map model names to numbers")
        for model in models:
            value = spec.get(model)
            if value is not None:
                found.append(RateLimit(kind, "key", key_id, _number(column, value), model))
    return found


def applicable_rate_limits(
    identity: Identity,
    stored: Mapping[tuple[str, str], Iterable[Mapping[str, object]]],
    models: Iterable[str] = (),
    default_end_user_tier: str | None = None,
) -> list[RateLimit]:
    """The key's limits from `identity.limits`, then those of the key, team, user, org and end user.

    An entity's limits are the stored ones (`/budget/set`) when it has any, else those of the
    named budget it is linked to (`tier_of`), else those the identity hands over in `identity.limits[entity]`.
    """
    limits: list[RateLimit] = []
    if identity.key_id:
        key_tier = tier_of("key", identity.limits, None)
        for values in tier_rows(stored, key_tier) if key_tier is not None else (identity.limits,):
            limits.extend(_limits_from("key", identity.key_id, values))
        limits.extend(per_model_limits(identity.key_id, identity, models))
    for entity in RATE_ENTITIES:
        entity_id = entity_id_of(entity, identity)
        if entity_id is None:
            continue
        own = stored.get((entity, entity_id))
        if own is not None:
            for values in own:
                limits.extend(_limits_from(entity, entity_id, values))
            continue
        handed = handed_over_limits(identity, entity) if entity != "key" else None
        tier = tier_of(entity, handed, default_end_user_tier)
        if tier is not None:
            for values in tier_rows(stored, tier):
                limits.extend(_limits_from(entity, entity_id, values))
        elif handed is not None:
            limits.extend(_limits_from(entity, entity_id, handed))
    return limits


def interval_us(limit: RateLimit) -> float:
    """Microseconds of the window one request (rpm) or one token (tpm) uses up."""
    return limit.interval_us


def headers_for(limit: RateLimit, remaining: int, reset_ms: int) -> dict[str, str]:
    """OpenAI-style headers for `limit`: on a 429 (`remaining` 0, reset = retry after) or an allowed response."""
    unit = "tokens" if limit.kind == "tpm" else "requests"
    return {
        f"x-ratelimit-limit-{unit}": str(limit.limit),
        f"x-ratelimit-remaining-{unit}": str(max(0, remaining)),
        f"x-ratelimit-reset-{unit}": f"{-(-max(0, reset_ms) // 1000)}s",
    }


def allowed_headers(limits: Sequence[RateLimit], left: Sequence[int]) -> dict[str, str]:
    """Headers of the tightest rpm and the tightest tpm limit, from `left`: (remaining, reset ms) per limit.

    `parallel` limits are not rates over time, so they add none (OpenAI's headers have no such field).
    """
    requests = tokens = -1
    for index, limit in enumerate(limits):
        if limit.kind == "rpm":
            if requests < 0 or left[2 * index] < left[2 * requests]:
                requests = index
        elif limit.kind == "tpm" and (tokens < 0 or left[2 * index] < left[2 * tokens]):
            tokens = index
    headers: dict[str, str] = {}
    for index in (requests, tokens):
        if index >= 0:
            headers.update(headers_for(limits[index], left[2 * index], left[2 * index + 1]))
    return headers


def distinct(limits: Sequence[RateLimit]) -> list[RateLimit]:
    """One limit per name, the strictest winning."""
    chosen: dict[str, RateLimit] = {}
    for limit in limits:
        kept = chosen.get(limit.name)
        if kept is None or limit.limit < kept.limit:
            chosen[limit.name] = limit
    return list(chosen.values())
