"""The spend ledger and the stored entity budgets, as the first release created them.

Revision ID: 0001_initial
Revises:

Databases from before migrations had these tables from `create_all`: a table
that is already there is adopted as it is, one that is missing is created.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "budget_ledger" not in existing:
        _create_ledger()
    if "budget_limits" not in existing:
        _create_limits()


def _create_ledger() -> None:
    op.create_table(
        "budget_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True, comment="One settled charge per request"),
        sa.Column("amount_micros", sa.BigInteger, nullable=False, comment="Actual cost in micro-USD"),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("key_id", sa.String(255), nullable=True),
        sa.Column("team_id", sa.String(255), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("org_id", sa.String(255), nullable=True),
        sa.Column("end_user_id", sa.String(255), nullable=True),
        sa.Column(
            "reserved_at_ms", sa.BigInteger, nullable=False, comment="Decides the budget period the charge falls in"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_budget_ledger_reserved_at", "budget_ledger", ["reserved_at_ms"])
    op.create_index("ix_budget_ledger_key", "budget_ledger", ["key_id", "reserved_at_ms"])
    op.create_index("ix_budget_ledger_team", "budget_ledger", ["team_id", "reserved_at_ms"])


def _create_limits() -> None:
    op.create_table(
        "budget_limits",
        sa.Column("entity", sa.String(32), primary_key=True),
        sa.Column("entity_id", sa.String(255), primary_key=True),
        sa.Column("model", sa.String(255), primary_key=True, comment="'' for a budget over every model"),
        sa.Column("max_budget_micros", sa.BigInteger, nullable=True),
        sa.Column("soft_budget_micros", sa.BigInteger, nullable=True),
        sa.Column("budget_duration", sa.String(16), nullable=True),
        sa.Column("temp_increase_micros", sa.BigInteger, nullable=True),
        sa.Column("temp_increase_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rpm_limit", sa.Integer, nullable=True),
        sa.Column("tpm_limit", sa.Integer, nullable=True),
        sa.Column("max_parallel_requests", sa.Integer, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("budget_limits")
    op.drop_table("budget_ledger")
