"""Admin routes: set, delete and read entity budgets and their spend.

The middleware already requires `proxy_admin` on these routes (viewers may
GET); each endpoint checks the role again, so mounting them elsewhere opens nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authcore import AuthcoreError, DependencyFailure, Forbidden, MalformedCredentials, PluginRoute
from authcore.responses import error_response
from authcore_budgets.accounting import CountersNotLoaded
from authcore_budgets.config import DurationText
from authcore_budgets.entities import (
    ENTITIES,
    NO_LIMIT,
    TIER,
    BudgetRule,
    LedgerFilter,
    entity_columns,
    limit_micros,
    limit_rules,
    tier_of,
)
from authcore_budgets.limits_store import STORED_ENTITIES, StoredBudget
from authcore_budgets.pricing import to_usd
from authcore_budgets.ratelimits import RATE_ENTITIES

if TYPE_CHECKING:
    from authcore_budgets.plugin import BudgetsPlugin

READ_ROLES = frozenset({"proxy_admin", "proxy_admin_viewer"})
NO_STORE = {"cache-control": "no-store"}
_FAILURES = (RedisError, OSError, TimeoutError, SQLAlchemyError, CountersNotLoaded)


class SetBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: str
    id: str = Field(min_length=1, max_length=255)
    model: str | None = Field(None, min_length=1, max_length=255)
    max_budget: Decimal | None = Field(None, ge=0)
    soft_budget: Decimal | None = Field(None, ge=0)
    budget_duration: DurationText | None = None
    temp_budget_increase: Decimal | None = Field(None, gt=0)
    temp_budget_expiry: datetime | None = None
    rpm_limit: int | None = Field(None, ge=0)
    tpm_limit: int | None = Field(None, ge=0)
    max_parallel_requests: int | None = Field(None, ge=0)

    @field_validator("entity")
    @classmethod
    def _entity(cls, value: str) -> str:
        if value not in STORED_ENTITIES:
            raise ValueError(f"entity must be one of {', '.join(STORED_ENTITIES)} (the global budget is configured)")
        return value

    @field_validator("temp_budget_expiry")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class DeleteBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: str = TIER
    """LiteLLM's `/budget/delete {"id": ...}` names a named budget."""
    id: str = Field(min_length=1, max_length=255)
    model: str | None = None


class ModelBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget_limit: Decimal = Field(ge=0)
    time_period: DurationText | None = None


class NamedBudget(BaseModel):
    """The body of `/budget/new` and `/budget/update`, as LiteLLM's budget table has it."""

    model_config = ConfigDict(extra="forbid")

    budget_id: str | None = Field(None, min_length=1, max_length=255)
    max_budget: Decimal | None = Field(None, ge=0)
    soft_budget: Decimal | None = Field(None, ge=0)
    budget_duration: DurationText | None = None
    rpm_limit: int | None = Field(None, ge=0)
    tpm_limit: int | None = Field(None, ge=0)
    max_parallel_requests: int | None = Field(None, ge=0)
    model_max_budget: dict[str, ModelBudget] | None = None

    @field_validator("model_max_budget")
    @classmethod
    def _models(cls, value: dict[str, ModelBudget] | None) -> dict[str, ModelBudget] | None:
        if value is not None and any(not model or len(model) > 255 for model in value):
            raise ValueError("model names must be 1 to 255 characters")
        return value


def _role(request: Request) -> str | None:
    result = request.scope.get("authcore")
    identity = getattr(result, "identity", None)
    return getattr(identity, "role", None)


class AdminApi:
    """`/budget/set`, `/budget/delete`, `/budget/info`, and named budgets: `/budget/new`, `/budget/update`,
    `/budget/list` (LiteLLM's budget table, linked to by `budget_id`)."""

    def __init__(self, plugin: BudgetsPlugin) -> None:
        self._plugin = plugin

    def routes(self) -> list[PluginRoute]:
        return [
            PluginRoute("/budget/set", self.set_budget, methods=("POST",), access="admin"),
            PluginRoute("/budget/delete", self.delete_budget, methods=("POST",), access="admin"),
            PluginRoute("/budget/info", self.info, methods=("GET",), access="admin"),
            PluginRoute("/budget/new", self.new_budget, methods=("POST",), access="admin"),
            PluginRoute("/budget/update", self.update_budget, methods=("POST",), access="admin"),
            PluginRoute("/budget/list", self.list_budgets, methods=("GET",), access="admin"),
        ]

    async def _guard(self, request: Request, *, write: bool) -> None:
        role = _role(request)
        if role != "proxy_admin" and (write or role not in READ_ROLES):
            raise Forbidden(reason_id="budget_admin_only")

    async def _body(self, request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise MalformedCredentials("The body must be JSON.", reason_id="invalid_json") from None

    async def _answer(self, request: Request, work: Callable[[], Awaitable[Response]], *, write: bool) -> Response:
        """`work()`'s response once the caller's role allows it; bad input is 400, a store failure 503."""
        try:
            await self._guard(request, write=write)
            return await work()
        except ValidationError as error:
            return _invalid(_problems(error))
        except AuthcoreError as error:
            return error_response(error)
        except _FAILURES:
            return error_response(DependencyFailure(reason_id="budget_store_unavailable"))

    async def set_budget(self, request: Request) -> Response:
        async def work() -> Response:
            body = SetBudget.model_validate(await self._body(request))
            if body.temp_budget_increase is not None and body.temp_budget_expiry is None:
                return _invalid("temp_budget_increase needs temp_budget_expiry")
            rates = (body.rpm_limit, body.tpm_limit, body.max_parallel_requests)
            if any(value is not None for value in rates) and (
                body.model is not None or body.entity not in (*RATE_ENTITIES, TIER)
            ):
                return _invalid(f"rate limits apply to {', '.join(RATE_ENTITIES)} over every model (no `model`)")
            stored = StoredBudget(
                body.entity,
                body.id,
                body.model,
                None if body.max_budget is None else limit_micros(body.max_budget),
                None if body.soft_budget is None else limit_micros(body.soft_budget),
                body.budget_duration,
                None if body.temp_budget_increase is None else limit_micros(body.temp_budget_increase),
                body.temp_budget_expiry,
                *rates,
            )
            await self._plugin.limits.put(stored)
            return JSONResponse({"entity": body.entity, "id": body.id, **stored.view()}, headers=NO_STORE)

        return await self._answer(request, work, write=True)

    async def delete_budget(self, request: Request) -> Response:
        async def work() -> Response:
            body = DeleteBudget.model_validate(await self._body(request))
            # A named budget goes as a whole (LiteLLM's delete), its per-model budgets too.
            every_model = body.entity == TIER and body.model is None
            deleted = await self._plugin.limits.remove(body.entity, body.id, body.model, every_model=every_model)
            return JSONResponse({"deleted": deleted}, headers=NO_STORE)

        return await self._answer(request, work, write=True)

    async def info(self, request: Request) -> Response:
        """Each budget of one entity with its current-period spend, reserved amount and remainder."""
        entity = request.query_params.get("entity", "")
        entity_id = request.query_params.get("id", "global" if entity == "global" else "")

        async def work() -> Response:
            if entity == TIER and entity_id:
                found = (await self._plugin.limits.snapshot()).get((TIER, entity_id))
                if found is None:
                    return _no_named_budget()
                return JSONResponse(_tier_view(entity_id, found), headers=NO_STORE)
            if entity not in ENTITIES or not entity_id:
                return _invalid(f"entity (one of {', '.join(ENTITIES)}) and id are required")
            # Without the entity's own settings, only the configured default for end users is known here.
            tier = tier_of(entity, None, self._plugin.config.end_user_budget_id)
            extra = await self._tier_rules(tier, entity, entity_id) if tier is not None else []
            budgets = await self._budgets(entity, entity_id, extra)
            total = to_usd(await self._total(entity, entity_id))
            body = {"entity": entity, "id": entity_id, "total_spend": total, "budgets": budgets}
            return JSONResponse(body, headers=NO_STORE)

        return await self._answer(request, work, write=False)

    async def new_budget(self, request: Request) -> Response:
        """Create a named budget (`budget_id` generated when not given); 409 when the id is taken."""

        async def work() -> Response:
            body = NamedBudget.model_validate(await self._body(request))
            budget_id = body.budget_id or uuid.uuid4().hex
            rows = _tier_rows(budget_id, body)
            if not await self._plugin.limits.put_all(TIER, budget_id, rows, exists=False):
                return _error(409, "A budget with this budget_id exists; change it with /budget/update.", "conflict")
            return JSONResponse(_tier_view(budget_id, rows), headers=NO_STORE)

        return await self._answer(request, work, write=True)

    async def update_budget(self, request: Request) -> Response:
        """Change the fields given of a named budget (`model_max_budget`, when given, replaces the per-model ones)."""

        async def work() -> Response:
            body = NamedBudget.model_validate(await self._body(request))
            if body.budget_id is None:
                return _invalid("budget_id is required")
            current = (await self._plugin.limits.snapshot()).get((TIER, body.budget_id))
            if current is None:
                return _no_named_budget()
            merged = {**_tier_fields(current), **body.model_dump(exclude_unset=True, mode="json")}
            rows = _tier_rows(body.budget_id, NamedBudget.model_validate(merged))
            if not await self._plugin.limits.put_all(TIER, body.budget_id, rows, exists=True):
                return _no_named_budget()  # deleted meanwhile
            return JSONResponse(_tier_view(body.budget_id, rows), headers=NO_STORE)

        return await self._answer(request, work, write=True)

    async def list_budgets(self, request: Request) -> Response:
        async def work() -> Response:
            snapshot = await self._plugin.limits.snapshot()
            tiers = sorted((where[1], rows) for where, rows in snapshot.items() if where[0] == TIER)
            return JSONResponse([_tier_view(budget_id, rows) for budget_id, rows in tiers], headers=NO_STORE)

        return await self._answer(request, work, write=False)

    async def describe(self, entity: str, entity_id: str, settings: Mapping[str, Any]) -> dict[str, Any] | None:
        """Spend and budget of one entity for another plugin's admin view (`describe_entity`); `None` if not ours.

        The numbers are `/budget/info`'s. `settings` are the key budgets the caller hands
        out in `Identity.limits`, so a key's own budget is shown as it is enforced.
        Failures propagate: the caller then shows the spend as unavailable.
        """
        if entity not in ENTITIES or not entity_id:
            return None
        tier = tier_of(entity, settings, self._plugin.config.end_user_budget_id)
        if tier is None:
            extra = _handed_over_rules(entity, entity_id, settings, self._plugin.now_ms())
        else:
            extra = await self._tier_rules(tier, entity, entity_id)
        budgets = await self._budgets(entity, entity_id, extra)
        total = to_usd(await self._total(entity, entity_id))
        fields: dict[str, Any] = {"spend": total, "total_spend": total, "budgets": budgets}
        headline = _headline(budgets)
        if headline is not None:
            fields.update(
                spend=headline["spend"],
                max_budget=headline["max_budget"],
                soft_budget=headline["soft_budget"],
                remaining_budget=headline["remaining"],
                reserved_spend=headline["reserved"],
                budget_reset_at=headline["budget_reset_at"],
            )
        return fields

    async def _tier_rules(self, tier: str, entity: str, entity_id: str) -> list[BudgetRule]:
        """The named budget's rules as one entity's (as `applicable_rules` applies them); none if it is gone."""
        now = datetime.fromtimestamp(self._plugin.now_ms() / 1000, UTC)
        rows = (await self._plugin.limits.snapshot()).get((TIER, tier), [])
        return [
            replace(rule, entity=entity, entity_id=entity_id) for row in rows if (rule := row.rule(now)) is not None
        ]

    async def _total(self, entity: str, entity_id: str) -> int:
        """All-time ledger spend of the entity, in micro-USD."""
        everything = LedgerFilter(entity_columns(entity, entity_id), None, 0, None)
        return await self._plugin.accountant.ledger.total(everything)

    async def _budgets(self, entity: str, entity_id: str, extra: Sequence[BudgetRule] = ()) -> list[dict[str, Any]]:
        plugin = self._plugin
        now = datetime.fromtimestamp(plugin.now_ms() / 1000, UTC)
        stored = (await plugin.limits.snapshot()).get((entity, entity_id), [])
        # As on the request path: an entity's own stored budgets replace the handed-over ones (a key's add to them).
        rules: list[BudgetRule] = list(extra) if entity == "key" or not stored else []
        for row in stored:
            rule = row.rule(now)
            if rule is not None:
                rules.append(rule)
        if entity == "global" and plugin.global_rule is not None:
            rules.append(plugin.global_rule)
        columns = dict(entity_columns(entity, entity_id))
        views: list[dict[str, Any]] = []
        accountant = plugin.accountant
        for rule in rules:
            counter = plugin.counter(rule, columns)
            state = await accountant.store.read(counter)
            if state is None:
                await accountant.load(counter)
                state = await accountant.store.read(counter)
            spent, reserved = (state.spent, state.reserved) if state is not None else (0, 0)
            views.append(
                {
                    "model": rule.model,
                    "max_budget": None if rule.limit == NO_LIMIT else to_usd(rule.limit),
                    "soft_budget": None if rule.soft is None else to_usd(rule.soft),
                    "budget_duration_s": rule.duration_s,
                    "budget_duration": None if rule.duration is None else str(rule.duration),
                    "budget_reset_at": (
                        None
                        if counter.period_end_ms is None
                        else datetime.fromtimestamp(counter.period_end_ms / 1000, UTC).isoformat()
                    ),
                    "spend": to_usd(spent),
                    "reserved": to_usd(reserved),
                    "remaining": None if rule.limit == NO_LIMIT else to_usd(max(0, rule.limit - spent - reserved)),
                }
            )
        return views


def _handed_over_rules(entity: str, entity_id: str, settings: Mapping[str, Any], now_ms: int) -> list[BudgetRule]:
    """An entity's budgets over every model and per model, as `reserve_budget` reads them from `Identity.limits`."""
    rules = limit_rules(entity, entity_id, settings, "", now_ms)
    per_model = settings.get("model_max_budget")
    if isinstance(per_model, Mapping):
        for model in per_model:
            rules.extend(rule for rule in limit_rules(entity, entity_id, settings, str(model), now_ms) if rule.model)
    return [rule for rule in rules if rule.model != ""]


def _tier_rows(budget_id: str, body: NamedBudget) -> list[StoredBudget]:
    """The `budget_limits` rows of a named budget: one over every model, one per model of `model_max_budget`."""
    rows = [
        StoredBudget(
            TIER,
            budget_id,
            None,
            None if body.max_budget is None else limit_micros(body.max_budget),
            None if body.soft_budget is None else limit_micros(body.soft_budget),
            body.budget_duration,
            None,
            None,
            body.rpm_limit,
            body.tpm_limit,
            body.max_parallel_requests,
        )
    ]
    for model, spec in (body.model_max_budget or {}).items():
        rows.append(
            StoredBudget(TIER, budget_id, model, limit_micros(spec.budget_limit), None, spec.time_period, None, None)
        )
    return rows


def _tier_fields(rows: Sequence[StoredBudget]) -> dict[str, Any]:
    """A named budget's rows as `NamedBudget` fields (JSON values)."""
    fields: dict[str, Any] = {}
    per_model: dict[str, Any] = {}
    for row in rows:
        if row.model is None:
            fields.update(
                max_budget=None if row.max_budget_micros is None else to_usd(row.max_budget_micros),
                soft_budget=None if row.soft_budget_micros is None else to_usd(row.soft_budget_micros),
                budget_duration=row.budget_duration,
                rpm_limit=row.rpm_limit,
                tpm_limit=row.tpm_limit,
                max_parallel_requests=row.max_parallel_requests,
            )
        elif row.max_budget_micros is not None:
            per_model[row.model] = {"budget_limit": to_usd(row.max_budget_micros), "time_period": row.budget_duration}
    if per_model:
        fields["model_max_budget"] = per_model
    return fields


def _tier_view(budget_id: str, rows: Sequence[StoredBudget]) -> dict[str, Any]:
    """Every `NamedBudget` field, `None` where the named budget sets nothing."""
    return {**dict.fromkeys(NamedBudget.model_fields), **_tier_fields(rows), "budget_id": budget_id}


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())


def _headline(budgets: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The budget over every model that binds first (least remaining); a soft-only one when no hard one exists."""
    overall = [view for view in budgets if view["model"] is None]
    hard = [view for view in overall if view["remaining"] is not None]
    if hard:
        return min(hard, key=lambda view: view["remaining"])
    return overall[0] if overall else None


def _invalid(message: str) -> JSONResponse:
    return _error(400, message, "invalid_request")


def _no_named_budget() -> JSONResponse:
    return _error(404, "No budget with this budget_id.", "budget_not_found")


def _error(status: int, message: str, code: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=NO_STORE)
