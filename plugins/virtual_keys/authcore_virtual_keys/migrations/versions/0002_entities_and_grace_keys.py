"""Organizations, projects, end users (customers), and regenerated keys in their grace period.

Revision ID: 0002_entities
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_entities"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vk_organizations",
        sa.Column("organization_id", sa.String(255), primary_key=True),
        sa.Column("organization_alias", sa.String(255), nullable=True),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("blocked", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("max_budget", sa.Float, nullable=True),
        sa.Column("tpm_limit", sa.Integer, nullable=True),
        sa.Column("rpm_limit", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "vk_projects",
        sa.Column("project_id", sa.String(255), primary_key=True),
        sa.Column("project_alias", sa.String(255), nullable=True),
        sa.Column("organization_id", sa.String(255), nullable=True, index=True),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("blocked", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "vk_end_users",
        sa.Column("user_id", sa.String(255), primary_key=True, comment="Sent as `user` or x-litellm-end-user-id"),
        sa.Column("alias", sa.String(255), nullable=True),
        sa.Column("allowed_model_region", sa.String(16), nullable=True),
        sa.Column("default_model", sa.String(255), nullable=True),
        sa.Column("blocked", sa.Boolean, nullable=False),
        sa.Column("budget_id", sa.String(255), nullable=True),
        sa.Column("max_budget", sa.Float, nullable=True),
        sa.Column("spend", sa.Float, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "vk_grace_keys",
        sa.Column(
            "token_hash",
            sa.String(64),
            primary_key=True,
            comment="Old hash of a regenerated key, valid until expires_at",
        ),
        sa.Column("active_token_hash", sa.String(64), nullable=False, index=True, comment="Hash of its successor"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for name in ("vk_grace_keys", "vk_end_users", "vk_projects", "vk_organizations"):
        op.drop_table(name)
