"""Budgets of teams, users, team members, organisations, end users (and extra key budgets), stored in SQL.

The auth path reads them from a snapshot a background task refreshes every `limits_refresh_s`;
changes made through this process's admin API apply at once, other replicas
see them within that interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore_budgets.config import parse_duration
from authcore_budgets.entities import NO_LIMIT, TIER, BudgetRule
from authcore_budgets.tables import limits

logger = logging.getLogger("authcore.budgets")

STORED_ENTITIES = ("key", "team", "user", "team_member", "org", "end_user", TIER)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True, slots=True)
class StoredBudget:
    """One row of `budget_limits`."""

    entity: str
    entity_id: str
    model: str | None
    max_budget_micros: int | None
    soft_budget_micros: int | None
    budget_duration: str | None
    temp_increase_micros: int | None
    temp_increase_expires_at: datetime | None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None

    def rate_values(self) -> dict[str, int]:
        """The rate limits this row sets (only rows over every model carry them)."""
        values = {"rpm_limit": self.rpm_limit, "tpm_limit": self.tpm_limit}
        values["max_parallel_requests"] = self.max_parallel_requests
        return {name: value for name, value in values.items() if value is not None}

    def rule(self, now: datetime) -> BudgetRule | None:
        """The budget in force at `now` (a temporary increase counts until it expires)."""
        if self.max_budget_micros is None and self.soft_budget_micros is None:
            return None  # a row may carry rate limits only
        limit = NO_LIMIT if self.max_budget_micros is None else self.max_budget_micros
        expires = _utc(self.temp_increase_expires_at)
        if limit != NO_LIMIT and self.temp_increase_micros and expires is not None and now < expires:
            limit += self.temp_increase_micros
        duration = parse_duration(self.budget_duration) if self.budget_duration else None
        return BudgetRule(self.entity, self.entity_id, self.model, limit, self.soft_budget_micros, duration)

    def view(self) -> dict[str, Any]:
        expires = _utc(self.temp_increase_expires_at)
        return {
            "model": self.model,
            "max_budget": None if self.max_budget_micros is None else self.max_budget_micros / 1_000_000,
            "soft_budget": None if self.soft_budget_micros is None else self.soft_budget_micros / 1_000_000,
            "budget_duration": self.budget_duration,
            "temp_budget_increase": None
            if self.temp_increase_micros is None
            else self.temp_increase_micros / 1_000_000,
            "temp_budget_expiry": expires.isoformat() if expires is not None else None,
            **self.rate_values(),
        }


class LimitsUnavailable(Exception):
    """The stored budgets could not be read recently enough to be trusted."""


@dataclass(frozen=True, slots=True)
class LimitsView:
    """What the auth path needs from one snapshot, computed once per reload (or temporary-increase expiry)."""

    version: int
    rules: Mapping[tuple[str, str], list[BudgetRule]]
    rates: Mapping[tuple[str, str], list[dict[str, int]]]
    valid_until: datetime | None
    """When a temporary increase in `rules` expires (the view is then recomputed)."""


def _view(version: int, snapshot: Mapping[tuple[str, str], list[StoredBudget]], now: datetime) -> LimitsView:
    rules: dict[tuple[str, str], list[BudgetRule]] = {}
    rates: dict[tuple[str, str], list[dict[str, int]]] = {}
    valid_until: datetime | None = None
    for where, rows in snapshot.items():
        if where[0] == TIER:
            # In both maps even where it sets nothing: a link to it is then not a link to nothing (`tier_rows`).
            rules.setdefault(where, [])
            rates.setdefault(where, [])
        for row in rows:
            rule = row.rule(now)
            if rule is not None:
                rules.setdefault(where, []).append(rule)
            values = row.rate_values()
            if values:
                rates.setdefault(where, []).append(values)
            expires = _utc(row.temp_increase_expires_at)
            if row.temp_increase_micros and expires is not None and now < expires:
                valid_until = expires if valid_until is None else min(valid_until, expires)
    return LimitsView(version, rules, rates, valid_until)


class LimitsStore:
    """Reads and writes `budget_limits`; the auth path reads a snapshot that a background task refreshes.

    The request path never waits for the database: `view()` is synchronous. A
    snapshot older than `stale_after_s` (the refresh kept failing) is not used:
    budgeted requests then fail closed, as they would on a database error.
    """

    def __init__(self, engine: AsyncEngine, refresh_s: float) -> None:
        self._engine = engine
        self._refresh_s = refresh_s
        self.stale_after_s = max(3 * refresh_s, refresh_s + 5.0)
        self._snapshot: dict[tuple[str, str], list[StoredBudget]] = {}
        self._loaded_at: float | None = None
        self._version = 0
        self._view: LimitsView | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load once (a failure is logged; requests fail closed until a refresh succeeds), then keep refreshing."""
        try:
            await self.reload()
        except SQLAlchemyError as error:
            logger.warning("budgets: stored budgets not readable at start-up (%s)", type(error).__name__)
        self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.reload()
            except SQLAlchemyError as error:
                logger.warning("budgets: could not refresh stored budgets (%s)", type(error).__name__)

    def view(self, now_ms: int) -> LimitsView:
        """The current snapshot's rules and rate limits; raises `LimitsUnavailable` when it is too old."""
        if self._loaded_at is None or time.monotonic() - self._loaded_at > self.stale_after_s:
            raise LimitsUnavailable
        view = self._view
        if view is None or (view.valid_until is not None and now_ms >= view.valid_until.timestamp() * 1000):
            # A temporary increase ran out: recompute from the rows (no I/O).
            view = self._view = _view(self._version, self._snapshot, datetime.fromtimestamp(now_ms / 1000, UTC))
        return view

    async def snapshot(self) -> Mapping[tuple[str, str], list[StoredBudget]]:
        """Every stored budget by (entity, id), as last read."""
        if self._loaded_at is None:
            await self.reload()
        return self._snapshot

    async def reload(self) -> None:
        async with self._lock:
            async with self._engine.connect() as connection:
                rows = (await connection.execute(select(limits))).mappings().all()
            snapshot: dict[tuple[str, str], list[StoredBudget]] = {}
            for row in rows:
                stored = StoredBudget(
                    row["entity"],
                    row["entity_id"],
                    row["model"] or None,
                    row["max_budget_micros"],
                    row["soft_budget_micros"],
                    row["budget_duration"],
                    row["temp_increase_micros"],
                    row["temp_increase_expires_at"],
                    row["rpm_limit"],
                    row["tpm_limit"],
                    row["max_parallel_requests"],
                )
                snapshot.setdefault((stored.entity, stored.entity_id), []).append(stored)
            self._snapshot = snapshot
            self._version += 1
            self._view = None
            self._loaded_at = time.monotonic()

    async def put(self, budget: StoredBudget) -> None:
        """Insert or replace one budget, then re-read the snapshot."""
        key = {"entity": budget.entity, "entity_id": budget.entity_id, "model": budget.model or ""}
        async with self._engine.begin() as connection:
            await connection.execute(delete(limits).where(*(limits.c[name] == value for name, value in key.items())))
            await connection.execute(limits.insert().values(**_values(budget)))
        await self.reload()

    async def put_all(self, entity: str, entity_id: str, budgets: Sequence[StoredBudget], *, exists: bool) -> bool:
        """Replace every budget of one entity with `budgets` in one transaction, if the entity has budgets
        already (`exists`) or has none (not `exists`); `False`, changing nothing, otherwise."""
        where = (limits.c.entity == entity, limits.c.entity_id == entity_id)
        async with self._engine.begin() as connection:
            found = (await connection.execute(select(limits.c.model).where(*where).limit(1))).first()
            if (found is not None) != exists:
                return False
            await connection.execute(delete(limits).where(*where))
            await connection.execute(limits.insert(), [_values(budget) for budget in budgets])
        await self.reload()
        return True

    async def remove(self, entity: str, entity_id: str, model: str | None, *, every_model: bool = False) -> bool:
        """Delete one budget (the one over every model when `model` is `None`), or all of them with `every_model`."""
        condition = [limits.c.entity == entity, limits.c.entity_id == entity_id]
        if not every_model:
            condition.append(limits.c.model == (model or ""))
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(limits).where(*condition))
        await self.reload()
        return bool(result.rowcount)


def _values(budget: StoredBudget) -> dict[str, Any]:
    return {
        "entity": budget.entity,
        "entity_id": budget.entity_id,
        "model": budget.model or "",
        "max_budget_micros": budget.max_budget_micros,
        "soft_budget_micros": budget.soft_budget_micros,
        "budget_duration": budget.budget_duration,
        "temp_increase_micros": budget.temp_increase_micros,
        "temp_increase_expires_at": budget.temp_increase_expires_at,
        "rpm_limit": budget.rpm_limit,
        "tpm_limit": budget.tpm_limit,
        "max_parallel_requests": budget.max_parallel_requests,
        "updated_at": datetime.now(UTC),
    }
