"""budgets with virtual_keys: a key's budget and its temporary increase, set through /key/* and enforced here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from authcore_budgets import BudgetsPlugin
from authcore_virtual_keys import VirtualKeysPlugin
from budget_helpers import budgets_config, budgets_of, chat

from authcore.resources import Resources
from authcore.runner import Runner
from authcore.testing import app_client, started_runner

MASTER_KEY = "sk-master-budgets-4Tq9Wm2Xc7Lp"
HASH_SECRET = "pepper-budgets-9e2c7a1f5b3d8e40"
ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}


@contextlib.asynccontextmanager
async def gateway(resources: Resources) -> AsyncIterator[tuple[Runner, httpx.AsyncClient]]:
    """virtual_keys then budgets on `resources`, started, with an admin API client."""
    specs = {
        "keys": (VirtualKeysPlugin, {"master_key": MASTER_KEY, "hash_secret": HASH_SECRET}),
        "budgets": (BudgetsPlugin, budgets_config()),
    }
    async with started_runner(specs, timeout_s=5, resources=resources) as runner, app_client(runner) as client:
        yield runner, client


async def has_room(runner: Runner, key: str) -> bool:
    """Whether one more $0.05 request fits now; the hold is given back either way."""
    result = await runner.authenticate(chat(key))
    await runner.settle(result, completed=False)
    return result.error is None


async def spend(runner: Runner, key: str, user: str | None = None) -> int:
    """One $0.05 request with `key` (for the end user `user`), committed when admitted; its status."""
    result = await runner.authenticate(chat(key, **({"user": user} if user is not None else {})))
    if result.error is not None:
        return result.status_code
    await runner.settle(result, completed=True)
    return 200


async def test_temp_budget_increase_from_key_update_gives_room_until_its_expiry(tmp_path: Path) -> None:
    resources = Resources(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    async with gateway(resources) as (runner, client):
        created = await client.post("/key/generate", json={"max_budget": 0.05}, headers=ADMIN)
        assert created.status_code == 200, created.text
        key = created.json()["key"]
        assert await spend(runner, key) == 200
        assert not await has_room(runner, key)

        expiry = datetime.now(UTC) + timedelta(hours=1)
        update = {"key": key, "temp_budget_increase": 0.05, "temp_budget_expiry": expiry.isoformat()}
        updated = await client.post("/key/update", json=update, headers=ADMIN)
        assert updated.status_code == 200, updated.text

        assert await has_room(runner, key)
        # Past the expiry the increase is gone, although the key still carries it.
        budgets_of(runner).now_ms = lambda: int((expiry + timedelta(seconds=1)).timestamp() * 1000)
        assert not await has_room(runner, key)


@pytest.fixture(params=["sqlite", pytest.param("postgres+redis", marks=pytest.mark.services)])
def resources(request: pytest.FixtureRequest, tmp_path: Path) -> Resources:
    if request.param == "sqlite":
        return Resources(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    return Resources(
        request.getfixturevalue("authcore_postgres_url"),
        request.getfixturevalue("authcore_redis_url"),
        request.getfixturevalue("authcore_redis_prefix"),
    )


async def test_a_members_budget_in_the_team_holds_for_that_member_only(resources: Resources) -> None:
    async with gateway(resources) as (runner, client):
        assert (await client.post("/team/new", json={"team_id": "t-m"}, headers=ADMIN)).status_code == 200
        for user in ("u-capped", "u-free"):
            assert (await client.post("/user/new", json={"user_id": user}, headers=ADMIN)).status_code == 200
        member = {"team_id": "t-m", "member": {"user_id": "u-capped"}, "max_budget_in_team": 0.05}
        added = await client.post("/team/member_add", json=member, headers=ADMIN)
        assert added.status_code == 200, added.text
        other = {"team_id": "t-m", "member": {"user_id": "u-free"}}
        assert (await client.post("/team/member_add", json=other, headers=ADMIN)).status_code == 200

        def key_of(user: str) -> dict[str, str]:
            return {"team_id": "t-m", "user_id": user}

        capped = [
            (await client.post("/key/generate", json=key_of("u-capped"), headers=ADMIN)).json()["key"]
            for _ in range(2)
        ]
        free = (await client.post("/key/generate", json=key_of("u-free"), headers=ADMIN)).json()["key"]
        # LiteLLM's team member budget: the member's spend in the team, across the member's keys there.
        assert [await spend(runner, capped[0]), await spend(runner, capped[1])] == [200, 429]
        refused = await runner.authenticate(chat(capped[1]))
        assert refused.error is not None
        assert refused.error.reason_id.endswith("team_member")
        assert [await spend(runner, free) for _ in range(3)] == [200, 200, 200]

        raised = {"team_id": "t-m", "user_id": "u-capped", "max_budget_in_team": 0.10}
        assert (await client.post("/team/member_update", json=raised, headers=ADMIN)).status_code == 200
        assert [await spend(runner, capped[1]), await spend(runner, capped[0])] == [200, 429]


async def test_a_team_budget_set_with_team_new_is_shared_by_its_keys(resources: Resources) -> None:
    async with gateway(resources) as (runner, client):
        team = await client.post("/team/new", json={"team_id": "t-budget", "max_budget": 0.10}, headers=ADMIN)
        assert team.status_code == 200, team.text
        first, second = [
            (await client.post("/key/generate", json={"team_id": "t-budget"}, headers=ADMIN)).json()["key"]
            for _ in range(2)
        ]
        outsider = (await client.post("/key/generate", json={}, headers=ADMIN)).json()["key"]
        # LiteLLM's /team/new budget holds for the team as a whole, across its keys.
        assert [await spend(runner, first), await spend(runner, second), await spend(runner, first)] == [200, 200, 429]
        assert await spend(runner, outsider) == 200

        info = await client.get("/team/info", params={"team_id": "t-budget"}, headers=ADMIN)
        assert info.status_code == 200, info.text
        shown = info.json()["team_info"]
        assert shown["max_budget"] == 0.10
        assert shown["spend"] == 0.10
        assert shown["remaining_budget"] == 0.0

        # Raising the team's budget takes effect at once (the team's keys are dropped from the cache).
        raised = await client.post("/team/update", json={"team_id": "t-budget", "max_budget": 0.15}, headers=ADMIN)
        assert raised.status_code == 200, raised.text
        assert [await spend(runner, second), await spend(runner, first)] == [200, 429]


async def test_an_organization_rpm_limit_set_with_organization_new_holds(resources: Resources) -> None:
    async with gateway(resources) as (runner, client):
        org = await client.post("/organization/new", json={"organization_id": "o-rpm", "rpm_limit": 2}, headers=ADMIN)
        assert org.status_code == 200, org.text
        team = await client.post("/team/new", json={"team_id": "t-rpm", "organization_id": "o-rpm"}, headers=ADMIN)
        assert team.status_code == 200, team.text
        # One key in the organization directly, one through its team: both draw on the org's 2 rpm.
        direct = (await client.post("/key/generate", json={"organization_id": "o-rpm"}, headers=ADMIN)).json()["key"]
        via_team = (await client.post("/key/generate", json={"team_id": "t-rpm"}, headers=ADMIN)).json()["key"]
        assert [await spend(runner, direct), await spend(runner, via_team), await spend(runner, direct)] == [
            200,
            200,
            429,
        ]


async def test_a_customer_budget_set_with_customer_new_holds_across_keys(resources: Resources) -> None:

    async with gateway(resources) as (runner, client):
        customer = await client.post("/customer/new", json={"user_id": "cust-b", "max_budget": 0.10}, headers=ADMIN)
        assert customer.status_code == 200, customer.text
        first, second = [(await client.post("/key/generate", json={}, headers=ADMIN)).json()["key"] for _ in range(2)]
        # The customer's $0.10 holds whichever key makes the request for them.
        assert [await spend(runner, first, "cust-b"), await spend(runner, second, "cust-b")] == [200, 200]
        assert await spend(runner, first, "cust-b") == 429
        assert await spend(runner, first, "someone-else") == 200
        assert await spend(runner, first) == 200

        info = await client.get("/customer/info", params={"end_user_id": "cust-b"}, headers=ADMIN)
        assert info.status_code == 200, info.text
        assert info.json()["spend"] == 0.10


async def test_customers_linked_to_a_named_budget_by_budget_id_each_get_its_limit(resources: Resources) -> None:

    async with gateway(resources) as (runner, client):
        tier = await client.post("/budget/new", json={"budget_id": "tier-1", "max_budget": 0.10}, headers=ADMIN)
        assert tier.status_code == 200, tier.text
        for user in ("cust-1", "cust-2"):
            created = await client.post("/customer/new", json={"user_id": user, "budget_id": "tier-1"}, headers=ADMIN)
            assert created.status_code == 200, created.text
        key = (await client.post("/key/generate", json={}, headers=ADMIN)).json()["key"]
        assert [await spend(runner, key, "cust-1") for _ in range(3)] == [200, 200, 429]
        assert [await spend(runner, key, "cust-2") for _ in range(3)] == [200, 200, 429]

        info = await client.get("/customer/info", params={"end_user_id": "cust-1"}, headers=ADMIN)
        assert info.status_code == 200, info.text
        assert (info.json()["spend"], info.json()["max_budget"], info.json()["remaining_budget"]) == (0.10, 0.10, 0.0)

        # Raising the named budget gives every linked customer room.
        raised = await client.post("/budget/update", json={"budget_id": "tier-1", "max_budget": 0.15}, headers=ADMIN)
        assert raised.status_code == 200, raised.text
        assert [await spend(runner, key, "cust-1") for _ in range(2)] == [200, 429]


async def test_a_key_generated_with_a_budget_id_is_held_to_that_named_budget(resources: Resources) -> None:
    async with gateway(resources) as (runner, client):
        tier = await client.post("/budget/new", json={"budget_id": "tier-k", "max_budget": 0.10}, headers=ADMIN)
        assert tier.status_code == 200, tier.text
        created = await client.post("/key/generate", json={"budget_id": "tier-k"}, headers=ADMIN)
        assert created.status_code == 200, created.text
        assert created.json()["budget_id"] == "tier-k"
        key = created.json()["key"]
        assert [await spend(runner, key) for _ in range(3)] == [200, 200, 429]

        info = await client.post("/key/info", json={"key": key}, headers=ADMIN)
        assert info.status_code == 200, info.text
        shown = info.json()["info"]
        assert (shown["budget_id"], shown["spend"], shown["max_budget"]) == ("tier-k", 0.10, 0.10)

        # Unlinked, the key has no budget left to hold it.
        unlinked = await client.post("/key/update", json={"key": key, "budget_id": None}, headers=ADMIN)
        assert unlinked.status_code == 200, unlinked.text
        assert await spend(runner, key) == 200


async def test_a_per_model_rpm_limit_in_key_metadata_holds_and_follows_updates(resources: Resources) -> None:
    async with gateway(resources) as (runner, client):
        created = await client.post("/key/generate", json={"metadata": {"model_rpm_limit": {"m5c": 1}}}, headers=ADMIN)
        assert created.status_code == 200, created.text
        key = created.json()["key"]
        assert [await spend(runner, key), await spend(runner, key)] == [200, 429]
        # LiteLLM admin scripts change it with /key/update; the new limit applies at once.
        updated = await client.post(
            "/key/update", json={"key": key, "metadata": {"model_rpm_limit": {"m5c": 100}}}, headers=ADMIN
        )
        assert updated.status_code == 200, updated.text
        assert await spend(runner, key) == 200
