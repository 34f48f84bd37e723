"""Check that a plugin's migrations build exactly the schema its SQLAlchemy tables describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData


def schema_differences(connection: Connection, metadata: MetaData, version_table: str) -> list[object]:
    """Alembic's differences between the database and `metadata`, ignoring the plugin's version table.

    `[]` means the migrated database matches the tables the code uses. Call it
    with `await connection.run_sync(lambda sync: schema_differences(sync, ...))`.
    Only tables in `metadata` and the database count: other plugins' tables in
    the same database show up as `remove_table` differences, so use a database
    (or schema) of your own per test.
    """
    context = MigrationContext.configure(connection)
    return [diff for diff in compare_metadata(context, metadata) if not _is_table(diff, version_table)]


def _is_table(diff: object, name: str) -> bool:
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == name
