"""Client-side fallbacks: the hold covers the dearest model a request may reach; the charge is the one that answered."""

from __future__ import annotations

from typing import Any

from budget_helpers import RunnerFactory, admitted, chat, spend

from authcore import Usage

BUDGETED = {"tok": {"key_id": "k1", "limits": {"max_budget": 0.20}}}


async def test_a_fallback_to_a_dearer_model_is_held_at_its_price(make_runner: RunnerFactory) -> None:
    async with make_runner(BUDGETED) as runner:
        # m5c at 1000 tokens costs $0.05, but the app may call m20c instead: $0.20, the whole budget.
        held = await admitted(runner, fallbacks=["m20c"])
        assert (await runner.authenticate(chat("tok"))).status_code == 429
        # The cheap model answered: $0.05 is charged and the rest of the hold returns.
        held.usage = Usage("m5c", 1, 1000)
        await runner.settle(held, completed=True)
        assert [await spend(runner, usage=Usage("m5c", 1, 1000)) for _ in range(4)] == [200, 200, 200, 429]


async def test_fallbacks_in_every_shape_the_app_reads_are_held_for(make_runner: RunnerFactory) -> None:
    shapes: list[dict[str, Any]] = [
        {"fallbacks": [{"model": "m20c", "messages": []}]},
        {"context_window_fallbacks": [{"m5c": ["m20c"]}]},
        {"content_policy_fallbacks": ["m20c"]},
        {"router_settings_override": {"fallbacks": [{"m5c": ["m20c"]}]}},
    ]
    for shape in shapes:
        async with make_runner({"tok": {"key_id": f"k-{len(str(shape))}", "limits": {"max_budget": 0.20}}}) as runner:
            held = await admitted(runner, **shape)
            assert (await runner.authenticate(chat("tok"))).status_code == 429, shape
            await runner.settle(held, completed=False)


async def test_the_model_that_answered_sets_the_charge(make_runner: RunnerFactory) -> None:
    async with make_runner(BUDGETED) as runner:
        # The upstream reports m20c (a fallback the app chose, or an alias): its price is charged, the whole budget.
        assert await spend(runner, usage=Usage("m20c", 1, 1000)) == 200
        assert (await runner.authenticate(chat("tok", max_tokens=1))).status_code == 429


async def test_a_usage_naming_no_priced_model_is_charged_at_the_dearest_model_reachable(
    make_runner: RunnerFactory,
) -> None:
    async with make_runner(BUDGETED) as runner:
        # "m5c-2025-01-01" is not in the table: which model answered is unknown, so the dearest is charged.
        assert await spend(runner, usage=Usage("m5c-2025-01-01", 1, 1000), fallbacks=["m20c"]) == 200
        assert (await runner.authenticate(chat("tok", max_tokens=1))).status_code == 429


async def test_an_unpriced_fallback_is_refused_when_a_budget_applies(make_runner: RunnerFactory) -> None:
    async with make_runner(BUDGETED) as runner:
        result = await runner.authenticate(chat("tok", fallbacks=["no-such-price"]))
        assert result.status_code == 403
        assert result.error is not None
        assert result.error.reason_id == "model_not_priced"


async def test_fallbacks_that_cannot_be_read_are_refused(make_runner: RunnerFactory) -> None:
    async with make_runner(BUDGETED) as runner:
        result = await runner.authenticate(chat("tok", fallbacks=[{"model": 5}]))
        assert result.status_code == 400
        assert result.error is not None
        assert result.error.reason_id == "unreadable_models"
