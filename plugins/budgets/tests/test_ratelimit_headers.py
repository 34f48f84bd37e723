"""x-ratelimit-* headers on allowed responses, through the middleware, on both stores; one script each way."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from budget_helpers import NICKEL_TOKENS, RunnerFactory

from authcore.testing import app_client

TOKEN = {"authorization": "Bearer tok"}
ADMIN = {"authorization": "Bearer admin"}


async def post(client: httpx.AsyncClient, model: str = "m5c", **body: Any) -> httpx.Response:
    payload = {"model": model, "max_tokens": NICKEL_TOKENS, "messages": [], **body}
    return await client.post("/v1/chat/completions", json=payload, headers=TOKEN)


def seconds(value: str) -> int:
    assert value.endswith("s"), value
    return int(value[:-1])


async def test_allowed_responses_count_down_the_requests_left(make_runner: RunnerFactory) -> None:
    async with (
        make_runner({"tok": {"key_id": "k1", "limits": {"rpm_limit": 4, "max_budget": 1}}}) as runner,
        app_client(runner) as client,
    ):
        responses = [await post(client) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]
    allowed = responses[:4]
    assert [r.headers["x-ratelimit-limit-requests"] for r in allowed] == ["4"] * 4
    assert [r.headers["x-ratelimit-remaining-requests"] for r in allowed] == ["3", "2", "1", "0"]
    # Each request takes 15 s of the minute: the bucket is full again that much later per request.
    resets = [seconds(r.headers["x-ratelimit-reset-requests"]) for r in allowed]
    assert resets == sorted(resets)
    assert 14 <= resets[0] <= 15
    assert 59 <= resets[-1] <= 60
    # No tpm limit applies, so no token headers.
    assert "x-ratelimit-limit-tokens" not in allowed[0].headers
    # The 429 speaks the same headers, from the same function.
    denied = responses[4]
    assert denied.headers["x-ratelimit-limit-requests"] == "4"
    assert denied.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= seconds(denied.headers["x-ratelimit-reset-requests"]) <= 15
    assert 1 <= int(denied.headers["retry-after"]) <= 15


async def test_tokens_left_drop_by_what_settled_requests_used(make_runner: RunnerFactory) -> None:
    # 6000 tokens a minute refill at 100 a second: slow next to the ~1060 tokens each request uses.
    limits = {"rpm_limit": 100, "tpm_limit": 6000}
    async with make_runner({"tok": {"key_id": "k1", "limits": limits}}) as runner, app_client(runner) as client:
        responses = [await post(client) for _ in range(3)]
    for response in responses:
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit-tokens"] == "6000"
        assert response.headers["x-ratelimit-limit-requests"] == "100"
    tokens = [int(r.headers["x-ratelimit-remaining-tokens"]) for r in responses]
    assert tokens[0] == 6000
    # The echo app reports no usage, so each settlement charges the request's token bound:
    # every body byte a prompt token plus max_tokens (less what refilled in between).
    for before, after in itertools.pairwise(tokens):
        assert NICKEL_TOKENS - 100 < before - after < NICKEL_TOKENS + 100
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses] == ["99", "98", "97"]
    assert seconds(responses[0].headers["x-ratelimit-reset-tokens"]) == 0
    assert 10 <= seconds(responses[2].headers["x-ratelimit-reset-tokens"]) <= 22


async def test_the_tightest_limit_of_key_and_team_is_reported(make_runner: RunnerFactory) -> None:
    identities = {"tok": {"key_id": "k1", "team_id": "t1", "limits": {"rpm_limit": 10}}}
    async with make_runner(identities) as runner, app_client(runner) as client:
        response = await client.post("/budget/set", json={"entity": "team", "id": "t1", "rpm_limit": 3}, headers=ADMIN)
        assert response.status_code == 200, response.text
        first = await post(client)
        assert first.headers["x-ratelimit-limit-requests"] == "3"
        assert first.headers["x-ratelimit-remaining-requests"] == "2"
        response = await client.post(
            "/budget/set", json={"entity": "team", "id": "t1", "rpm_limit": 1000}, headers=ADMIN
        )
        assert response.status_code == 200, response.text
        # Now the key's own limit is the tighter one (it has taken one request too).
        second = await post(client)
        assert second.headers["x-ratelimit-limit-requests"] == "10"
        assert second.headers["x-ratelimit-remaining-requests"] == "8"


async def test_no_rate_limit_no_headers(make_runner: RunnerFactory) -> None:
    async with (
        make_runner({"tok": {"key_id": "k1", "limits": {"max_budget": 1}}}) as runner,
        app_client(runner) as client,
    ):
        response = await post(client)
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("x-ratelimit")]


async def test_a_budget_refusal_takes_no_request_from_the_rate_limit(make_runner: RunnerFactory) -> None:
    identities = {"tok": {"key_id": "k1", "team_id": "t1", "limits": {"rpm_limit": 3}}}
    async with make_runner(identities) as runner, app_client(runner) as client:
        assert (
            await client.post("/budget/set", json={"entity": "team", "id": "t1", "max_budget": 0}, headers=ADMIN)
        ).status_code == 200
        refused = [await post(client) for _ in range(5)]
        assert {r.status_code for r in refused} == {429}
        assert {r.json()["error"]["code"] for r in refused} == {"budget_exceeded"}
        raised = await client.post("/budget/set", json={"entity": "team", "id": "t1", "max_budget": 1}, headers=ADMIN)
        assert raised.status_code == 200
        allowed = await post(client)
    assert allowed.status_code == 200
    assert allowed.headers["x-ratelimit-remaining-requests"] == "2"


async def test_a_rate_refusal_holds_nothing_on_the_budget(make_runner: RunnerFactory) -> None:
    async with (
        make_runner({"tok": {"key_id": "k1", "limits": {"rpm_limit": 1}}}) as runner,
        app_client(runner) as client,
    ):
        budget = {"entity": "key", "id": "k1", "max_budget": 1}
        assert (await client.post("/budget/set", json=budget, headers=ADMIN)).status_code == 200
        assert (await post(client)).status_code == 200
        refused = [await post(client) for _ in range(3)]
        assert {r.json()["error"]["code"] for r in refused} == {"rate_limit_exceeded"}
        info = await client.get("/budget/info", params={"entity": "key", "id": "k1"}, headers=ADMIN)
    state = info.json()["budgets"][0]
    assert state["reserved"] == 0
    assert state["spend"] == 0.05  # the one admitted request, charged its bound (no usage reported)
