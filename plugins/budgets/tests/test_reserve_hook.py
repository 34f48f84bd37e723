"""`reserve_budget` decides at once when it can and waits only when it must, with the same decisions."""

from __future__ import annotations

import inspect

import pytest
from authcore_budgets.accounting import BudgetReservation
from budget_helpers import RunnerFactory, budgets_of, chat

from authcore import BudgetExceeded, Identity, RequestContext
from authcore.runner import Runner
from authcore.testing import make_request

KEY = {"key_id": "k1", "limits": {"max_budget": 0.10}}


async def statuses(runner: Runner, requests: list[RequestContext]) -> list[int]:
    return [(await runner.authenticate(request)).status_code for request in requests]


async def read_first(request: RequestContext) -> RequestContext:
    """The body read by an earlier hook, as virtual_keys' model check does."""
    await request.body()
    return request


async def test_a_read_body_and_an_unread_one_get_the_same_decisions(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": KEY}) as runner:
        unread = await statuses(runner, [chat("tok") for _ in range(3)])
    async with make_runner({"tok": {**KEY, "key_id": "k2"}}) as runner:
        read = await statuses(runner, [await read_first(chat("tok")) for _ in range(3)])
    assert unread == read == [200, 200, 429]


async def test_the_in_process_store_decides_without_waiting_once_the_body_is_read(make_runner: RunnerFactory) -> None:
    identity = Identity(auth_method="api_key", key_id="k3", limits={"max_budget": 0.15}, plugin="ids")
    async with make_runner({}) as runner:
        budgets = budgets_of(runner)
        in_process = budgets.accountant.store.kind == "memory"
        # Counters start unloaded: the first reservation loads them from the ledger, which waits.
        first = budgets.reserve_budget(await read_first(chat("tok")), identity)
        assert inspect.iscoroutine(first)
        assert isinstance(await first, BudgetReservation)
        # An unread body must be read first.
        unread = budgets.reserve_budget(chat("tok"), identity)
        assert inspect.iscoroutine(unread)
        assert isinstance(await unread, BudgetReservation)
        # Loaded and read: in process the answer is there at once; Redis waits for its round trip.
        third = budgets.reserve_budget(await read_first(chat("tok")), identity)
        assert inspect.iscoroutine(third) is not in_process
        assert isinstance(third if in_process else await third, BudgetReservation)
        # The refusal of the fourth $0.05 on $0.15 comes the same way.
        fourth = await read_first(chat("tok"))
        if in_process:
            with pytest.raises(BudgetExceeded) as refused:
                budgets.reserve_budget(fourth, identity)
        else:
            pending = budgets.reserve_budget(fourth, identity)
            with pytest.raises(BudgetExceeded) as refused:
                await pending  # type: ignore[misc]
        assert refused.value.reason_id == "budget_exceeded.key"


async def test_a_get_whose_path_names_a_model_is_priced_from_its_body_size(make_runner: RunnerFactory) -> None:
    identity = Identity(auth_method="api_key", key_id="k4", limits={"max_budget": 1.0}, plugin="ids")
    async with make_runner({}) as runner:
        budgets = budgets_of(runner)
        request = make_request("GET", "/v1beta/models/m5c", body=b"x" * 10)
        pending = budgets.reserve_budget(request, identity)
        assert inspect.iscoroutine(pending)  # the body is read before pricing
        held = await pending
        assert isinstance(held, BudgetReservation)
        assert held.model == "m5c"
        # No priced model named: nothing to read, nothing held.
        assert budgets.reserve_budget(make_request("GET", "/v1/models"), identity) is None
