"""Team memberships (a user's role in a team and its budget there: LiteLLM's /team/member_* endpoints), and limits
on projects (max_budget, tpm_limit, rpm_limit, handed over to other plugins as teams' and organizations' are).

Revision ID: 0006_team_members
Revises: 0005_key_budget_id
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_team_members"
down_revision = "0005_key_budget_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vk_team_members",
        sa.Column("team_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False, comment="LiteLLM's team member roles: admin or user"),
        sa.Column(
            "max_budget_in_team", sa.Float, nullable=True, comment="The member's budget in this team (budgets enforces)"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_vk_team_members_user_id", "vk_team_members", ["user_id"])
    op.add_column("vk_projects", sa.Column("max_budget", sa.Float, nullable=True))
    op.add_column("vk_projects", sa.Column("tpm_limit", sa.Integer, nullable=True))
    op.add_column("vk_projects", sa.Column("rpm_limit", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vk_projects") as batch:
        for column in ("max_budget", "tpm_limit", "rpm_limit"):
            batch.drop_column(column)
    op.drop_table("vk_team_members")
