"""Immutable snapshots of a key and its team, user, organization and project, as the auth path sees them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar

from authcore import Identity
from authcore_virtual_keys.access import ALL_TEAM_MODELS, NO_GROUPS, AccessGroups, expand, unrestricted
from authcore_virtual_keys.hashing import key_id

LIMIT_FIELDS = (
    "max_budget",
    "soft_budget",
    "budget_duration",
    "model_max_budget",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "temp_budget_increase",
    "temp_budget_expiry",
    "budget_id",
)
"""Key columns handed to other plugins (budgets) through `Identity.limits`; not enforced here.

The team's, organization's and project's `ENTITY_LIMIT_FIELDS` go in `limits["team"]`, `limits["org"]` and
`limits["project"]`, the key's user's budget in the key's team in `limits["team_member"]`.

Datetimes (`temp_budget_expiry`) are passed as ISO-8601 strings in UTC.
"""


T = TypeVar("T")


def freeze(value: Any) -> Any:
    """A deep read-only copy of JSON data: dicts become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(key): freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


def as_utc(value: datetime | None) -> datetime | None:
    """Datetimes from SQLite come back naive; they were written as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(item for item in value if isinstance(item, str))


@dataclass(frozen=True, slots=True)
class TeamRecord:
    team_id: str
    team_alias: str | None
    models: tuple[str, ...]
    blocked: bool
    organization_id: str | None = None


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    role: str | None
    deactivated: bool


@dataclass(frozen=True, slots=True)
class ScopeRecord:
    """An organization or project a key belongs to: its model list bounds the key's."""

    scope_id: str
    models: tuple[str, ...]
    blocked: bool


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """One key as read from the database, with what the checks need. Never holds the raw key."""

    token: str
    key_alias: str | None
    models: tuple[str, ...]
    allowed_routes: tuple[str, ...] | None
    expires_at: datetime | None
    blocked: bool
    team_id: str | None
    user_id: str | None
    org_id: str | None
    project_id: str | None
    metadata: Mapping[str, Any]
    limits: Mapping[str, Any]
    team: TeamRecord | None
    user: UserRecord | None
    org: ScopeRecord | None = None
    project: ScopeRecord | None = None
    key_id: str = ""
    """The key's public id, fixed at creation (`Identity.key_id`); empty: derived from `token` as before."""
    age_s: float = field(default=0.0, compare=False, repr=False)
    """How old the database read behind it already was when this process got it (from the shared cache)."""
    _identities: dict[str, Identity] = field(default_factory=dict, init=False, compare=False, repr=False)
    """Identity per plugin instance, built once: the snapshot is immutable, so is its principal."""
    _derived: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)
    """What each plugin instance works out from the snapshot (see `derived`)."""

    def derived(self, owner: str, build: Callable[[KeySnapshot], T]) -> T:
        """`build(self)`, computed on first use per `owner` and kept.

        For values fixed per plugin instance (its name, its access groups) that
        the request path would otherwise recompute on every request.
        """
        found: T | None = self._derived.get(owner)
        if found is None:
            found = self._derived[owner] = build(self)
        # No `cast()`: a function call on every request, for the type checker only.
        return found

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def identity(self, plugin: str, groups: AccessGroups = NO_GROUPS) -> Identity:
        """The principal this key stands for; access group names in its model list are expanded.

        Built on first use and kept: `groups` is fixed per plugin instance.
        """
        found = self._identities.get(plugin)
        if found is None:
            found = self._identities[plugin] = self._build_identity(plugin, groups)
        return found

    def _build_identity(self, plugin: str, groups: AccessGroups) -> Identity:
        return Identity(
            auth_method="api_key",
            plugin=plugin,
            user_id=self.user_id,
            team_id=self.team_id,
            org_id=self.org_id,
            project_id=self.project_id,
            role=self.user.role if self.user is not None else None,
            key_id=self.key_id or key_id(self.token),
            key_alias=self.key_alias,
            models=self.identity_models(groups),
            allowed_routes=self.allowed_routes,
            limits=self.limits,
            metadata=self.metadata,
        )

    def scope_models(self) -> tuple[tuple[str, ...], ...]:
        """The model lists of the key's organization and project, each of which must allow a model."""
        return tuple(scope.models for scope in (self.org, self.project) if scope is not None)

    def restricts_models(self) -> bool:
        """Whether the key, its team, organization or project limits models (else no body needs reading)."""
        if ALL_TEAM_MODELS in self.models or not unrestricted(self.models):
            return True
        if any(not unrestricted(models) for models in self.scope_models()):
            return True
        return self.team is not None and not unrestricted(self.team.models)

    def identity_models(self, groups: AccessGroups = NO_GROUPS) -> tuple[str, ...] | None:
        """The narrower declared list: the key's, else the team's; `None` when neither restricts.

        Informative for other plugins (the gateway filters `/v1/models` by it):
        this plugin's checks apply every list (key, team, organization, project).
        Access group names stand for their members here too.
        """
        key_models = expand(self.models, groups)
        if key_models and ALL_TEAM_MODELS not in key_models and not unrestricted(key_models):
            return key_models
        if self.team is not None:
            team_models = expand(self.team.models, groups)
            if team_models and not unrestricted(team_models):
                return team_models
        if ALL_TEAM_MODELS in key_models and self.team is None:
            return ()
        for models in self.scope_models():
            if models and not unrestricted(models):
                return expand(models, groups)
        return None


def snapshot_from_row(row: Mapping[str, Any]) -> KeySnapshot:
    """Build a snapshot from one joined row (key columns, `team_*` and `user_*` columns).

    A key without an organization of its own belongs to its team's (`org_id`),
    so that organization's model list and blocked flag apply to it too.
    """
    team = None
    if row.get("team_team_id") is not None:
        team = TeamRecord(
            team_id=row["team_team_id"],
            team_alias=row.get("team_team_alias"),
            models=_names(row.get("team_models")),
            blocked=bool(row.get("team_blocked")),
            organization_id=row.get("team_organization_id"),
        )
    user = None
    if row.get("user_user_id") is not None:
        user = UserRecord(
            user_id=row["user_user_id"],
            role=row.get("user_user_role"),
            deactivated=bool(row.get("user_deactivated")),
        )
    routes = row.get("allowed_routes")
    org = _scope(row, "org_organization_id", "org_models", "org_blocked")
    project = _scope(row, "project_project_id", "project_models", "project_blocked")
    return KeySnapshot(
        token=row["token_hash"],
        key_alias=row.get("key_alias"),
        models=_names(row.get("models")),
        allowed_routes=_names(routes) if isinstance(routes, list) else None,
        expires_at=as_utc(row.get("expires_at")),
        blocked=bool(row.get("blocked")),
        team_id=row.get("team_id"),
        user_id=row.get("user_id"),
        org_id=row.get("org_id") or (team.organization_id if team is not None else None),
        project_id=row.get("project_id"),
        metadata=freeze(row.get("metadata") or {}),
        limits=_limits(row),
        team=team,
        user=user,
        org=org,
        project=project,
        key_id=row.get("key_id") or "",
    )


ENTITY_LIMIT_FIELDS = ("max_budget", "tpm_limit", "rpm_limit")
"""Team, organization and project columns handed over in `Identity.limits["team"]` / `["org"]` / `["project"]`."""


def handed_over(row: Mapping[str, Any], prefix: str = "") -> Mapping[str, Any]:
    """A team or organization row's `ENTITY_LIMIT_FIELDS` that are set (column names after `prefix`)."""
    return {name: row[prefix + name] for name in ENTITY_LIMIT_FIELDS if row.get(prefix + name) is not None}


def _limits(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The key's own limit fields, plus its team's and organization's under `team` and `org` when set."""
    limits: dict[str, Any] = {name: _limit(row[name]) for name in LIMIT_FIELDS if row.get(name) is not None}
    for entity, prefix in (("team", "team_"), ("org", "org_"), ("project", "project_")):
        handed = handed_over(row, prefix)
        if handed:
            limits[entity] = MappingProxyType(handed)
    member_budget = row.get("member_max_budget_in_team")
    if member_budget is not None:
        # The key's user's budget in the key's team (`/team/member_add`), LiteLLM's team member budget.
        limits["team_member"] = MappingProxyType({"max_budget": member_budget})
    return MappingProxyType(limits)


def _limit(value: Any) -> Any:
    if isinstance(value, datetime):
        utc = as_utc(value)
        assert utc is not None
        return utc.isoformat()
    return value


def _scope(row: Mapping[str, Any], id_column: str, models_column: str, blocked_column: str) -> ScopeRecord | None:
    if row.get(id_column) is None:
        return None
    return ScopeRecord(
        scope_id=row[id_column], models=_names(row.get(models_column)), blocked=bool(row.get(blocked_column))
    )
