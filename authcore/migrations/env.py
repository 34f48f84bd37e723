"""Alembic environment shared by every plugin: runs on the connection `Migrations.upgrade()` hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run plugin migrations through authcore.migrations.Migrations.upgrade(engine)")

context.configure(
    connection=connection,
    version_table=context.config.attributes["version_table"],
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
