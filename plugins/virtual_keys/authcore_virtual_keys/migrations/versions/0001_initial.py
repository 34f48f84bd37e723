"""Keys, teams and users, as the first release created them.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = ("vk_keys", "vk_teams", "vk_users")


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if existing.issuperset(_TABLES):
        # Created by the first release's create_all, before there were migrations: adopt them as they are.
        return
    op.create_table(
        "vk_keys",
        sa.Column("token_hash", sa.String(64), primary_key=True, comment="HMAC-SHA-256 hex of the key, never the key"),
        sa.Column("key_prefix", sa.String(16), nullable=True, comment="Display only, e.g. 'sk-'"),
        sa.Column("last4", sa.String(4), nullable=True, comment="Display only: last four characters"),
        sa.Column("key_alias", sa.String(255), nullable=True, unique=True),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("allowed_routes", sa.JSON, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked", sa.Boolean, nullable=False),
        sa.Column("team_id", sa.String(255), nullable=True, index=True),
        sa.Column("user_id", sa.String(255), nullable=True, index=True),
        sa.Column("org_id", sa.String(255), nullable=True),
        sa.Column("project_id", sa.String(255), nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("spend", sa.Float, nullable=False),
        sa.Column("max_budget", sa.Float, nullable=True),
        sa.Column("soft_budget", sa.Float, nullable=True),
        sa.Column("budget_duration", sa.String(32), nullable=True),
        sa.Column("tpm_limit", sa.Integer, nullable=True),
        sa.Column("rpm_limit", sa.Integer, nullable=True),
        sa.Column("max_parallel_requests", sa.Integer, nullable=True),
        sa.Column("model_max_budget", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "vk_teams",
        sa.Column("team_id", sa.String(255), primary_key=True),
        sa.Column("team_alias", sa.String(255), nullable=True),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("blocked", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("max_budget", sa.Float, nullable=True),
        sa.Column("tpm_limit", sa.Integer, nullable=True),
        sa.Column("rpm_limit", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "vk_users",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("user_role", sa.String(64), nullable=True),
        sa.Column("user_email", sa.String(320), nullable=True),
        sa.Column("deactivated", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for name in reversed(_TABLES):
        op.drop_table(name)
