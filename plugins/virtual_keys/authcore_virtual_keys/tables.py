"""The database tables: keys, teams, team members, users, organizations, projects, end users (SQLAlchemy Core).

This is the current shape the queries use. The schema itself is created and
changed only by the migrations in `authcore_virtual_keys.migrations`; a test
checks that the migrated database matches these definitions.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, Integer, MetaData, String, Table

metadata = MetaData()

keys = Table(
    "vk_keys",
    metadata,
    Column("token_hash", String(64), primary_key=True, comment="HMAC-SHA-256 hex of the key, never the key"),
    Column(
        "key_id",
        String(64),
        nullable=False,
        unique=True,
        index=True,
        comment="Public id, fixed at creation; kept by regenerate",
    ),
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
    Column("temp_budget_increase", Float, nullable=True, comment="Added to max_budget until temp_budget_expiry"),
    Column("temp_budget_expiry", DateTime(timezone=True), nullable=True),
    Column("budget_id", String(255), nullable=True, comment="A named budget of the budgets plugin"),
)

teams = Table(
    "vk_teams",
    metadata,
    Column("team_id", String(255), primary_key=True),
    Column("team_alias", String(255), nullable=True),
    Column("organization_id", String(255), nullable=True, index=True),
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

team_members = Table(
    "vk_team_members",
    metadata,
    Column("team_id", String(255), primary_key=True),
    Column("user_id", String(255), primary_key=True, index=True),
    Column("role", String(16), nullable=False, comment="LiteLLM's team member roles: admin or user"),
    Column("max_budget_in_team", Float, nullable=True, comment="The member's budget in this team (budgets enforces)"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

organizations = Table(
    "vk_organizations",
    metadata,
    Column("organization_id", String(255), primary_key=True),
    Column("organization_alias", String(255), nullable=True),
    Column("models", JSON, nullable=False, default=list),
    Column("blocked", Boolean, nullable=False, default=False),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("max_budget", Float, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("rpm_limit", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

projects = Table(
    "vk_projects",
    metadata,
    Column("project_id", String(255), primary_key=True),
    Column("project_alias", String(255), nullable=True),
    Column("organization_id", String(255), nullable=True, index=True),
    Column("models", JSON, nullable=False, default=list),
    Column("blocked", Boolean, nullable=False, default=False),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("max_budget", Float, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("rpm_limit", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

end_users = Table(
    "vk_end_users",
    metadata,
    Column("user_id", String(255), primary_key=True, comment="Sent as `user` or x-litellm-end-user-id"),
    Column("alias", String(255), nullable=True),
    Column("allowed_model_region", String(16), nullable=True),
    Column("default_model", String(255), nullable=True),
    Column("blocked", Boolean, nullable=False, default=False),
    Column("budget_id", String(255), nullable=True),
    Column("max_budget", Float, nullable=True),
    Column("spend", Float, nullable=False, default=0.0),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

grace_keys = Table(
    "vk_grace_keys",
    metadata,
    Column("token_hash", String(64), primary_key=True, comment="Old hash of a regenerated key, valid until expires_at"),
    Column("active_token_hash", String(64), nullable=False, index=True, comment="Hash of its successor"),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
