"""A table, created slowly on Postgres so concurrent upgrades overlap.

Revision ID: 0001_items
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_items"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Widens the window in which an unserialised second upgrade would also try to create the table.
        op.execute("SELECT pg_sleep(0.3)")
    op.create_table(
        "fixture_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fixture_items")
