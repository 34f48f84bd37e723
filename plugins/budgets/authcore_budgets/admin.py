"""Admin routes: set, delete and read entity budgets and their spend.

The middleware already requires `proxy_admin` on these routes (viewers may
GET); each endpoint checks the role again, so mounting them elsewhere opens nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from authcore_budgets.config import parse_duration
from authcore_budgets.entities import (
    ENTITIES,
    NO_LIMIT,
    BudgetRule,
    LedgerFilter,
    entity_columns,
    limit_micros,
    limit_rules,
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
    budget_duration: str | None = None
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

    @field_validator("budget_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("temp_budget_expiry")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class DeleteBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: str
    id: str = Field(min_length=1, max_length=255)
    model: str | None = None


def _role(request: Request) -> str | None:
    result = request.scope.get("authcore")
    identity = getattr(result, "identity", None)
    return getattr(identity, "role", None)


class AdminApi:
    """`/budget/set`, `/budget/delete`, `/budget/info`."""

    def __init__(self, plugin: BudgetsPlugin) -> None:
        self._plugin = plugin

    def routes(self) -> list[PluginRoute]:
        return [
            PluginRoute("/budget/set", self.set_budget, methods=("POST",), access="admin"),
            PluginRoute("/budget/delete", self.delete_budget, methods=("POST",), access="admin"),
            PluginRoute("/budget/info", self.info, methods=("GET",), access="admin"),
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

    async def set_budget(self, request: Request) -> Response:
        try:
            await self._guard(request, write=True)
            body = SetBudget.model_validate(await self._body(request))
            if body.temp_budget_increase is not None and body.temp_budget_expiry is None:
                return _invalid("temp_budget_increase needs temp_budget_expiry")
            rates = (body.rpm_limit, body.tpm_limit, body.max_parallel_requests)
            if any(value is not None for value in rates) and (
                body.model is not None or body.entity not in RATE_ENTITIES
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
        except ValidationError as error:
            return _invalid("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()))
        except AuthcoreError as error:
            return error_response(error)
        except SQLAlchemyError:
            return error_response(DependencyFailure(reason_id="budget_store_unavailable"))
        return JSONResponse({"entity": body.entity, "id": body.id, **stored.view()}, headers=NO_STORE)

    async def delete_budget(self, request: Request) -> Response:
        try:
            await self._guard(request, write=True)
            body = DeleteBudget.model_validate(await self._body(request))
            deleted = await self._plugin.limits.remove(body.entity, body.id, body.model)
        except ValidationError:
            return _invalid("entity and id are required")
        except AuthcoreError as error:
            return error_response(error)
        except SQLAlchemyError:
            return error_response(DependencyFailure(reason_id="budget_store_unavailable"))
        return JSONResponse({"deleted": deleted}, headers=NO_STORE)

    async def info(self, request: Request) -> Response:
        """Each budget of one entity with its current-period spend, reserved amount and remainder."""
        entity = request.query_params.get("entity", "")
        entity_id = request.query_params.get("id", "global" if entity == "global" else "")
        try:
            await self._guard(request, write=False)
            if entity not in ENTITIES or not entity_id:
                return _invalid(f"entity (one of {', '.join(ENTITIES)}) and id are required")
            budgets = await self._budgets(entity, entity_id)
            total = await self._total(entity, entity_id)
        except AuthcoreError as error:
            return error_response(error)
        except _FAILURES:
            return error_response(DependencyFailure(reason_id="budget_store_unavailable"))
        return JSONResponse(
            {"entity": entity, "id": entity_id, "total_spend": to_usd(total), "budgets": budgets}, headers=NO_STORE
        )

    async def describe(self, entity: str, entity_id: str, settings: Mapping[str, Any]) -> dict[str, Any] | None:
        """Spend and budget of one entity for another plugin's admin view (`describe_entity`); `None` if not ours.

        The numbers are `/budget/info`'s. `settings` are the key budgets the caller hands
        out in `Identity.limits`, so a key's own budget is shown as it is enforced.
        Failures propagate: the caller then shows the spend as unavailable.
        """
        if entity not in ENTITIES or not entity_id:
            return None
        extra = _handed_over_rules(entity, entity_id, settings, self._plugin.now_ms())
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


def _headline(budgets: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The budget over every model that binds first (least remaining); a soft-only one when no hard one exists."""
    overall = [view for view in budgets if view["model"] is None]
    hard = [view for view in overall if view["remaining"] is not None]
    if hard:
        return min(hard, key=lambda view: view["remaining"])
    return overall[0] if overall else None


def _invalid(message: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_request"}}
    return JSONResponse(body, status_code=400, headers=NO_STORE)
