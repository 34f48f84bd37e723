"""Spend in `virtual_keys`' admin views, from `budgets` through `describe_entity` (neither imports the other).

The gateway runs both plugins from configuration, on SQLite with the in-process
store and on real Postgres + Redis; requests spend through `/v1/chat/completions`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from test_cli import MASTER_KEY as CLI_MASTER_KEY
from test_cli import spend as spend_cli
from test_cli import through_gateway

from authcore.config import parse_config
from authcore.gateway.app import create_app
from authcore.middleware import STATE_KEY
from authcore.runner import Runner

MASTER_KEY = "sk-master-spend-views-5e2a91"
ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
KEY_ID_LENGTH = 12
"""`Identity.key_id` of a virtual key: the first 12 hex characters of its stored hash (`/key/info`'s `key`)."""
MICRO = 1e-6


class Gateway:
    def __init__(self, client: httpx.AsyncClient, runner: Callable[[], Runner]) -> None:
        self.client = client
        self.runner = runner

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        return response.json()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.client.post(path, json=body, headers=ADMIN)
        assert response.status_code == 200, response.text
        return response.json()

    async def chat(self, key: str, max_tokens: int) -> int:
        """Spend through the gateway; the cost in micro-USD is the mock's completion tokens."""
        body = {"model": "gpt-4o-mini", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]}
        response = await self.client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
        used: int = response.json()["usage"]["completion_tokens"]
        assert used > 0
        return used

    async def key_info(self, key: str) -> dict[str, Any]:
        info: dict[str, Any] = (await self.post("/key/info", {"key": key}))["info"]
        return info


def storage(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "sqlite":
        return {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'views.db'}"}
    return {
        "database_url": request.getfixturevalue("authcore_postgres_url"),
        "redis_url": request.getfixturevalue("authcore_redis_url"),
        "redis_prefix": request.getfixturevalue("authcore_redis_prefix"),
    }


def gateway_config(store: dict[str, Any], *, budgets: bool = True) -> dict[str, Any]:
    plugins: dict[str, Any] = {
        "keys": {"use": "virtual_keys", "config": {"master_key": MASTER_KEY, "hash_secret": "views-pepper-0c4d7e"}}
    }
    if budgets:
        # 1 micro-USD per output token, prompts free.
        prices = {"gpt-4o-mini": {"input_per_1m_tokens": 0, "output_per_1m_tokens": 1}}
        plugins["budget"] = {"use": "budgets", "config": {"prices": prices}}
    return {"plugins": plugins, "storage": store}


@pytest.fixture(params=["sqlite", pytest.param("services", marks=pytest.mark.services)])
async def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Gateway]:
    app = create_app(parse_config(gateway_config(storage(str(request.param), tmp_path, request))))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield Gateway(client, lambda: getattr(app.state, STATE_KEY))


async def test_key_info_shows_the_spend_and_remainder_budgets_counts(gateway: Gateway) -> None:
    created = await gateway.post("/key/generate", {"max_budget": 0.01, "key_alias": "spender"})
    key, token = created["key"], created["token"]

    fresh = await gateway.key_info(key)
    assert (fresh["spend"], fresh["max_budget"], fresh["remaining_budget"]) == (0.0, 0.01, 0.01)
    assert "spend_unavailable" not in fresh

    spent = await gateway.chat(key, 300) + await gateway.chat(key, 200)

    after = await gateway.key_info(key)
    assert after["spend"] == pytest.approx(spent * MICRO)
    assert after["total_spend"] == pytest.approx(spent * MICRO)
    assert after["remaining_budget"] == pytest.approx(0.01 - spent * MICRO)
    assert after["max_budget"] == 0.01
    assert [(b["model"], b["max_budget"], b["reserved"]) for b in after["budgets"]] == [(None, 0.01, 0.0)]
    # The same numbers by token, in the list view, and in budgets' own API for Identity.key_id.
    assert (await gateway.key_info(token))["spend"] == after["spend"]
    listed = await gateway.get("/key/list", key_alias="spender", return_full_object="true")
    assert [(k["token"], k["spend"], k["remaining_budget"]) for k in listed["keys"]] == [
        (token, after["spend"], after["remaining_budget"])
    ]
    budget_info = await gateway.get("/budget/info", entity="key", id=token[:KEY_ID_LENGTH])
    assert budget_info["total_spend"] == after["spend"]


async def test_spend_of_one_key_is_not_another_keys(gateway: Gateway) -> None:
    spender = (await gateway.post("/key/generate", {"max_budget": 1}))["key"]
    idle = (await gateway.post("/key/generate", {}))["key"]

    await gateway.chat(spender, 100)

    untouched = await gateway.key_info(idle)
    assert untouched["spend"] == 0.0
    # No budget on it: nothing to remain; the value stored here stays null.
    assert untouched["max_budget"] is None
    assert "remaining_budget" not in untouched
    assert (await gateway.key_info(spender))["spend"] > 0


async def test_team_user_org_and_customer_views_show_spend(gateway: Gateway) -> None:
    await gateway.post("/team/new", {"team_id": "t-spend"})
    await gateway.post("/user/new", {"user_id": "u-spend"})
    await gateway.post("/organization/new", {"organization_id": "o-spend"})
    await gateway.post("/customer/new", {"user_id": "c-spend"})
    await gateway.post("/budget/set", {"entity": "team", "id": "t-spend", "max_budget": 2})
    key = (
        await gateway.post("/key/generate", {"team_id": "t-spend", "user_id": "u-spend", "organization_id": "o-spend"})
    )["key"]

    spent = await gateway.chat(key, 250) * MICRO

    team = (await gateway.get("/team/info", team_id="t-spend"))["team_info"]
    assert team["spend"] == pytest.approx(spent)
    assert team["max_budget"] == 2.0  # stored only in budgets: filled in because the team's own is null
    assert team["remaining_budget"] == pytest.approx(2.0 - spent)
    user = (await gateway.get("/user/info", user_id="u-spend"))["user_info"]
    assert user["spend"] == pytest.approx(spent)
    org = await gateway.get("/organization/info", organization_id="o-spend")
    assert org["spend"] == pytest.approx(spent)
    customer = await gateway.get("/customer/info", end_user_id="c-spend")
    assert customer["spend"] == 0.0


async def test_when_budgets_fails_spend_is_null_and_says_why(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    created = await gateway.post("/key/generate", {"max_budget": 1})
    key = created["key"]
    await gateway.chat(key, 100)
    runner = gateway.runner()
    assert runner.resources is not None
    # A real failure of budgets' store: its ledger is gone.
    async with runner.resources.engine().begin() as connection:
        await connection.execute(text("DROP TABLE budget_ledger"))

    info = await gateway.key_info(key)

    assert info["spend"] is None
    assert info["spend_unavailable"] == "spend could not be read: budget failed (see the gateway log)"
    assert "remaining_budget" not in info
    assert info["max_budget"] == 1  # what this plugin stores is still shown
    assert "plugin instance 'budget' raised" in caplog.text
    assert key not in caplog.text
    assert created["token"] not in caplog.text


async def test_without_budgets_spend_is_zero_as_litellm_clients_expect(tmp_path: Path) -> None:
    config = gateway_config({"database_url": f"sqlite+aiosqlite:///{tmp_path / 'alone.db'}"}, budgets=False)
    app = create_app(parse_config(config))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        gateway = Gateway(client, lambda: getattr(app.state, STATE_KEY))
        key = (await gateway.post("/key/generate", {"max_budget": 1}))["key"]
        await gateway.post("/team/new", {"team_id": "t"})

        info = await gateway.key_info(key)
        team = (await gateway.get("/team/info", team_id="t"))["team_info"]

    assert (info["spend"], team["spend"]) == (0.0, 0.0)
    assert "spend_unavailable" not in info
    assert "remaining_budget" not in info


def test_authcore_spend_agrees_with_key_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "authcore.yaml"
    monkeypatch.setenv("SPEND_CLI_MASTER", CLI_MASTER_KEY)
    monkeypatch.setenv("SPEND_CLI_SECRET", "pepper-spend-4f1c9a7e2b8d6f30a5")
    monkeypatch.chdir(tmp_path)
    from test_cli import write_config

    config = write_config(tmp_path)
    (created,) = through_gateway(config, [("POST", "/key/generate", {"max_budget": 5})])
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    through_gateway(config, [("POST", "/v1/chat/completions", chat)], token=created["key"])

    (shown,) = through_gateway(config, [("POST", "/key/info", {"key": created["token"]})])
    printed = spend_cli(config, capsys, "--entity", "key", "--id", created["token"][:KEY_ID_LENGTH])

    assert shown["info"]["spend"] > 0
    assert printed["total_spend"] == shown["info"]["spend"] == shown["info"]["total_spend"]


async def test_per_model_and_soft_key_budgets_are_described_as_enforced(gateway: Gateway) -> None:
    per_model = {"gpt-4o-mini": {"budget_limit": 0.5, "time_period": "1d"}}
    key = (await gateway.post("/key/generate", {"soft_budget": 3, "model_max_budget": per_model}))["key"]

    spent = await gateway.chat(key, 150) * MICRO
    info = await gateway.key_info(key)

    by_model = {b["model"]: b for b in info["budgets"]}
    assert set(by_model) == {None, "gpt-4o-mini"}
    assert (by_model[None]["max_budget"], by_model[None]["soft_budget"]) == (None, 3.0)
    assert by_model["gpt-4o-mini"]["max_budget"] == 0.5
    assert by_model["gpt-4o-mini"]["remaining"] == pytest.approx(0.5 - spent)
    assert by_model["gpt-4o-mini"]["budget_reset_at"] is not None
    # The headline is the budget over every model: soft only, so nothing "remains".
    assert info["spend"] == pytest.approx(spent)
    assert info["soft_budget"] == 3
    assert info["remaining_budget"] is None


async def test_rotating_a_key_keeps_its_spend_and_its_budget(gateway: Gateway) -> None:
    # 400 micro-USD; requests reserve max_tokens micro-USD until they settle at what they used.
    created = await gateway.post("/key/generate", {"max_budget": 0.0004})
    used = await gateway.chat(created["key"], 300)
    spent = used * MICRO

    rotated = await gateway.post("/key/regenerate", {"key": created["key"]})

    assert rotated["key_id"] == created["key_id"]
    assert rotated["token"] != created["token"]
    # The regenerate response shows the spend too, not a fresh 0.
    assert rotated["spend"] == pytest.approx(spent)
    info = await gateway.key_info(rotated["key"])
    assert info["spend"] == pytest.approx(spent)
    assert info["remaining_budget"] == pytest.approx(0.0004 - spent)
    budget_info = await gateway.get("/budget/info", entity="key", id=created["key_id"])
    assert budget_info["total_spend"] == pytest.approx(spent)
    # The budget is still spent: a request that would fit a fresh budget does not fit what is left.
    body = {"model": "gpt-4o-mini", "max_tokens": 401 - used, "messages": [{"role": "user", "content": "hi"}]}
    denied = await gateway.client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {rotated['key']}"}
    )
    assert denied.status_code == 429, denied.text


async def test_key_changes_answer_with_the_spend_budgets_counts(gateway: Gateway) -> None:
    await gateway.post("/organization/new", {"organization_id": "o-resp"})
    await gateway.post("/customer/new", {"user_id": "c-resp"})
    created = await gateway.post("/key/generate", {"max_budget": 1, "organization_id": "o-resp"})
    assert created["spend"] == 0.0
    body = {"model": "gpt-4o-mini", "max_tokens": 120, "user": "c-resp", "messages": [{"role": "user", "content": "x"}]}
    response = await gateway.client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {created['key']}"}
    )
    assert response.status_code == 200, response.text
    spent = response.json()["usage"]["completion_tokens"] * MICRO

    for path, extra in (("/key/update", {"key_alias": "renamed"}), ("/key/block", {}), ("/key/unblock", {})):
        changed = await gateway.post(path, {"key": created["token"], **extra})
        assert changed["spend"] == pytest.approx(spent), path
        assert changed["remaining_budget"] == pytest.approx(1 - spent), path
    orgs = (await gateway.get("/organization/list"))["organizations"]
    assert [(o["organization_id"], o["spend"]) for o in orgs] == [("o-resp", pytest.approx(spent))]
    updated_org = await gateway.post("/organization/update", {"organization_id": "o-resp", "metadata": {"a": 1}})
    assert updated_org["spend"] == pytest.approx(spent)
    customers = await gateway.get("/customer/list")
    assert [c["user_id"] for c in customers] == ["c-resp"]
    # What budgets counts for the end user: the identity names none, so nothing (never a stored made-up value).
    info = await gateway.get("/customer/info", end_user_id="c-resp")
    assert customers[0]["spend"] == info["spend"]
