"""Stable key ids that survive regeneration, and teams that belong to an organization.

`key_id` is the public id of a key (`Identity.key_id`: budgets count spend by it).
It used to be derived from the stored hash, so regenerating a key changed it and
its spend started again from zero. Existing keys keep the value they had (the first
12 hex characters of their hash), so spend already counted stays theirs.

Revision ID: 0004_key_id_team_org
Revises: 0003_temp_budget
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_key_id_team_org"
down_revision = "0003_temp_budget"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "vk_keys",
        sa.Column("key_id", sa.String(64), nullable=True, comment="Public id, fixed at creation; kept by regenerate"),
    )
    # The value `Identity.key_id` had so far (hashing.KEY_ID_LENGTH hex characters of the hash).
    op.execute("UPDATE vk_keys SET key_id = substr(token_hash, 1, 12)")
    with op.batch_alter_table("vk_keys") as batch:
        batch.alter_column("key_id", existing_type=sa.String(64), nullable=False)
        batch.create_index("ix_vk_keys_key_id", ["key_id"], unique=True)
    op.add_column("vk_teams", sa.Column("organization_id", sa.String(255), nullable=True))
    op.create_index("ix_vk_teams_organization_id", "vk_teams", ["organization_id"])


def downgrade() -> None:
    op.drop_index("ix_vk_teams_organization_id", table_name="vk_teams")
    with op.batch_alter_table("vk_teams") as batch:
        batch.drop_column("organization_id")
    with op.batch_alter_table("vk_keys") as batch:
        batch.drop_index("ix_vk_keys_key_id")
        batch.drop_column("key_id")
