"""The spend ledger: the durable record of every settled charge, and the source counters are rebuilt from."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore_budgets.entities import LedgerFilter
from authcore_budgets.tables import ledger, metadata


@dataclass(frozen=True, slots=True)
class Charge:
    """One settled request."""

    request_id: str
    amount_micros: int
    model: str | None
    columns: Mapping[str, str]
    """Non-empty identity columns: key_id, team_id, user_id, org_id, end_user_id."""
    reserved_at_ms: int


class Ledger:
    """Writes charges once per request id and sums them per budget window."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_schema(self) -> None:
        async with self._engine.begin() as connection:
            await connection.run_sync(metadata.create_all)

    async def record(self, charge: Charge) -> bool:
        """Insert the charge; `False` when this request id was already recorded (a repeated settlement)."""
        values = {
            "request_id": charge.request_id,
            "amount_micros": charge.amount_micros,
            "model": charge.model,
            "reserved_at_ms": charge.reserved_at_ms,
            "created_at": datetime.now(UTC),
            **{name: value for name, value in charge.columns.items() if name in ledger.c},
        }
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(ledger).values(**values))
        except IntegrityError:
            return False
        return True

    async def total(self, where: LedgerFilter, exclude: Collection[str] = ()) -> int:
        """Micro-USD recorded for a budget window, leaving out `exclude` request ids."""
        conditions = [ledger.c[column] == value for column, value in where.columns]
        if where.model is not None:
            conditions.append(ledger.c.model == where.model)
        conditions.append(ledger.c.reserved_at_ms >= where.start_ms)
        if where.end_ms is not None:
            conditions.append(ledger.c.reserved_at_ms < where.end_ms)
        if exclude:
            conditions.append(ledger.c.request_id.not_in(list(exclude)))
        query = select(func.coalesce(func.sum(ledger.c.amount_micros), 0)).where(and_(*conditions))
        async with self._engine.connect() as connection:
            value = (await connection.execute(query)).scalar_one()
        return int(value)
