"""Every settled request with a rate limit is recorded, with the tokens it used: rate limits are rebuilt from it.

Revision ID: 0002_ledger_tokens
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_ledger_tokens"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "budget_ledger",
        sa.Column(
            "tokens",
            sa.BigInteger,
            nullable=False,
            server_default="0",
            comment="Tokens used (rebuilds tpm limits)",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("budget_ledger") as batch:
        batch.drop_column("tokens")
