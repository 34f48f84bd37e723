"""The plugin's Alembic migrations, run on the shared async engine.

`upgrade(engine)` brings the schema to the newest revision and `current(engine)`
reports the revision a database is at; both are safe to call from a CLI. The
revision is kept in `vk_alembic_version`, so other plugins can keep their own
Alembic history in the same database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

VERSION_TABLE: Final = "vk_alembic_version"
SCRIPT_LOCATION: Final = str(Path(__file__).parent)
ADVISORY_LOCK_ID: Final = 0x766B5F6D6967  # "vk_mig": one fixed id, shared by every process of this plugin
"""Postgres advisory lock held while upgrading, so concurrent start-ups migrate one at a time."""


def alembic_config(connection: Connection | None = None) -> Config:
    """A programmatic Alembic config: no alembic.ini, scripts inside the installed package."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    config.attributes["version_table"] = VERSION_TABLE
    return config


def head() -> str:
    """The newest revision shipped with this version of the plugin."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


async def upgrade(engine: AsyncEngine) -> None:
    """Migrate to the newest revision; a no-op when already there. Safe to run from several workers at once."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Released at commit. The second worker waits here, then finds nothing left to do.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
        await connection.run_sync(_upgrade)


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at, `None` when the plugin's tables were never created."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)
