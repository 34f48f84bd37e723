"""Reads and writes of keys, teams and users on the shared async engine."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import DependencyFailure
from authcore_virtual_keys.records import KeySnapshot, as_utc, snapshot_from_row
from authcore_virtual_keys.tables import keys, metadata, teams, users

logger = logging.getLogger("authcore.virtual_keys")

Row = dict[str, Any]


def _lookup_query() -> Select[Any]:
    # One statement per lookup: the key with its team and user, so a cold key costs one round trip.
    return select(
        keys,
        teams.c.team_id.label("team_team_id"),
        teams.c.team_alias.label("team_team_alias"),
        teams.c.models.label("team_models"),
        teams.c.blocked.label("team_blocked"),
        users.c.user_id.label("user_user_id"),
        users.c.user_role.label("user_user_role"),
        users.c.deactivated.label("user_deactivated"),
    ).select_from(
        keys.outerjoin(teams, teams.c.team_id == keys.c.team_id).outerjoin(users, users.c.user_id == keys.c.user_id)
    )


_LOOKUP = _lookup_query()


def _row(mapping: Mapping[Any, Any]) -> Row:
    row = dict(mapping)
    for name in ("expires_at", "created_at", "updated_at"):
        if name in row:
            row[name] = as_utc(row[name])
    return row


class _RollBack(Exception):
    """Raised inside a transaction to undo it (leaving `begin()` by an exception rolls back)."""


def now_utc() -> datetime:
    return datetime.now(UTC)


class KeyStore:
    """Database access for the plugin. Never sees a raw key: only hashes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_schema(self) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)

    # -- the auth path ------------------------------------------------------

    async def lookup(self, token: str) -> KeySnapshot | None:
        """The key with this hash, or `None`. Database errors become `DependencyFailure` (503)."""
        try:
            async with self.engine.connect() as connection:
                result = await connection.execute(_LOOKUP.where(keys.c.token_hash == token))
                found = result.mappings().first()
        except Exception as error:  # noqa: BLE001 - any store failure denies with 503
            # The type only: driver messages can quote parameters, and the parameter is a key hash.
            logger.warning("virtual key lookup failed: %s", type(error).__name__)
            raise DependencyFailure("The key store is unavailable.", reason_id="key_store_unavailable") from None
        return snapshot_from_row(found) if found is not None else None

    # -- keys ---------------------------------------------------------------

    async def insert_key(self, values: Mapping[str, Any]) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(keys.insert().values(**values))

    async def get_key(self, token: str) -> Row | None:
        async with self.engine.connect() as connection:
            found = (await connection.execute(select(keys).where(keys.c.token_hash == token))).mappings().first()
        return _row(found) if found is not None else None

    async def update_key(self, token: str, values: Mapping[str, Any]) -> Row | None:
        """Apply `values` and return the new row, or `None` when the key does not exist."""
        async with self.engine.begin() as connection:
            changed = await connection.execute(
                update(keys).where(keys.c.token_hash == token).values(**values, updated_at=now_utc())
            )
            if changed.rowcount == 0:
                return None
            found = (await connection.execute(select(keys).where(keys.c.token_hash == token))).mappings().one()
        return _row(found)

    async def existing_tokens(self, tokens: Iterable[str]) -> set[str]:
        wanted = list(tokens)
        async with self.engine.connect() as connection:
            result = await connection.execute(select(keys.c.token_hash).where(keys.c.token_hash.in_(wanted)))
            return {row[0] for row in result}

    async def tokens_for_aliases(self, aliases: Sequence[str]) -> dict[str, str]:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(keys.c.key_alias, keys.c.token_hash).where(keys.c.key_alias.in_(list(aliases)))
            )
            return {row[0]: row[1] for row in result}

    async def delete_keys(self, tokens: Sequence[str]) -> bool:
        """Delete all of `tokens` or none: `False` (nothing deleted) when one of them does not exist."""
        try:
            async with self.engine.begin() as connection:
                changed = await connection.execute(delete(keys).where(keys.c.token_hash.in_(list(tokens))))
                if changed.rowcount != len(set(tokens)):
                    raise _RollBack
        except _RollBack:
            return False
        return True

    async def list_keys(self, filters: Mapping[str, str], offset: int, limit: int) -> tuple[list[Row], int]:
        conditions = [getattr(keys.c, name) == value for name, value in filters.items()]
        async with self.engine.connect() as connection:
            total = (await connection.execute(select(func.count()).select_from(keys).where(*conditions))).scalar_one()
            ordered = select(keys).where(*conditions).order_by(keys.c.created_at, keys.c.token_hash)
            result = await connection.execute(ordered.offset(offset).limit(limit))
            rows = [_row(row) for row in result.mappings()]
        return rows, int(total)

    # -- teams --------------------------------------------------------------

    async def insert_team(self, values: Mapping[str, Any]) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(teams.insert().values(**values))

    async def get_team(self, team_id: str) -> Row | None:
        async with self.engine.connect() as connection:
            found = (await connection.execute(select(teams).where(teams.c.team_id == team_id))).mappings().first()
        return _row(found) if found is not None else None

    async def update_team(self, team_id: str, values: Mapping[str, Any]) -> Row | None:
        async with self.engine.begin() as connection:
            changed = await connection.execute(update(teams).where(teams.c.team_id == team_id).values(**values))
            if changed.rowcount == 0:
                return None
            found = (await connection.execute(select(teams).where(teams.c.team_id == team_id))).mappings().one()
        return _row(found)

    async def delete_teams(self, team_ids: Sequence[str]) -> bool:
        """Delete all of the teams and their keys, or nothing when one team does not exist."""
        try:
            async with self.engine.begin() as connection:
                changed = await connection.execute(delete(teams).where(teams.c.team_id.in_(list(team_ids))))
                if changed.rowcount != len(set(team_ids)):
                    raise _RollBack
                # A team's keys go with it: left behind they would outlive the team's limits.
                await connection.execute(delete(keys).where(keys.c.team_id.in_(list(team_ids))))
        except _RollBack:
            return False
        return True

    # -- users --------------------------------------------------------------

    async def insert_user(self, values: Mapping[str, Any]) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(users.insert().values(**values))

    async def get_user(self, user_id: str) -> Row | None:
        async with self.engine.connect() as connection:
            found = (await connection.execute(select(users).where(users.c.user_id == user_id))).mappings().first()
        return _row(found) if found is not None else None

    async def update_user(self, user_id: str, values: Mapping[str, Any]) -> Row | None:
        async with self.engine.begin() as connection:
            changed = await connection.execute(update(users).where(users.c.user_id == user_id).values(**values))
            if changed.rowcount == 0:
                return None
            found = (await connection.execute(select(users).where(users.c.user_id == user_id))).mappings().one()
        return _row(found)

    async def user_keys(self, user_id: str) -> list[str]:
        async with self.engine.connect() as connection:
            result = await connection.execute(select(keys.c.token_hash).where(keys.c.user_id == user_id))
            return [row[0] for row in result]
