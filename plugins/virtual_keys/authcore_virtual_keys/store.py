"""Reads and writes of keys, teams, users and the other entities on the shared async engine."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Select, Table, and_, bindparam, delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from authcore import DependencyFailure
from authcore_virtual_keys import migrations
from authcore_virtual_keys.records import KeySnapshot, as_utc, snapshot_from_row
from authcore_virtual_keys.tables import grace_keys, keys, organizations, projects, team_members, teams, users

logger = logging.getLogger("authcore.virtual_keys")

Row = dict[str, Any]


_KEY_ORG = func.coalesce(keys.c.org_id, teams.c.organization_id)


def _lookup_query() -> Select[Any]:
    # One statement per lookup: the key with its team, user, membership, organization and project, so a cold key
    # costs one round trip.
    return select(
        keys,
        teams.c.team_id.label("team_team_id"),
        teams.c.team_alias.label("team_team_alias"),
        teams.c.models.label("team_models"),
        teams.c.blocked.label("team_blocked"),
        teams.c.organization_id.label("team_organization_id"),
        teams.c.max_budget.label("team_max_budget"),
        teams.c.tpm_limit.label("team_tpm_limit"),
        teams.c.rpm_limit.label("team_rpm_limit"),
        users.c.user_id.label("user_user_id"),
        users.c.user_role.label("user_user_role"),
        users.c.deactivated.label("user_deactivated"),
        organizations.c.organization_id.label("org_organization_id"),
        organizations.c.models.label("org_models"),
        organizations.c.blocked.label("org_blocked"),
        organizations.c.max_budget.label("org_max_budget"),
        organizations.c.tpm_limit.label("org_tpm_limit"),
        organizations.c.rpm_limit.label("org_rpm_limit"),
        projects.c.project_id.label("project_project_id"),
        projects.c.models.label("project_models"),
        projects.c.blocked.label("project_blocked"),
        projects.c.max_budget.label("project_max_budget"),
        projects.c.tpm_limit.label("project_tpm_limit"),
        projects.c.rpm_limit.label("project_rpm_limit"),
        team_members.c.max_budget_in_team.label("member_max_budget_in_team"),
    ).select_from(
        keys.outerjoin(teams, teams.c.team_id == keys.c.team_id)
        .outerjoin(users, users.c.user_id == keys.c.user_id)
        .outerjoin(
            team_members, and_(team_members.c.team_id == keys.c.team_id, team_members.c.user_id == keys.c.user_id)
        )
        # A key without an organization of its own is in its team's (`records.snapshot_from_row`).
        .outerjoin(organizations, organizations.c.organization_id == _KEY_ORG)
        .outerjoin(projects, projects.c.project_id == keys.c.project_id)
    )


# Built once with a bound parameter: composing the statement per lookup cost ~200 µs of CPU.
_LOOKUP = _lookup_query().where(keys.c.token_hash == bindparam("token"))
_GRACE_LOOKUP = select(grace_keys).where(grace_keys.c.token_hash == bindparam("token"))


def _row(mapping: Mapping[Any, Any]) -> Row:
    row = dict(mapping)
    for name in ("expires_at", "created_at", "updated_at", "temp_budget_expiry"):
        if name in row:
            row[name] = as_utc(row[name])
    return row


class InUse(Exception):
    """A row cannot be deleted while keys reference it."""

    def __init__(self, ident: str) -> None:
        super().__init__(ident)
        self.ident = ident


def _pk(table: Table) -> Any:
    return next(iter(table.primary_key.columns))


Fetch = Callable[[Select[Any], str], Awaitable[Mapping[str, Any] | None]]
"""Runs `_LOOKUP` or `_GRACE_LOOKUP` with its one parameter, the token hash, and returns the row."""


Found = tuple[KeySnapshot | None, Mapping[str, Any] | None]
"""A lookup's snapshot, and the row it was built from when that row is the key's own (not a grace period's)."""


async def _find(fetch: Fetch, token: str) -> Found:
    """The key with this hash; else, for a regenerated key's old hash in its grace period, the key that
    replaced it, expiring when the grace period ends."""
    found = await fetch(_LOOKUP, token)
    if found is not None:
        return snapshot_from_row(found), found
    grace = await fetch(_GRACE_LOOKUP, token)
    if grace is None:
        return None, None
    until = as_utc(grace["expires_at"])
    assert until is not None
    if now_utc() >= until:
        return None, None
    found = await fetch(_LOOKUP, grace["active_token_hash"])
    if found is None:
        return None, None
    snapshot = snapshot_from_row(found)
    # The per-request expiry check then ends the grace period even for a cached snapshot.
    expires = until if snapshot.expires_at is None else min(until, snapshot.expires_at)
    return dataclasses.replace(snapshot, expires_at=expires), None


def _executing(connection: AsyncConnection) -> Fetch:
    async def fetch(statement: Select[Any], token: str) -> Mapping[str, Any] | None:
        row: Mapping[str, Any] | None = (await connection.execute(statement, {"token": token})).mappings().first()
        return row

    return fetch


class _Dropped(Exception):
    """The server closed the connection under a driver-level read (the pool has been told)."""


async def _find_on_driver(engine: AsyncEngine, compiled: Mapping[Select[Any], str], token: str) -> Found:
    """`_find` on a pooled asyncpg connection, with the statements compiled once.

    The pooled connection without a SQLAlchemy `Connection` around it: checking one out
    and in again costs one greenlet switch instead of three, and no execution or result
    layer. Safe because the read engine is in AUTOCOMMIT: nothing here opens a
    transaction, so returning the connection awaits nothing.
    """
    pooled = await engine.raw_connection()
    driver = pooled.driver_connection
    assert driver is not None

    async def fetch(statement: Select[Any], value: str) -> Mapping[str, Any] | None:
        record = await driver.fetchrow(compiled[statement], value)
        row: dict[str, Any] | None = dict(record.items()) if record is not None else None
        return row

    try:
        return await _find(fetch, token)
    except BaseException as error:
        # The pool did not see this call fail: keep the connection out of it ourselves.
        await greenlet_spawn(pooled.invalidate)
        if isinstance(error, Exception) and driver.is_closed():
            raise _Dropped from error
        raise
    finally:
        pooled.close()


class _RollBack(Exception):
    """Raised inside a transaction to undo it (leaving `begin()` by an exception rolls back)."""


def now_utc() -> datetime:
    return datetime.now(UTC)


class KeyStore:
    """Database access for the plugin. Never sees a raw key: only hashes."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine
        """For `lookup`: `Resources.read_engine()` (AUTOCOMMIT, no pre-ping) in a deployment."""
        # On asyncpg the key is fetched on the driver connection with the statements compiled here
        # once: SQLAlchemy's connection, execution and result layers cost more than the round trip.
        # The row is the same (the dialect's JSON codecs live on that connection). Other drivers: `execute`.
        dialect = self.read_engine.dialect
        self._compiled: dict[Select[Any], str] | None = (
            {statement: str(statement.compile(dialect=dialect)) for statement in (_LOOKUP, _GRACE_LOOKUP)}
            if dialect.driver == "asyncpg"
            else None
        )

    async def create_schema(self) -> None:
        """Run the plugin's migrations up to the newest revision."""
        await migrations.upgrade(self.engine)

    # -- the auth path ------------------------------------------------------

    async def lookup(self, token: str) -> KeySnapshot | None:
        """The key with this hash, or `None`. Database errors become `DependencyFailure` (503).

        A regenerated key in its grace period resolves to the key that replaced
        it (same identity), expiring when the grace period ends.
        """
        return (await self.lookup_row(token))[0]

    async def lookup_row(self, token: str) -> Found:
        """`lookup`, with the row behind the snapshot when it is the key's own (to share it with other replicas)."""
        try:
            try:
                return await self._lookup(token)
            except (DBAPIError, _Dropped) as error:
                if isinstance(error, DBAPIError) and not error.connection_invalidated:
                    raise
                # The server dropped a pooled connection (restart, failover, idle timeout): the read
                # engine does not ping before use, and the pool has now replaced it. Once only.
                return await self._lookup(token)
        except Exception as error:  # noqa: BLE001 - any store failure denies with 503
            # The type only: driver messages can quote parameters, and the parameter is a key hash.
            logger.warning("virtual key lookup failed: %s", type(error).__name__)
            raise DependencyFailure("The key store is unavailable.", reason_id="key_store_unavailable") from None

    async def _lookup(self, token: str) -> Found:
        if self._compiled is not None:
            return await _find_on_driver(self.read_engine, self._compiled, token)
        async with self.read_engine.connect() as connection:
            return await _find(_executing(connection), token)

    # -- keys ---------------------------------------------------------------

    async def existing_tokens(self, tokens: Iterable[str]) -> set[str]:
        wanted = list(tokens)
        async with self.engine.connect() as connection:
            result = await connection.execute(select(keys.c.token_hash).where(keys.c.token_hash.in_(wanted)))
            return {row[0] for row in result}

    async def token_for_key_id(self, ident: str) -> str | None:
        """The current hash of the key whose public id is `ident`."""
        async with self.engine.connect() as connection:
            found = await connection.execute(select(keys.c.token_hash).where(keys.c.key_id == ident))
            return found.scalar_one_or_none()

    async def tokens_for_aliases(self, aliases: Sequence[str]) -> dict[str, str]:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(keys.c.key_alias, keys.c.token_hash).where(keys.c.key_alias.in_(list(aliases)))
            )
            return {row[0]: row[1] for row in result}

    async def delete_keys(self, tokens: Sequence[str]) -> bool:
        """Delete all of `tokens` (and their grace-period predecessors) or none.

        `False` (nothing deleted) when one of them does not exist.
        """
        try:
            async with self.engine.begin() as connection:
                changed = await connection.execute(delete(keys).where(keys.c.token_hash.in_(list(tokens))))
                if changed.rowcount != len(set(tokens)):
                    raise _RollBack
                await connection.execute(delete(grace_keys).where(grace_keys.c.active_token_hash.in_(list(tokens))))
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

    async def regenerate_key(self, old: str, new: str, last4: str, grace: timedelta | None) -> Row | None:
        """Move the key from hash `old` to hash `new`, keeping every setting and its spend.

        With `grace`, `old` keeps resolving to the key until then; without it,
        `old` stops at once. Earlier predecessors still in their grace period
        follow the key to its new hash. `None` when `old` is not a key.
        """
        now = now_utc()
        async with self.engine.begin() as connection:
            changed = await connection.execute(
                update(keys).where(keys.c.token_hash == old).values(token_hash=new, last4=last4, updated_at=now)
            )
            if changed.rowcount == 0:
                return None
            await connection.execute(
                update(grace_keys).where(grace_keys.c.active_token_hash == old).values(active_token_hash=new)
            )
            # The new value is a current key now; ended grace periods no longer resolve anyway.
            await connection.execute(
                delete(grace_keys).where((grace_keys.c.token_hash == new) | (grace_keys.c.expires_at <= now))
            )
            if grace is not None:
                await connection.execute(
                    grace_keys.insert().values(
                        token_hash=old, active_token_hash=new, expires_at=now + grace, created_at=now
                    )
                )
            found = (await connection.execute(select(keys).where(keys.c.token_hash == new))).mappings().one()
        return _row(found)

    async def grace_tokens(self, token: str) -> list[str]:
        """Hashes of earlier versions of this key that still resolve to it (until their grace ends)."""
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(grace_keys.c.token_hash).where(grace_keys.c.active_token_hash == token)
            )
            return [row[0] for row in result]

    # -- organizations, projects, end users (one primary-key column each) ---

    async def insert_row(self, table: Table, values: Mapping[str, Any]) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(table.insert().values(**values))

    async def get_row(self, table: Table, ident: str) -> Row | None:
        async with self.engine.connect() as connection:
            found = (await connection.execute(select(table).where(_pk(table) == ident))).mappings().first()
        return _row(found) if found is not None else None

    async def update_row(self, table: Table, ident: str, values: Mapping[str, Any]) -> Row | None:
        """Apply `values`; the new row, or `None` when there is no such row."""
        # Tables with an `updated_at` column record when a row last changed.
        stamp = {"updated_at": now_utc()} if "updated_at" in table.c else {}
        async with self.engine.begin() as connection:
            changed = await connection.execute(update(table).where(_pk(table) == ident).values(**values, **stamp))
            if changed.rowcount == 0:
                return None
            found = (await connection.execute(select(table).where(_pk(table) == ident))).mappings().one()
        return _row(found)

    async def delete_rows(
        self, table: Table, idents: Sequence[str], *, unless_used_by: Sequence[Column[Any]] = ()
    ) -> bool:
        """Delete all of `idents` or none: `False` when one does not exist.

        With `unless_used_by` (columns of keys or teams), raise `InUse` instead
        of deleting what they still reference.
        """
        wanted = list(idents)
        try:
            async with self.engine.begin() as connection:
                for column in unless_used_by:
                    used = (
                        await connection.execute(select(column).where(column.in_(wanted)).limit(1))
                    ).scalar_one_or_none()
                    if used is not None:
                        raise InUse(used)
                changed = await connection.execute(delete(table).where(_pk(table).in_(wanted)))
                if changed.rowcount != len(set(wanted)):
                    raise _RollBack
        except _RollBack:
            return False
        return True

    async def set_flag(self, table: Table, idents: Sequence[str], column: str, value: bool) -> bool:
        """Set a boolean column on all of `idents`, or on none (`False`) when one does not exist."""
        wanted = list(idents)
        try:
            async with self.engine.begin() as connection:
                changed = await connection.execute(
                    update(table).where(_pk(table).in_(wanted)).values({column: value, "updated_at": now_utc()})
                )
                if changed.rowcount != len(set(wanted)):
                    raise _RollBack
        except _RollBack:
            return False
        return True

    async def list_rows(self, table: Table, offset: int, limit: int) -> tuple[list[Row], int]:
        async with self.engine.connect() as connection:
            total = (await connection.execute(select(func.count()).select_from(table))).scalar_one()
            ordered = select(table).order_by(table.c.created_at, _pk(table)).offset(offset).limit(limit)
            rows = [_row(row) for row in (await connection.execute(ordered)).mappings()]
        return rows, int(total)

    # -- teams and users ----------------------------------------------------

    async def delete_with_keys(self, table: Table, idents: Sequence[str]) -> bool:
        """Delete all of these teams or users (`table`) with their keys and team memberships, or nothing
        when one does not exist."""
        wanted = list(idents)
        column = _pk(table).name
        try:
            async with self.engine.begin() as connection:
                changed = await connection.execute(delete(table).where(_pk(table).in_(wanted)))
                if changed.rowcount != len(set(wanted)):
                    raise _RollBack
                # Their keys go with them (as in LiteLLM): left behind they would outlive their limits and owner.
                owned = select(keys.c.token_hash).where(keys.c[column].in_(wanted))
                await connection.execute(delete(grace_keys).where(grace_keys.c.active_token_hash.in_(owned)))
                await connection.execute(delete(keys).where(keys.c[column].in_(wanted)))
                await connection.execute(delete(team_members).where(team_members.c[column].in_(wanted)))
        except _RollBack:
            return False
        return True

    async def team_key_orgs(self, team_id: str) -> set[str]:
        """The organizations the team's keys name themselves (keys without one follow the team)."""
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(keys.c.org_id).where(keys.c.team_id == team_id, keys.c.org_id.is_not(None)).distinct()
            )
            return {row[0] for row in result}

    # -- team members -------------------------------------------------------

    async def add_members(self, team_id: str, members: Sequence[Mapping[str, Any]], new_users: Sequence[Row]) -> str:
        """Store `new_users` and the memberships, all or nothing: `"added"`, `"no_team"`, or `"member"` when
        one of them is already in the team."""
        try:
            async with self.engine.begin() as connection:
                found = await connection.execute(select(teams.c.team_id).where(teams.c.team_id == team_id))
                if found.first() is None:
                    raise _RollBack("no_team")
                for user in new_users:
                    await connection.execute(users.insert().values(**user))
                for member in members:
                    await connection.execute(team_members.insert().values(team_id=team_id, **member))
        except _RollBack as outcome:
            return str(outcome)
        except IntegrityError:
            return "member"
        return "added"

    async def team_members(self, team_id: str) -> list[Row]:
        """The team's members with their e-mail, oldest first."""
        query = (
            select(team_members, users.c.user_email)
            .select_from(team_members.outerjoin(users, users.c.user_id == team_members.c.user_id))
            .where(team_members.c.team_id == team_id)
            .order_by(team_members.c.created_at, team_members.c.user_id)
        )
        async with self.engine.connect() as connection:
            return [_row(row) for row in (await connection.execute(query)).mappings()]

    async def update_member(self, team_id: str, user_id: str, values: Mapping[str, Any]) -> bool:
        member = and_(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
        async with self.engine.begin() as connection:
            changed = await connection.execute(
                update(team_members).where(member).values(**values, updated_at=now_utc())
            )
        return bool(changed.rowcount)

    async def delete_member(self, team_id: str, user_id: str) -> bool:
        member = and_(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
        async with self.engine.begin() as connection:
            changed = await connection.execute(delete(team_members).where(member))
        return bool(changed.rowcount)

    async def user_ids_by_email(self, emails: Iterable[str]) -> dict[str, str]:
        """E-mail -> user id for the stored users with these e-mails (the oldest user, when several share one)."""
        wanted = sorted(set(emails))
        query = select(users.c.user_email, users.c.user_id).where(users.c.user_email.in_(wanted))
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query.order_by(users.c.created_at.desc(), users.c.user_id.desc()))).all()
        return {email: user_id for email, user_id in rows}

    # -- users --------------------------------------------------------------

    async def user_keys(self, user_id: str) -> list[str]:
        async with self.engine.connect() as connection:
            result = await connection.execute(select(keys.c.token_hash).where(keys.c.user_id == user_id))
            return [row[0] for row in result]
