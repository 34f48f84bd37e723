"""One row: counting rows tells how many times this revision ran.

Revision ID: 0002_seed
Revises: 0001_items
"""

from __future__ import annotations

from alembic import op

revision = "0002_seed"
down_revision = "0001_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("INSERT INTO fixture_items (name) VALUES ('seeded')")


def downgrade() -> None:
    op.execute("DELETE FROM fixture_items WHERE name = 'seeded'")
