"""`BudgetsPlugin`: reserves the most a request can cost against every budget that applies, then settles it."""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from authcore import (
    AuthEvent,
    BudgetExceeded,
    ConfigurationError,
    DependencyFailure,
    Identity,
    InvalidRequest,
    Plugin,
    PluginContext,
    PluginRoute,
    RateLimited,
    RequestContext,
    hookimpl,
)
from authcore.body_models import UnreadableModels, body_models
from authcore.request import BODY_METHODS
from authcore_budgets.accounting import Accountant, BudgetReservation, CountersNotLoaded
from authcore_budgets.admin import AdminApi
from authcore_budgets.clock import wall_ms
from authcore_budgets.config import BudgetsConfig, parse_duration
from authcore_budgets.entities import (
    NO_LIMIT,
    BudgetRule,
    Counter,
    applicable_rules,
    counter_for,
    identity_columns,
    limit_micros,
)
from authcore_budgets.ledger import Ledger, LedgerBacklog
from authcore_budgets.limits_store import LimitsStore, LimitsUnavailable, LimitsView
from authcore_budgets.memory_store import MemoryStore
from authcore_budgets.migrations import MIGRATIONS
from authcore_budgets.plans import Plan, PlanCache
from authcore_budgets.pricing import Pricer, UnpricedModel
from authcore_budgets.ratelimits import allowed_headers as rate_headers
from authcore_budgets.ratelimits import applicable_rate_limits, headers_for
from authcore_budgets.ratelimits import distinct as distinct_rates
from authcore_budgets.redis_store import RedisStore, dedicated_client
from authcore_budgets.store import ReserveOutcome
from authcore_budgets.webhook import AlertWebhook
from authcore_budgets.worker_lock import WorkerLock, default_lock_path

logger = logging.getLogger("authcore.budgets")

STORE_FAILURES = (
    RedisError,
    OSError,
    TimeoutError,
    SQLAlchemyError,
    CountersNotLoaded,
    ConfigurationError,
    LimitsUnavailable,
    LedgerBacklog,
)
"""What makes the counters unknowable for a request: it is then refused (503), or admitted with `fail_open`."""
DONE_MARKER_HOLDS = 2
"""A settled request id is remembered for this many hold TTLs, so a repeated settlement changes nothing.

Request ids are unique per process run, so a repeat can only be a retry of a settlement in flight: a
longer memory would only cost space (a day of markers was gigabytes of Redis at a few thousand
requests per second)."""
STARTUP_TIMEOUT_S = 5.0
"""Longest wait for Redis at start-up (the eviction check and SCRIPT LOAD)."""
UNKNOWN_RESET_S = 60
"""Retry-After when the exhausted budget has no period (it will not reset on its own)."""


Held = BudgetReservation | None
"""What `reserve_budget` gives the runner: the hold, or `None` when nothing is held."""


class BudgetsPlugin(Plugin[BudgetsConfig]):
    """Spend limits per key, team, user, team member, organisation, end user and globally, per model or not."""

    Config = BudgetsConfig
    migrations = MIGRATIONS
    cpu_only = True  # `reserve_budget` returns a coroutine for what waits; `routes` only builds a list

    def __init__(self, name: str, config: BudgetsConfig) -> None:
        super().__init__(name, config)
        self.pricer = Pricer(config)
        self.global_rule = self._global_rule(config)
        self.now_ms = wall_ms
        """The clock that picks budget periods; tests may replace it."""
        self._grace_ms = int(max(config.hold_ttl_s, 3600) * 1000)
        self._done_ttl_ms = int(DONE_MARKER_HOLDS * config.hold_ttl_s * 1000)
        self._accountant: Accountant | None = None
        self._limits: LimitsStore | None = None
        self._lock: WorkerLock | None = None
        self._context: PluginContext | None = None
        self._webhook: AlertWebhook | None = None
        self._admin = AdminApi(self)
        self._plans = PlanCache()
        # Request ids: unique across replicas and restarts, cheaper than a uuid4 per request.
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count(1)

    @staticmethod
    def _global_rule(config: BudgetsConfig) -> BudgetRule | None:
        if config.global_budget is None and config.global_soft_budget is None:
            return None
        return BudgetRule(
            "global",
            "global",
            None,
            NO_LIMIT if config.global_budget is None else limit_micros(config.global_budget),
            None if config.global_soft_budget is None else limit_micros(config.global_soft_budget),
            parse_duration(config.global_budget_duration) if config.global_budget_duration else None,
        )

    # -- what the admin API uses --------------------------------------------

    @property
    def accountant(self) -> Accountant:
        if self._accountant is None:
            raise DependencyFailure("Budgets are not started.", reason_id="budgets_not_started")
        return self._accountant

    @property
    def limits(self) -> LimitsStore:
        if self._limits is None:
            raise DependencyFailure("Budgets are not started.", reason_id="budgets_not_started")
        return self._limits

    def counter(self, rule: BudgetRule, columns: dict[str, str]) -> Counter:
        return counter_for(rule, columns, self.now_ms(), self._grace_ms)

    # -- hooks --------------------------------------------------------------

    @hookimpl
    async def startup(self, context: PluginContext) -> None:
        resources = context.resources
        engine = resources.engine()
        ledger = Ledger(engine)
        if self.config.create_schema:
            await ledger.create_schema()
        limits_store = LimitsStore(engine, self.config.limits_refresh_s)
        shared = resources.redis()
        store: RedisStore | MemoryStore
        if shared is not None:
            store = RedisStore(
                dedicated_client(shared),
                resources.redis_prefix,
                timeout_s=self.config.store_timeout_s,
                done_ttl_ms=self._done_ttl_ms,
            )
            try:
                await store.prepare(timeout_s=STARTUP_TIMEOUT_S)
            except (RedisError, OSError, TimeoutError) as error:
                # Budgeted requests fail closed until Redis answers; the policy check then runs first.
                logger.warning("budgets %r: Redis unreachable at start-up (%s)", self.name, type(error).__name__)
        else:
            path = Path(self.config.lock_file) if self.config.lock_file else default_lock_path(engine.url)
            if path is not None:
                lock = WorkerLock(path)
                lock.acquire()
                self._lock = lock
            store = MemoryStore(done_ttl_ms=self._done_ttl_ms, clock=lambda: self.now_ms())
        if self.config.fail_open:
            logger.warning(
                "budgets %r: fail_open is set; requests are admitted unbudgeted when %s fails", self.name, store.kind
            )
        self._context = context
        if self.config.soft_budget_webhook_url is not None:
            url = self.config.soft_budget_webhook_url.get_secret_value()
            self._webhook = AlertWebhook(url, self.config.webhook_timeout_s)
        await limits_store.start()
        self._limits = limits_store
        self._accountant = Accountant(
            store,
            ledger,
            self.pricer,
            hold_ms=int(self.config.hold_ttl_s * 1000),
            on_soft=self._soft_limit_crossed,
            clock=lambda: self.now_ms(),
        )

    @hookimpl
    async def shutdown(self) -> None:
        if self._limits is not None:
            await self._limits.stop()
        if self._webhook is not None:
            await self._webhook.aclose()
            self._webhook = None
        if self._accountant is not None:
            await self._accountant.aclose()
            await self._accountant.store.aclose()
        self._accountant = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @hookimpl
    def routes(self) -> Sequence[PluginRoute]:
        return self._admin.routes()

    @hookimpl
    async def describe_entity(self, kind: str, entity_id: str, settings: Mapping[str, Any]) -> dict[str, Any] | None:
        """Spend, budget and remainder of an entity for another plugin's admin view (`/key/info`...)."""
        return await self._admin.describe(kind, entity_id, settings)

    @hookimpl
    def reserve_budget(self, request: RequestContext, identity: Identity) -> Held | Coroutine[Any, Any, Held]:
        """Take rate-limit capacity and hold the most the request can cost on every budget: all or none.

        Decided at once when the body is at hand (or no model needs it priced) and the store is in
        process; a coroutine when the body must be read or the store waits (Redis, a counter to load).
        """
        if request.read_body is None and (request.method in BODY_METHODS or request.path_model is not None):
            return self._reserve_after_body(request, identity)
        return self._reserve(request, identity)

    async def _reserve_after_body(self, request: RequestContext, identity: Identity) -> Held:
        await request.body()
        held = self._reserve(request, identity)
        return held if held is None or isinstance(held, BudgetReservation) else await held

    def _reserve(self, request: RequestContext, identity: Identity) -> Held | Coroutine[Any, Any, Held]:
        """`reserve_budget` once the body is read (or not needed)."""
        accountant, limits = self._accountant, self._limits
        if accountant is None or limits is None:
            raise DependencyFailure("Budgets are not started.", reason_id="budgets_not_started")
        now_ms = self.now_ms()
        try:
            view = limits.view(now_ms)
        except LimitsUnavailable as error:
            self._unavailable(error)
            return None
        models = request.read_models()
        plan = self._plans.get(identity, models, view, now_ms)
        if plan is None:
            plan = self._plans.put(identity, models, view, now_ms, self._resolve(identity, models, view, now_ms))
        charge = self._price(request, plan, models)
        rates = plan.rates
        if charge is None:
            if not rates:
                return None
            # Its model is recorded with it, for the per-model rate limits rebuilt from the ledger.
            model = models[0] if models else ""
            held = BudgetReservation(
                accountant, f"{self._id_prefix}{next(self._ids):x}", (), 0, model, plan.columns, now_ms, rates, False
            )
        else:
            held = BudgetReservation(
                accountant,
                f"{self._id_prefix}{next(self._ids):x}",
                plan.counters,
                charge[0],
                charge[1],
                plan.columns,
                now_ms,
                rates,
                True,
                charge[2],
                charge[3],
            )
        counters = held.counters
        if not counters and not rates:
            return held  # spend tracking only: recorded at settlement
        try:
            outcome = accountant.reserve(held.request_id, counters, held.amount, rates)
        except STORE_FAILURES as error:
            self._unavailable(error)
            return None
        if isinstance(outcome, ReserveOutcome):
            return self._decided(held, outcome)
        return self._reserve_waiting(held, outcome)

    async def _reserve_waiting(self, held: BudgetReservation, pending: Awaitable[ReserveOutcome]) -> Held:
        try:
            outcome = await pending
        except STORE_FAILURES as error:
            self._unavailable(error)
            return None
        return self._decided(held, outcome)

    @staticmethod
    def _decided(held: BudgetReservation, outcome: ReserveOutcome) -> BudgetReservation:
        """`held` when the store admitted it, with its rate-limit headers; else the 429 that refuses it."""
        rates = held.rates
        if outcome.admitted:
            if rates:
                held.headers = rate_headers(rates, outcome.left)
            return held
        if outcome.rate_index is not None:
            limit = rates[outcome.rate_index]
            raise RateLimited(
                f"Rate limit exceeded ({limit.entity} {limit.kind}).",
                retry_after=outcome.retry_after_ms / 1000,
                reason_id=f"rate_limited.{limit.kind}.{limit.entity}",
                headers=headers_for(limit, 0, outcome.retry_after_ms),
            )
        exhausted = held.counters[outcome.denied_index or 0]
        raise BudgetExceeded(
            f"Budget exceeded ({exhausted.rule.entity} budget).",
            retry_after=_seconds_to_reset(exhausted, held.reserved_at_ms),
            reason_id=f"budget_exceeded.{exhausted.rule.entity}",
        )

    def _resolve(self, identity: Identity, models: Sequence[str], view: LimitsView, now_ms: int) -> Plan:
        """The budgets and rate limits of this identity and these models in the current periods."""
        tier = self.config.end_user_budget_id
        rates = distinct_rates(applicable_rate_limits(identity, view.rates, models, tier))
        rules = [
            rule
            for model in models
            for rule in applicable_rules(identity, model, view.rules, self.global_rule, now_ms, tier)
        ]
        columns = identity_columns(identity)
        counters = _distinct([counter_for(rule, columns, now_ms, self._grace_ms) for rule in rules])
        return Plan(tuple(counters), tuple(rates), columns, bool(rules), self.pricer.quote(models))

    def _price(self, request: RequestContext, plan: Plan, models: Sequence[str]) -> tuple[int, str, int, str] | None:
        """(amount, model, token bound, model whose rates settle it) to charge: `None` for a free request, or an
        unpriced one nothing budgets.

        The amount covers the body's fallbacks too: the app may call any of them, so the hold is the most the
        dearest could cost. The charge stays recorded under a requested model (per-model budgets are theirs).
        """
        body = request.read_json() if request.method in BODY_METHODS else None
        try:
            fallbacks = body_models(body)
        except UnreadableModels as error:
            raise InvalidRequest(str(error), reason_id="unreadable_models", param="fallbacks") from None
        quote = plan.quote if not fallbacks else self.pricer.quote((*models, *fallbacks))
        if quote.unpriced:
            if plan.budgeted:
                raise UnpricedModel(reason_id="model_not_priced")
            # No budget to enforce and no price to record spend with.
            return None
        if not quote.rates:
            return None
        # With no budget the charge is still recorded (no counters), so a budget set later sees it.
        size = len(request.read_body or b"")
        charged = self.pricer.charge(quote, size, body)
        if charged is None:
            return None
        amount, dearest, bound = charged
        if not fallbacks:
            return amount, dearest, bound, dearest
        requested = self.pricer.charge(plan.quote, size, body) if not plan.quote.unpriced else None
        recorded = requested[1] if requested is not None else (models[0] if models else dearest)
        return amount, recorded, bound, dearest

    def _unavailable(self, error: BaseException) -> None:
        """Raise 503, or log and return (the caller admits without a hold) under `fail_open`."""
        if self.config.fail_open:
            logger.warning(
                "budgets %r: counters unavailable (%s); request admitted WITHOUT a budget hold (fail_open)",
                self.name,
                type(error).__name__,
            )
            return
        logger.warning("budgets %r: counters unavailable (%s); request refused", self.name, type(error).__name__)
        raise DependencyFailure("Budgets are unavailable.", reason_id="budget_store_unavailable") from None

    async def _soft_limit_crossed(self, counter: Counter, spend: int) -> None:
        rule = counter.rule
        logger.info("budgets %r: %s %s passed its soft budget", self.name, rule.entity, rule.entity_id)
        data = {
            "entity": rule.entity,
            "entity_id": rule.entity_id,
            "model": rule.model,
            "soft_budget": (rule.soft or 0) / 1_000_000,
            "spend": spend / 1_000_000,
            "max_budget": None if rule.limit == NO_LIMIT else rule.limit / 1_000_000,
        }
        if self._webhook is not None:
            self._webhook.send({"event": "budgets.soft_limit", **data})
        if self._context is not None:
            await self._context.emit(AuthEvent("budgets.soft_limit", plugin=self.name, data=data))


def _distinct(counters: list[Counter]) -> list[Counter]:
    """One counter per name, the strictest limit winning (the same budget may come from two sources)."""
    chosen: dict[str, Counter] = {}
    for counter in counters:
        kept = chosen.get(counter.name)
        if kept is None or (counter.limit != NO_LIMIT and (kept.limit == NO_LIMIT or counter.limit < kept.limit)):
            chosen[counter.name] = counter
    return list(chosen.values())


def _seconds_to_reset(counter: Counter, now_ms: int) -> float:
    if counter.period_end_ms is None:
        return UNKNOWN_RESET_S
    return max(1.0, (counter.period_end_ms - now_ms) / 1000)
