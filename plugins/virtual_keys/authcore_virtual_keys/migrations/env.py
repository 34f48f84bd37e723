"""Alembic environment: runs on the connection `upgrade()` hands over, never opens its own."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run these migrations through authcore_virtual_keys.migrations.upgrade(engine)")

context.configure(
    connection=connection,
    version_table=context.config.attributes["version_table"],
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
