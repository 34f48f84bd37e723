"""Named budgets (`/budget/new`, LiteLLM's budget table): managed through the admin API, enforced per linked entity."""

from __future__ import annotations

from typing import Any

import httpx
from budget_helpers import RunnerFactory, chat

from authcore.runner import Runner
from authcore.testing import app_client, make_request

ADMIN = {"authorization": "Bearer admin"}
VIEWER = {"authorization": "Bearer viewer"}


def linked(end_user: str, tier: str = "gold", **fields: Any) -> dict[str, Any]:
    return {"key_id": f"k-{end_user}", "end_user_id": end_user, "limits": {"end_user": {"budget_id": tier}}, **fields}


async def spend(runner: Runner, token: str, model: str = "m5c") -> int:
    """One $0.05 request (on `m5c`), committed when admitted; its status."""
    result = await runner.authenticate(chat(token, model=model))
    if result.error is not None:
        return result.status_code
    await runner.settle(result, completed=True)
    return 200


async def post(runner: Runner, path: str, body: dict[str, Any], headers: dict[str, str] = ADMIN) -> httpx.Response:
    async with app_client(runner) as client:
        return await client.post(path, json=body, headers=headers)


async def get(runner: Runner, path: str, params: dict[str, str] | None = None) -> httpx.Response:
    async with app_client(runner) as client:
        return await client.get(path, params=params, headers=ADMIN)


async def test_budget_new_list_info_update_and_delete(make_runner: RunnerFactory) -> None:
    async with make_runner({"viewer": {"key_id": "v", "role": "proxy_admin_viewer"}}) as runner:
        created = await post(runner, "/budget/new", {"budget_id": "gold", "max_budget": 1.5, "budget_duration": "30d"})
        assert created.status_code == 200, created.text
        assert created.json() == {
            "budget_id": "gold",
            "max_budget": 1.5,
            "soft_budget": None,
            "budget_duration": "30d",
            "rpm_limit": None,
            "tpm_limit": None,
            "max_parallel_requests": None,
            "model_max_budget": None,
        }
        generated = await post(runner, "/budget/new", {"max_budget": 2})
        assert generated.status_code == 200, generated.text
        other = generated.json()["budget_id"]
        assert other not in ("", "gold")
        # The id is taken: nothing changes.
        again = await post(runner, "/budget/new", {"budget_id": "gold", "max_budget": 99})
        assert again.status_code == 409
        assert (await get(runner, "/budget/info", {"entity": "budget", "id": "gold"})).json()["max_budget"] == 1.5

        listed = await get(runner, "/budget/list")
        assert sorted(budget["budget_id"] for budget in listed.json()) == sorted(["gold", other])

        # Only the fields given change; model_max_budget adds per-model budgets.
        update = {"budget_id": "gold", "rpm_limit": 10, "model_max_budget": {"m5c": {"budget_limit": 0.5}}}
        updated = await post(runner, "/budget/update", update)
        assert updated.status_code == 200, updated.text
        body = updated.json()
        assert (body["max_budget"], body["budget_duration"], body["rpm_limit"]) == (1.5, "30d", 10)
        assert body["model_max_budget"] == {"m5c": {"budget_limit": 0.5, "time_period": None}}
        assert (await post(runner, "/budget/update", {"budget_id": "nope", "max_budget": 1})).status_code == 404

        # Viewers read, never write.
        async with app_client(runner) as client:
            assert (await client.get("/budget/list", headers=VIEWER)).status_code == 200
            assert (await client.post("/budget/new", json={"max_budget": 1}, headers=VIEWER)).status_code == 403

        # LiteLLM's delete names the budget alone; it goes with its per-model budgets.
        deleted = await post(runner, "/budget/delete", {"id": "gold"})
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"deleted": True}
        assert (await get(runner, "/budget/info", {"entity": "budget", "id": "gold"})).status_code == 404
        assert [budget["budget_id"] for budget in (await get(runner, "/budget/list")).json()] == [other]


async def test_bad_named_budgets_are_refused_and_change_nothing(make_runner: RunnerFactory) -> None:
    async with make_runner({}) as runner:
        for body in (
            {"budget_id": "b", "max_budget": -1},
            {"budget_id": "b", "budget_duration": "1y"},
            {"budget_id": "b", "budget_reset_at": "2030-01-01T00:00:00Z"},
            {"budget_id": "b", "model_max_budget": {"m5c": {"budget_limit": "lots"}}},
            {"budget_id": "", "max_budget": 1},
        ):
            response = await post(runner, "/budget/new", body)
            assert response.status_code == 400, (body, response.text)
        assert (await get(runner, "/budget/list")).json() == []
        assert (await post(runner, "/budget/update", {"max_budget": 1})).status_code == 400


async def test_each_end_user_linked_to_a_named_budget_gets_its_own_spend_against_it(make_runner: RunnerFactory) -> None:
    identities = {"a": linked("e-a"), "b": linked("e-b"), "free": {"key_id": "k-free", "end_user_id": "e-free"}}
    async with make_runner(identities) as runner:
        assert (await post(runner, "/budget/new", {"budget_id": "gold", "max_budget": 0.10})).status_code == 200
        assert [await spend(runner, "a") for _ in range(3)] == [200, 200, 429]
        # Another end user on the same named budget has its own $0.10.
        assert [await spend(runner, "b") for _ in range(3)] == [200, 200, 429]
        assert await spend(runner, "free") == 200
        # A budget set for the end user itself replaces the named one.
        assert (
            await post(runner, "/budget/set", {"entity": "end_user", "id": "e-a", "max_budget": 1})
        ).status_code == 200
        assert await spend(runner, "a") == 200


async def test_a_link_to_a_missing_named_budget_is_refused(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": linked("e1", tier="missing")}) as runner:
        result = await runner.authenticate(chat("tok"))
        assert result.status_code == 403
        assert result.error is not None
        assert result.error.reason_id == "budget_not_found"


async def test_a_named_budgets_rate_and_per_model_limits_hold_per_end_user(make_runner: RunnerFactory) -> None:
    async with make_runner({"a": linked("e-a"), "b": linked("e-b")}) as runner:
        tier = {"budget_id": "gold", "rpm_limit": 2, "model_max_budget": {"priced-input": {"budget_limit": 0.0}}}
        assert (await post(runner, "/budget/new", tier)).status_code == 200
        assert [await spend(runner, "a") for _ in range(3)] == [200, 200, 429]
        refused = await runner.authenticate(chat("a"))
        assert refused.error is not None
        assert refused.error.reason_id == "rate_limited.rpm.end_user"
        assert await spend(runner, "b") == 200
        # A per-model budget of $0 on one model: that model is refused, others are not.
        assert await spend(runner, "b", model="priced-input") == 429


async def test_the_default_end_user_budget_applies_to_end_users_without_one(make_runner: RunnerFactory) -> None:
    identities = {
        "unknown": {"key_id": "k1", "end_user_id": "stranger"},
        "own": {"key_id": "k2", "end_user_id": "vip", "limits": {"end_user": {"max_budget": 1}}},
        "nobody": {"key_id": "k3"},
    }
    async with make_runner(identities, end_user_budget_id="starter") as runner:
        # Not created yet: end users without a budget of their own are refused, fail closed.
        assert await spend(runner, "unknown") == 403
        assert await spend(runner, "own") == 200
        assert await spend(runner, "nobody") == 200
        assert (await post(runner, "/budget/new", {"budget_id": "starter", "max_budget": 0.05})).status_code == 200
        assert [await spend(runner, "unknown") for _ in range(2)] == [200, 429]
        assert [await spend(runner, "own") for _ in range(2)] == [200, 200]
        info = await get(runner, "/budget/info", {"entity": "end_user", "id": "stranger"})
        assert info.status_code == 200, info.text
        assert info.json()["budgets"][0]["max_budget"] == 0.05
        assert info.json()["budgets"][0]["spend"] == 0.05


async def test_keys_linked_to_a_named_budget_each_get_its_budget_and_rate_limits(make_runner: RunnerFactory) -> None:
    def key(key_id: str, tier: str = "gold") -> dict[str, Any]:
        # The key's own max_budget gives way to the named budget it is linked to.
        return {"key_id": key_id, "limits": {"budget_id": tier, "max_budget": 100}}

    keys = {"a": key("k-a"), "b": key("k-b"), "c": key("k-c"), "lost": key("k-lost", "missing")}
    async with make_runner(keys) as runner:
        tier = {"budget_id": "gold", "max_budget": 0.10, "max_parallel_requests": 5}
        assert (await post(runner, "/budget/new", tier)).status_code == 200
        assert [await spend(runner, "a") for _ in range(3)] == [200, 200, 429]
        assert [await spend(runner, "b") for _ in range(3)] == [200, 200, 429]
        assert await spend(runner, "lost") == 403
        # The named budget's rate limits hold per key too.
        assert (
            await post(runner, "/budget/update", {"budget_id": "gold", "max_budget": 10, "rpm_limit": 1})
        ).status_code == 200
        assert [await spend(runner, "c") for _ in range(2)] == [200, 429]
        # The store started less than a minute ago, so a limit it does not know is taken from the ledger:
        # "a" was already admitted twice this minute.
        refused = await runner.authenticate(chat("a"))
        assert refused.error is not None
        assert refused.error.reason_id == "rate_limited.rpm.key"


async def test_a_link_to_a_missing_named_budget_is_refused_even_when_no_model_is_priced(
    make_runner: RunnerFactory,
) -> None:
    identities = {
        "key": {"key_id": "k1", "limits": {"budget_id": "missing", "rpm_limit": 5}},
        "user": linked("e1", "gone"),
    }
    async with make_runner(identities) as runner:
        for token in ("key", "user"):
            # No model named: no budget is priced, but the link's rate limits cannot be known either.
            result = await runner.authenticate(
                make_request("GET", "/v1/models", headers={"authorization": f"Bearer {token}"})
            )
            assert result.status_code == 403, token
            assert result.error is not None
            assert result.error.reason_id == "budget_not_found"
