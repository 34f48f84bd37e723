"""A key may be linked to a named budget (LiteLLM's `budget_id`), which the budgets plugin enforces.

Revision ID: 0005_key_budget_id
Revises: 0004_key_id_team_org
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_key_budget_id"
down_revision = "0004_key_id_team_org"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "vk_keys",
        sa.Column("budget_id", sa.String(255), nullable=True, comment="A named budget of the budgets plugin"),
    )


def downgrade() -> None:
    with op.batch_alter_table("vk_keys") as batch:
        batch.drop_column("budget_id")
