"""Request and token rate limits: rpm and tpm as GCRA, parallel requests as expiring in-flight holds.

`rpm` spends one request's share of the minute on admission. `tpm` admits while
the tokens charged in the last minute are below the limit, and charges the
actual tokens at settlement (the count is not known before). `parallel` holds a
slot per in-flight request, dropped at settlement or after `hold_ttl_s`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from authcore import Identity
from authcore_budgets.entities import entity_id_of

WINDOW_US = 60_000_000
"""The rate window: one minute, in microseconds."""
RATE_ENTITIES = ("key", "team", "user", "end_user")
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

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.entity}:{quote(self.entity_id, safe='')}"


@dataclass(frozen=True, slots=True)
class RateOutcome:
    admitted: bool
    denied_index: int | None = None
    retry_after_ms: int = 0


def _limits_from(entity: str, entity_id: str, values: Mapping[str, object]) -> list[RateLimit]:
    found: list[RateLimit] = []
    for kind, field in _FIELDS.items():
        value = values.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{field} must be a number >= 0")
        found.append(RateLimit(kind, entity, entity_id, int(value)))
    return found


def applicable_rate_limits(
    identity: Identity, stored: Mapping[tuple[str, str], Iterable[Mapping[str, object]]]
) -> list[RateLimit]:
    """The key's limits from `identity.limits`, then stored limits of the key, team, user and end user."""
    limits: list[RateLimit] = []
    if identity.key_id:
        limits.extend(_limits_from("key", identity.key_id, identity.limits))
    for entity in RATE_ENTITIES:
        entity_id = entity_id_of(entity, identity)
        if entity_id is None:
            continue
        for values in stored.get((entity, entity_id), ()):
            limits.extend(_limits_from(entity, entity_id, values))
    return limits


def interval_us(limit: RateLimit) -> float:
    """Microseconds of the window one request (rpm) or one token (tpm) uses up."""
    return WINDOW_US / limit.limit if limit.limit else float(WINDOW_US) * 2


def headers_for(limit: RateLimit, retry_after_ms: int) -> dict[str, str]:
    """OpenAI-style headers for a 429 on `limit`."""
    unit = "tokens" if limit.kind == "tpm" else "requests"
    reset = f"{max(1, -(-retry_after_ms // 1000))}s"
    return {
        f"x-ratelimit-limit-{unit}": str(limit.limit),
        f"x-ratelimit-remaining-{unit}": "0",
        f"x-ratelimit-reset-{unit}": reset,
    }


def distinct(limits: Sequence[RateLimit]) -> list[RateLimit]:
    """One limit per name, the strictest winning."""
    chosen: dict[str, RateLimit] = {}
    for limit in limits:
        kept = chosen.get(limit.name)
        if kept is None or limit.limit < kept.limit:
            chosen[limit.name] = limit
    return list(chosen.values())
