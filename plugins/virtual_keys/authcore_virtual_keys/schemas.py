"""Admin API request bodies (LiteLLM-compatible field names) and duration parsing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator, model_validator

from authcore.durations import parse_duration as parse_core_duration

Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
UserRole = Literal["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer", "team", "customer"]

NO_EXPIRY = "-1"
MAX_DURATION_DAYS = 3650
"""Longest key lifetime or grace period: ten years."""


def parse_duration(text: str) -> timedelta:
    """`"30s"`, `"30m"`, `"30h"`, `"30d"`, `"2w"`, `"1mo"` (`authcore.durations`) as its length from now."""
    return parse_core_duration(text, max_days=MAX_DURATION_DAYS).from_now()


def _chosen_key(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    raw = value.get_secret_value()
    if not raw.startswith("sk-") or not 24 <= len(raw) <= 255 or not re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", raw):
        raise ValueError("key must start with 'sk-', be 24 to 255 token characters long")
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _route_patterns(routes: list[str] | None) -> list[str] | None:
    for route in routes or ():
        if not route.startswith("/") or "*" in route[:-1] or (route.endswith("*") and not route.endswith("/*")):
            raise ValueError("allowed_routes entries must be paths starting with '/', optionally ending in '/*'")
    return routes


class KeyFields(_Request):
    """Settings shared by /key/generate and /key/update."""

    key_alias: Name | None = None
    duration: str | None = Field(None, description="Lifetime from now, e.g. '30d'; '-1' for no expiry.")
    models: list[ModelName] | None = None
    allowed_routes: list[Name] | None = None
    team_id: Name | None = None
    user_id: Name | None = None
    organization_id: Name | None = None
    project_id: Name | None = None
    metadata: dict[str, Any] | None = None
    max_budget: float | None = Field(None, ge=0)
    soft_budget: float | None = Field(None, ge=0)
    budget_duration: str | None = None
    tpm_limit: int | None = Field(None, ge=0)
    rpm_limit: int | None = Field(None, ge=0)
    max_parallel_requests: int | None = Field(None, ge=0)
    model_max_budget: dict[str, Any] | None = None
    budget_id: Name | None = Field(None, description="A named budget (budgets' /budget/new) the key is held to.")
    blocked: bool | None = None
    temp_budget_increase: float | None = Field(
        None, ge=0, description="Added to max_budget until temp_budget_expiry (read by the budgets plugin)."
    )
    temp_budget_expiry: datetime | None = Field(
        None, description="ISO-8601 end of temp_budget_increase, in the future; UTC when no offset is given."
    )

    @field_validator("temp_budget_expiry")
    @classmethod
    def _temp_expiry(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if value <= datetime.now(UTC):
            raise ValueError("temp_budget_expiry must be in the future")
        return value

    @model_validator(mode="after")
    def _temp_budget_pair(self) -> KeyFields:
        # One without the other would leave an increase that never ends, or an end with nothing to end.
        given = {"temp_budget_increase", "temp_budget_expiry"} & self.model_fields_set
        if given and (len(given) == 1 or (self.temp_budget_increase is None) != (self.temp_budget_expiry is None)):
            raise ValueError(
                "temp_budget_increase and temp_budget_expiry are set together (both values, or both null to clear)"
            )
        return self

    @field_validator("duration", "budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and value != NO_EXPIRY:
            parse_duration(value)
        return value

    @field_validator("allowed_routes")
    @classmethod
    def _routes(cls, value: list[str] | None) -> list[str] | None:
        return _route_patterns(value)


class GenerateKey(KeyFields):
    key: SecretStr | None = Field(None, description="A caller-chosen key (imports); generated when left out.")

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        return _chosen_key(value)


class UpdateKey(KeyFields):
    key: SecretStr = Field(description="The key or its token (hash).")


class KeyRef(_Request):
    key: SecretStr = Field(description="The key or its token (hash).")


class DeleteKeys(_Request):
    keys: list[SecretStr] | None = Field(None, max_length=1000)
    key_aliases: list[Name] | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _one_selector(self) -> DeleteKeys:
        if bool(self.keys) == bool(self.key_aliases):
            raise ValueError("give a non-empty 'keys' or 'key_aliases' list (not both)")
        return self


class _GroupFields(_Request):
    """Settings teams, organizations and projects share: a model list, a block flag and limits."""

    models: list[ModelName] | None = None
    blocked: bool | None = None
    metadata: dict[str, Any] | None = None
    max_budget: float | None = Field(None, ge=0)
    tpm_limit: int | None = Field(None, ge=0)
    rpm_limit: int | None = Field(None, ge=0)


class TeamFields(_GroupFields):
    team_alias: Name | None = None
    organization_id: Name | None = Field(
        None, description="The organization the team belongs to; its keys without one of their own follow it."
    )


class NewTeam(TeamFields):
    team_id: Name | None = None


class UpdateTeam(TeamFields):
    team_id: Name


class DeleteTeams(_Request):
    team_ids: list[Name] = Field(min_length=1, max_length=1000)


class TeamMember(_Request):
    """A user in a team, named by id or by e-mail (LiteLLM's `Member`)."""

    user_id: Name | None = None
    user_email: Annotated[str, StringConstraints(min_length=3, max_length=320)] | None = None
    role: Literal["admin", "user"] = "user"

    @model_validator(mode="after")
    def _named(self) -> TeamMember:
        if self.user_id is None and self.user_email is None:
            raise ValueError("a member needs a user_id or a user_email")
        return self


class AddTeamMembers(_Request):
    team_id: Name
    member: list[TeamMember] = Field(min_length=1, max_length=100, description="One member, or a list of 1 to 100.")
    max_budget_in_team: float | None = Field(None, ge=0, description="Each added member's budget in this team (USD).")

    @field_validator("member", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # LiteLLM takes one member object or a list of them.
        return [value] if isinstance(value, dict) else value


class TeamMemberReference(_Request):
    team_id: Name
    user_id: Name | None = None
    user_email: Annotated[str, StringConstraints(min_length=3, max_length=320)] | None = None

    @model_validator(mode="after")
    def _named(self) -> TeamMemberReference:
        if (self.user_id is None) == (self.user_email is None):
            raise ValueError("give exactly one of user_id and user_email")
        return self


class UpdateTeamMember(TeamMemberReference):
    role: Literal["admin", "user"] | None = None
    max_budget_in_team: float | None = Field(None, ge=0)


class TeamId(_Request):
    """/team/block and /team/unblock."""

    team_id: Name


class DeleteUsers(_Request):
    user_ids: list[Name] = Field(min_length=1, max_length=1000)


class UserFields(_Request):
    user_role: UserRole | None = None
    user_email: Annotated[str, StringConstraints(max_length=320)] | None = None
    metadata: dict[str, Any] | None = None


class NewUser(UserFields):
    user_id: Name | None = None


class UpdateUser(UserFields):
    user_id: Name
    deactivated: bool | None = None


class RegenerateKey(_Request):
    """POST /key/regenerate: a new key with the same settings; the old one ends now or after `grace_period`."""

    key: SecretStr = Field(description="The key or its token (hash).")
    new_key: SecretStr | None = Field(None, description="A caller-chosen new key; generated when left out.")
    grace_period: str | None = Field(None, description="How long the old key keeps working, e.g. '24h'.")

    @field_validator("grace_period")
    @classmethod
    def _grace(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("new_key")
    @classmethod
    def _new_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        return _chosen_key(value)


class PageQuery(_Request):
    """Query parameters of the entity list endpoints."""

    page: int = Field(1, ge=1, le=100_000)
    size: int = Field(50, ge=1, le=100)


class OrganizationFields(_GroupFields):
    organization_alias: Name | None = None


class NewOrganization(OrganizationFields):
    organization_id: Name | None = None


class UpdateOrganization(OrganizationFields):
    organization_id: Name


class DeleteOrganizations(_Request):
    organization_ids: list[Name] = Field(min_length=1, max_length=1000)


class ProjectFields(_GroupFields):
    project_alias: Name | None = None


class NewProject(ProjectFields):
    project_id: Name | None = None
    organization_id: Name | None = Field(None, description="Fixed at creation: keys rely on it.")


class UpdateProject(ProjectFields):
    project_id: Name


class DeleteProjects(_Request):
    project_ids: list[Name] = Field(min_length=1, max_length=1000)


Region = Literal["eu", "us"]


class CustomerFields(_Request):
    alias: Name | None = None
    blocked: bool | None = None
    max_budget: float | None = Field(None, ge=0)
    budget_id: Name | None = None
    allowed_model_region: Region | None = None
    default_model: ModelName | None = None
    metadata: dict[str, Any] | None = None


class NewCustomer(CustomerFields):
    user_id: Name


class UpdateCustomer(CustomerFields):
    user_id: Name


class CustomerIds(_Request):
    """/customer/delete, /customer/block and /customer/unblock."""

    user_ids: list[Name] = Field(min_length=1, max_length=1000)
