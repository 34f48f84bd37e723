"""The database tables: keys, teams and users (SQLAlchemy Core).

Created with `metadata.create_all` when `create_schema` is set; migrations
(Alembic) are not written yet.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, Integer, MetaData, String, Table

metadata = MetaData()

keys = Table(
    "vk_keys",
    metadata,
    Column("token_hash", String(64), primary_key=True, comment="HMAC-SHA-256 hex of the key, never the key"),
    Column("key_prefix", String(16), nullable=True, comment="Display only, e.g. 'sk-'"),
    Column("last4", String(4), nullable=True, comment="Display only: last four characters"),
    Column("key_alias", String(255), nullable=True, unique=True),
    Column("models", JSON, nullable=False, default=list),
    Column("allowed_routes", JSON, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("blocked", Boolean, nullable=False, default=False),
    Column("team_id", String(255), nullable=True, index=True),
    Column("user_id", String(255), nullable=True, index=True),
    Column("org_id", String(255), nullable=True),
    Column("project_id", String(255), nullable=True),
    Column("metadata", JSON, nullable=False, default=dict),
    # Budget and limit fields are stored for the budgets plugin; this plugin does not enforce them.
    Column("spend", Float, nullable=False, default=0.0),
    Column("max_budget", Float, nullable=True),
    Column("soft_budget", Float, nullable=True),
    Column("budget_duration", String(32), nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("rpm_limit", Integer, nullable=True),
    Column("max_parallel_requests", Integer, nullable=True),
    Column("model_max_budget", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

teams = Table(
    "vk_teams",
    metadata,
    Column("team_id", String(255), primary_key=True),
    Column("team_alias", String(255), nullable=True),
    Column("models", JSON, nullable=False, default=list),
    Column("blocked", Boolean, nullable=False, default=False),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("max_budget", Float, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("rpm_limit", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "vk_users",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("user_role", String(64), nullable=True),
    Column("user_email", String(320), nullable=True),
    Column("deactivated", Boolean, nullable=False, default=False),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
