"""Budgets of teams, users, team members, organisations, end users (and extra key budgets), stored in SQL.

The auth path reads them from a snapshot refreshed every `limits_refresh_s`;
changes made through this process's admin API apply at once, other replicas
see them within that interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore_budgets.config import parse_duration
from authcore_budgets.entities import NO_LIMIT, BudgetRule
from authcore_budgets.tables import limits

STORED_ENTITIES = ("key", "team", "user", "team_member", "org", "end_user")


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


class LimitsStore:
    """Reads and writes `budget_limits`, with a refreshed in-memory snapshot for the auth path."""

    def __init__(self, engine: AsyncEngine, refresh_s: float) -> None:
        self._engine = engine
        self._refresh_s = refresh_s
        self._snapshot: dict[tuple[str, str], list[StoredBudget]] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def snapshot(self) -> Mapping[tuple[str, str], list[StoredBudget]]:
        """Every stored budget by (entity, id); re-read when older than the refresh interval."""
        if self._loaded_at is not None and time.monotonic() - self._loaded_at < self._refresh_s:
            return self._snapshot
        async with self._lock:
            if self._loaded_at is None or time.monotonic() - self._loaded_at >= self._refresh_s:
                await self._reload()
        return self._snapshot

    async def rules(self, now: datetime) -> dict[tuple[str, str], list[BudgetRule]]:
        found: dict[tuple[str, str], list[BudgetRule]] = {}
        for where, rows in (await self.snapshot()).items():
            for row in rows:
                rule = row.rule(now)
                if rule is not None:
                    found.setdefault(where, []).append(rule)
        return found

    async def rate_values(self) -> dict[tuple[str, str], list[dict[str, int]]]:
        found: dict[tuple[str, str], list[dict[str, int]]] = {}
        for where, rows in (await self.snapshot()).items():
            for row in rows:
                values = row.rate_values()
                if values:
                    found.setdefault(where, []).append(values)
        return found

    async def _reload(self) -> None:
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
        self._loaded_at = time.monotonic()

    async def put(self, budget: StoredBudget) -> None:
        """Insert or replace one budget, then re-read the snapshot."""
        key = {"entity": budget.entity, "entity_id": budget.entity_id, "model": budget.model or ""}
        values = {
            **key,
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
        async with self._engine.begin() as connection:
            await connection.execute(delete(limits).where(*(limits.c[name] == value for name, value in key.items())))
            await connection.execute(limits.insert().values(**values))
        async with self._lock:
            await self._reload()

    async def remove(self, entity: str, entity_id: str, model: str | None) -> bool:
        condition = (limits.c.entity == entity, limits.c.entity_id == entity_id, limits.c.model == (model or ""))
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(limits).where(*condition))
        async with self._lock:
            await self._reload()
        return bool(result.rowcount)
