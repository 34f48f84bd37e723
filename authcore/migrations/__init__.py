"""Plugin schema migrations: one Alembic runner, one history per plugin, all in the shared database.

A plugin ships its revision scripts in a `versions/` directory inside its package
and declares them on its class (`migrations = Migrations(...)`). Each history keeps
its revision in its own version table, so plugins never see each other's revisions,
and runs under its own Postgres advisory lock, so concurrent start-ups (several
workers, several replicas) upgrade one at a time. The Alembic environment (`env.py`
next to this module) is shared: it only runs on the connection handed to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["ENV_LOCATION", "Migrations"]

ENV_LOCATION: Final = str(Path(__file__).parent)
"""Where Alembic finds the shared `env.py`."""


@dataclass(frozen=True, slots=True)
class Migrations:
    """One plugin's Alembic history: where its revisions live, where its revision is kept, which lock it takes."""

    location: str
    """The plugin's migrations directory; its revision scripts are in `versions/` below it."""
    version_table: str
    """The table holding this history's revision (never Alembic's default `alembic_version`)."""
    lock_id: int
    """Postgres advisory lock id held while upgrading: fixed per plugin, shared by all its processes."""

    def config(self, connection: Connection | None = None) -> Config:
        """A programmatic Alembic config: no alembic.ini, scripts inside the installed packages."""
        config = Config()
        config.set_main_option("script_location", ENV_LOCATION)
        # One directory, split on os.pathsep: a path with spaces stays one path.
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", str(Path(self.location) / "versions"))
        config.attributes["connection"] = connection
        config.attributes["version_table"] = self.version_table
        return config

    def head(self) -> str:
        """The newest revision shipped with the installed plugin."""
        revision = ScriptDirectory.from_config(self.config()).get_current_head()
        if revision is None:
            raise RuntimeError(f"no revisions in {self.location}")
        return revision

    async def upgrade(self, engine: AsyncEngine) -> None:
        """Migrate to the newest revision; a no-op when already there. Safe to run from several processes at once."""
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Released at commit. A second process waits here, then finds nothing left to do.
                await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": self.lock_id})
            await connection.run_sync(self._upgrade)

    async def current(self, engine: AsyncEngine) -> str | None:
        """The revision the database is at; `None` when this history never ran there."""
        async with engine.connect() as connection:
            return await connection.run_sync(self._current)

    def _upgrade(self, connection: Connection) -> None:
        command.upgrade(self.config(connection), "head")

    def _current(self, connection: Connection) -> str | None:
        context = MigrationContext.configure(connection, opts={"version_table": self.version_table})
        return context.get_current_revision()
