"""Temporary budget increase on keys: `temp_budget_increase` until `temp_budget_expiry`.

Revision ID: 0003_temp_budget
Revises: 0002_entities
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_temp_budget"
down_revision = "0002_entities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "vk_keys",
        sa.Column(
            "temp_budget_increase", sa.Float, nullable=True, comment="Added to max_budget until temp_budget_expiry"
        ),
    )
    op.add_column("vk_keys", sa.Column("temp_budget_expiry", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vk_keys") as batch:
        batch.drop_column("temp_budget_expiry")
        batch.drop_column("temp_budget_increase")
