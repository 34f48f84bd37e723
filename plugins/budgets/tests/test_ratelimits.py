"""rpm, tpm and parallel-request limits on both stores: 429 with Retry-After and x-ratelimit-* headers."""

from __future__ import annotations

import asyncio
from typing import Any

from budget_helpers import RunnerFactory, chat

from authcore import Usage
from authcore.runner import Runner
from authcore.testing import app_client, make_request

ADMIN_HEADERS = {"authorization": "Bearer admin"}


async def call(
    runner: Runner, who: str = "tok", *, settle: bool = True, usage: Usage | None = None, **body: Any
) -> int:
    result = await runner.authenticate(chat(who, **body))
    if result.error is None and settle:
        result.usage = usage or Usage("m5c", 1, 1)
        await runner.settle(result, completed=True)
    return result.status_code


async def test_rpm_admits_the_limit_then_429_with_headers(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"rpm_limit": 3}}, "other": {"key_id": "k2"}}) as runner:
        assert [await call(runner) for _ in range(3)] == [200, 200, 200]
        denied = await runner.authenticate(chat("tok"))
        assert denied.status_code == 429
        assert denied.error is not None
        headers = denied.error.response_headers()
        assert headers["x-ratelimit-limit-requests"] == "3"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert 1 <= int(headers["retry-after"]) <= 20
        assert denied.error.reason_id == "rate_limited.rpm.key"
        # Requests that name no model count too, and other keys are not affected.
        listing = await runner.authenticate(make_request("GET", "/v1/models", headers={"authorization": "Bearer tok"}))
        assert listing.status_code == 429
        assert await call(runner, "other") == 200


async def test_rpm_holds_under_concurrency(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"rpm_limit": 10}}}) as runner:
        statuses = await asyncio.gather(*(call(runner) for _ in range(50)))
        assert statuses.count(200) == 10
        assert statuses.count(429) == 40


async def test_parallel_requests_are_limited_until_settled(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"max_parallel_requests": 2}}}) as runner:
        first = await runner.authenticate(chat("tok"))
        second = await runner.authenticate(chat("tok"))
        assert (first.status_code, second.status_code) == (200, 200)
        third = await runner.authenticate(chat("tok"))
        assert third.status_code == 429
        assert third.error is not None
        assert third.error.reason_id == "rate_limited.parallel.key"
        await runner.settle(first, completed=False)  # released: its slot is free again
        assert await call(runner) == 200
        await runner.settle(second, completed=True)
        assert [await call(runner), await call(runner)] == [200, 200]


async def test_tpm_counts_the_tokens_actually_used(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"tpm_limit": 1000}}}) as runner:
        assert await call(runner, usage=Usage("m5c", 100, 500)) == 200
        assert await call(runner, usage=Usage("m5c", 100, 500)) == 200
        # 1200 tokens used this minute: the next request waits until the bucket drains below the limit.
        denied = await runner.authenticate(chat("tok"))
        assert denied.status_code == 429
        assert denied.error is not None
        assert denied.error.response_headers()["x-ratelimit-limit-tokens"] == "1000"


async def test_stored_team_rpm_is_shared_by_its_members(make_runner: RunnerFactory) -> None:
    async with make_runner({"a": {"key_id": "a", "team_id": "t1"}, "b": {"key_id": "b", "team_id": "t1"}}) as runner:
        async with app_client(runner) as client:
            response = await client.post(
                "/budget/set", json={"entity": "team", "id": "t1", "rpm_limit": 2}, headers=ADMIN_HEADERS
            )
            assert response.status_code == 200
            assert response.json()["rpm_limit"] == 2
            per_model = {"entity": "team", "id": "t1", "model": "m5c", "rpm_limit": 2}
            assert (await client.post("/budget/set", json=per_model, headers=ADMIN_HEADERS)).status_code == 400
        assert [await call(runner, "a"), await call(runner, "b"), await call(runner, "a")] == [200, 200, 429]


async def test_a_budget_deny_frees_the_parallel_slot(make_runner: RunnerFactory) -> None:
    identity = {"key_id": "k1", "limits": {"max_parallel_requests": 1, "max_budget": 0}}
    async with make_runner({"tok": identity}) as runner:
        assert await call(runner) == 429  # the budget denies after the slot was taken
        assert await call(runner, model="free") == 200  # so the slot is free for a request the budget allows


async def test_rate_limits_handed_over_for_a_team_are_shared_by_its_keys(make_runner: RunnerFactory) -> None:
    team = {"team": {"rpm_limit": 2}}
    async with make_runner(
        {
            "a": {"key_id": "ka-h", "team_id": "t-h", "limits": team},
            "b": {"key_id": "kb-h", "team_id": "t-h", "limits": team},
            "c": {"key_id": "kc-h", "team_id": "t-other", "limits": team},
        }
    ) as runner:
        statuses = [(await runner.authenticate(chat(token))).status_code for token in ("a", "b", "a")]
        assert statuses == [200, 200, 429]
        assert (await runner.authenticate(chat("c"))).status_code == 200


async def test_a_per_model_rpm_limit_counts_only_that_models_requests(make_runner: RunnerFactory) -> None:
    # LiteLLM keeps these in the key's metadata.
    key = {"key_id": "k-pm", "metadata": {"model_rpm_limit": {"m5c": 1}}}
    async with make_runner({"tok": key}) as runner:
        assert (await runner.authenticate(chat("tok", model="m5c"))).status_code == 200
        refused = await runner.authenticate(chat("tok", model="m5c"))
        assert refused.status_code == 429
        assert refused.error is not None
        assert refused.error.headers.get("x-ratelimit-limit-requests") == "1"
        # Another model of the same key is not limited by it.
        assert (await runner.authenticate(chat("tok", model="m1c"))).status_code == 200


async def test_per_model_limits_in_identity_limits_and_bad_values(make_runner: RunnerFactory) -> None:
    async with make_runner(
        {
            "tok": {"key_id": "k-pm2", "limits": {"model_rpm_limit": {"m1c": 2}}},
            "bad": {"key_id": "k-pm3", "metadata": {"model_rpm_limit": ["m1c"]}},
        }
    ) as runner:
        statuses = [(await runner.authenticate(chat("tok", model="m1c"))).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        # An unreadable per-model limit refuses the request rather than ignoring the limit.
        assert (await runner.authenticate(chat("bad", model="m1c"))).status_code == 503
