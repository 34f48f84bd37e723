"""The plugin's SQL tables (SQLAlchemy Core): the spend ledger and the stored entity budgets.

They are created and changed only by the migrations in `authcore_budgets.migrations`;
a test checks that the newest revision builds exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table

metadata = MetaData()

ledger = Table(
    "budget_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True, comment="One settled charge per request"),
    Column("amount_micros", BigInteger, nullable=False, comment="Actual cost in micro-USD"),
    Column("model", String(255), nullable=True),
    Column("key_id", String(255), nullable=True),
    Column("team_id", String(255), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("org_id", String(255), nullable=True),
    Column("end_user_id", String(255), nullable=True),
    Column("reserved_at_ms", BigInteger, nullable=False, comment="Decides the budget period the charge falls in"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("tokens", BigInteger, nullable=False, server_default="0", comment="Tokens used (rebuilds tpm limits)"),
    Index("ix_budget_ledger_reserved_at", "reserved_at_ms"),
    Index("ix_budget_ledger_key", "key_id", "reserved_at_ms"),
    Index("ix_budget_ledger_team", "team_id", "reserved_at_ms"),
)

limits = Table(
    "budget_limits",
    metadata,
    Column("entity", String(32), primary_key=True),
    Column("entity_id", String(255), primary_key=True),
    Column("model", String(255), primary_key=True, comment="'' for a budget over every model"),
    Column("max_budget_micros", BigInteger, nullable=True),
    Column("soft_budget_micros", BigInteger, nullable=True),
    Column("budget_duration", String(16), nullable=True),
    Column("temp_increase_micros", BigInteger, nullable=True),
    Column("temp_increase_expires_at", DateTime(timezone=True), nullable=True),
    Column("rpm_limit", Integer, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("max_parallel_requests", Integer, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
