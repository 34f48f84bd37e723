"""JSON shapes of keys, teams and users in admin responses. Never includes a raw key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from authcore.describe import EntityDescription


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def key_name(row: Mapping[str, Any]) -> str | None:
    """The display form `sk-...wxyz`, from the stored prefix and last four characters."""
    if not row.get("last4"):
        return None
    return f"{row.get('key_prefix') or ''}...{row['last4']}"


def key_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "token": row["token_hash"],
        "key_id": row.get("key_id"),
        "key_name": key_name(row),
        "key_alias": row.get("key_alias"),
        "models": list(row.get("models") or []),
        "allowed_routes": row.get("allowed_routes"),
        "expires": _iso(row.get("expires_at")),
        "blocked": bool(row.get("blocked")),
        "team_id": row.get("team_id"),
        "user_id": row.get("user_id"),
        "organization_id": row.get("org_id"),
        "project_id": row.get("project_id"),
        "metadata": row.get("metadata") or {},
        "spend": row.get("spend") or 0.0,
        "max_budget": row.get("max_budget"),
        "soft_budget": row.get("soft_budget"),
        "budget_duration": row.get("budget_duration"),
        "tpm_limit": row.get("tpm_limit"),
        "rpm_limit": row.get("rpm_limit"),
        "max_parallel_requests": row.get("max_parallel_requests"),
        "model_max_budget": row.get("model_max_budget"),
        "temp_budget_increase": row.get("temp_budget_increase"),
        "temp_budget_expiry": _iso(row.get("temp_budget_expiry")),
        "budget_id": row.get("budget_id"),
        "created_at": _iso(row.get("created_at")),
        "updated_at": _iso(row.get("updated_at")),
    }


def _group_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """What teams, organizations and projects show alike (see `schemas._GroupFields`)."""
    return {
        "models": list(row.get("models") or []),
        "blocked": bool(row.get("blocked")),
        "metadata": row.get("metadata") or {},
        "max_budget": row.get("max_budget"),
        "tpm_limit": row.get("tpm_limit"),
        "rpm_limit": row.get("rpm_limit"),
        "created_at": _iso(row.get("created_at")),
    }


def team_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "team_id": row["team_id"],
        "team_alias": row.get("team_alias"),
        "organization_id": row.get("organization_id"),
        **_group_fields(row),
    }


def member_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of a team's `members_with_roles` (LiteLLM's shape, with the member's budget in the team)."""
    return {
        "user_id": row["user_id"],
        "user_email": row.get("user_email"),
        "role": row["role"],
        "max_budget_in_team": row.get("max_budget_in_team"),
    }


def user_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "user_role": row.get("user_role"),
        "user_email": row.get("user_email"),
        "deactivated": bool(row.get("deactivated")),
        "metadata": row.get("metadata") or {},
        "created_at": _iso(row.get("created_at")),
    }


def organization_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "organization_id": row["organization_id"],
        "organization_alias": row.get("organization_alias"),
        **_group_fields(row),
        "updated_at": _iso(row.get("updated_at")),
    }


def project_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "project_id": row["project_id"],
        "project_alias": row.get("project_alias"),
        "organization_id": row.get("organization_id"),
        **_group_fields(row),
        "updated_at": _iso(row.get("updated_at")),
    }


def customer_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """LiteLLM's end-user shape (`LiteLLM_EndUserTable`)."""
    return {
        "user_id": row["user_id"],
        "alias": row.get("alias"),
        "blocked": bool(row.get("blocked")),
        "spend": row.get("spend") or 0.0,
        "allowed_model_region": row.get("allowed_model_region"),
        "default_model": row.get("default_model"),
        "budget_id": row.get("budget_id"),
        "litellm_budget_table": {"max_budget": row["max_budget"]} if row.get("max_budget") is not None else None,
        "metadata": row.get("metadata") or {},
        "created_at": _iso(row.get("created_at")),
        "updated_at": _iso(row.get("updated_at")),
    }


def with_spend(view: Mapping[str, Any], described: EntityDescription) -> dict[str, Any]:
    """The view with what other plugins say about the entity (`describe_entity`: budgets' spend and remainder).

    This plugin tracks no spend. `spend` comes from a describing plugin; other
    described fields fill in what this view lacks or leaves null, and never
    replace a value stored here (a key's own `max_budget` stays as set). When no
    plugin describes spend (no budgets plugin), `spend` is 0.0, the value
    LiteLLM clients expect, though nothing counts it. When a describing plugin
    failed and none gave spend, `spend` is null and `spend_unavailable` says
    which instances failed: a made-up 0 could let someone overspend.
    """
    merged = dict(view)
    fields = described.fields
    for name, value in fields.items():
        if name == "spend" or merged.get(name) is None:
            merged[name] = value
    if "spend" not in fields:
        if described.unavailable:
            merged["spend"] = None
            merged["spend_unavailable"] = (
                f"spend could not be read: {', '.join(described.unavailable)} failed (see the gateway log)"
            )
        else:
            merged["spend"] = 0.0
    return merged
