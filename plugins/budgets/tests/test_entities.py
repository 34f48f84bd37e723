"""Every entity budget, per-model budgets, temporary increases, periods and soft-budget alerts (both stores)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from authcore_budgets.config import parse_duration
from authcore_budgets.entities import BudgetRule, counter_for, key_rules
from budget_helpers import NICKEL_TOKENS, RunnerFactory, budgets_of, chat, spend

from authcore import AuthEvent, EmptyConfig, Identity, Plugin, Usage, hookimpl
from authcore.runner import Runner
from authcore.testing import app_client, make_request


async def set_budget(runner: Runner, **fields: Any) -> None:
    async with app_client(runner) as client:
        response = await client.post("/budget/set", json=fields, headers={"authorization": "Bearer admin"})
    assert response.status_code == 200, response.text


IDENTITY = {"key_id": "k1", "team_id": "t1", "user_id": "u1", "org_id": "o1", "end_user_id": "e1"}


async def test_each_stored_entity_budget_stops_at_its_limit(make_runner: RunnerFactory) -> None:
    for entity, entity_id in [
        ("team", "t1"),
        ("user", "u1"),
        ("team_member", "t1/u1"),
        ("org", "o1"),
        ("end_user", "e1"),
        ("key", "k1"),
    ]:
        # Fresh ids per entity: the database outlives each runner.
        tagged = {name: f"{value}-{entity}" for name, value in IDENTITY.items()}
        target = "/".join(f"{part}-{entity}" for part in entity_id.split("/"))
        async with make_runner({"tok": tagged, "other": {"key_id": f"k2-{entity}"}}) as runner:
            await set_budget(runner, entity=entity, id=target, max_budget=0.10)
            assert [await spend(runner, "tok") for _ in range(3)] == [200, 200, 429], entity
            # Another principal outside that entity is not affected.
            assert await spend(runner, "other") == 200, entity


async def test_key_budget_from_identity_limits(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"max_budget": 0.15}}}) as runner:
        assert [await spend(runner, "tok") for _ in range(4)] == [200, 200, 200, 429]


async def test_a_key_whose_limits_change_is_charged_against_its_new_limits(make_runner: RunnerFactory) -> None:
    # The same key id, seen first with a $1 budget and then (after an update) with none left.
    identities = {
        "before": {"key_id": "k1", "limits": {"max_budget": 1.0}},
        "after": {"key_id": "k1", "limits": {"max_budget": 0.05}},
    }
    async with make_runner(identities) as runner:
        assert [await spend(runner, "before"), await spend(runner, "before")] == [200, 200]
        assert await spend(runner, "after") == 429
        assert await spend(runner, "before") == 200


async def test_global_budget_covers_every_principal(make_runner: RunnerFactory) -> None:
    async with make_runner({"a": {"key_id": "a"}, "b": {"key_id": "b"}}, global_budget=0.10) as runner:
        assert [await spend(runner, "a"), await spend(runner, "b"), await spend(runner, "a")] == [200, 200, 429]


async def test_denial_is_429_with_retry_after_until_the_period_resets(make_runner: RunnerFactory) -> None:
    identity = {"key_id": "k1", "limits": {"max_budget": 0.05, "budget_duration": "1h"}}
    async with make_runner({"tok": identity}) as runner:
        plugin = budgets_of(runner)
        hour = 3_600_000
        start = (time.time_ns() // 1_000_000 // hour + 1) * hour
        plugin.now_ms = lambda: start + 600_000  # ten minutes into an hour
        assert await spend(runner, "tok") == 200
        result = await runner.authenticate(chat("tok"))
        assert result.error is not None
        assert result.status_code == 429
        assert result.error.code == "budget_exceeded"
        assert result.error.response_headers()["retry-after"] == str(50 * 60)


async def test_budget_period_resets(make_runner: RunnerFactory) -> None:
    identity = {"key_id": "k1", "limits": {"max_budget": 0.05, "budget_duration": "30d"}}
    async with make_runner({"tok": identity}) as runner:
        plugin = budgets_of(runner)
        day = 86_400_000
        start = (time.time_ns() // 1_000_000 // (30 * day) + 1) * 30 * day
        plugin.now_ms = lambda: start + day
        assert [await spend(runner, "tok"), await spend(runner, "tok")] == [200, 429]
        plugin.now_ms = lambda: start + 29 * day
        assert await spend(runner, "tok") == 429
        plugin.now_ms = lambda: start + 30 * day
        assert [await spend(runner, "tok"), await spend(runner, "tok")] == [200, 429]


async def test_per_model_budget_applies_to_that_model_only(make_runner: RunnerFactory) -> None:
    identity = {"key_id": "k1", "limits": {"model_max_budget": {"m5c": {"budget_limit": 0.05, "time_period": "1d"}}}}
    async with make_runner({"tok": identity, "eu": {"key_id": "k2", "end_user_id": "e1"}}) as runner:
        assert [await spend(runner, "tok"), await spend(runner, "tok")] == [200, 429]
        other = Usage("priced-input", 10, 10)
        assert await spend(runner, "tok", usage=other, model="priced-input", max_tokens=10) == 200
        # An end user's per-model budget, stored through the admin API.
        await set_budget(runner, entity="end_user", id="e1", model="m5c", max_budget=0.05)
        assert [await spend(runner, "eu"), await spend(runner, "eu")] == [200, 429]
        assert await spend(runner, "eu", usage=other, model="priced-input", max_tokens=10) == 200


async def test_temporary_increase_counts_until_it_expires(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "team_id": "t1"}}) as runner:
        plugin = budgets_of(runner)
        expiry = datetime.now(UTC) + timedelta(hours=1)
        await set_budget(
            runner,
            entity="team",
            id="t1",
            max_budget=0.05,
            temp_budget_increase=0.05,
            temp_budget_expiry=expiry.isoformat(),
        )
        assert [await spend(runner, "tok"), await spend(runner, "tok"), await spend(runner, "tok")] == [200, 200, 429]
        # After the expiry the base limit alone applies again.
        plugin.now_ms = lambda: int((expiry + timedelta(seconds=1)).timestamp() * 1000)
        assert await spend(runner, "tok") == 429
        await set_budget(runner, entity="team", id="t1", max_budget=0.15)
        assert await spend(runner, "tok") == 200


class Recorder(Plugin[EmptyConfig]):
    events: ClassVar[list[AuthEvent]] = []

    @hookimpl
    async def on_event(self, event: AuthEvent) -> None:
        type(self).events.append(event)


async def test_soft_budget_emits_one_alert_when_crossed_and_does_not_deny(make_runner: RunnerFactory) -> None:
    Recorder.events = []
    identity = {"key_id": "k1", "limits": {"soft_budget": 0.08}}
    async with make_runner({"tok": identity}, extra={"recorder": (Recorder, {})}) as runner:
        assert [await spend(runner, "tok") for _ in range(4)] == [200, 200, 200, 200]
    alerts = [event for event in Recorder.events if event.kind == "budgets.soft_limit"]
    assert len(alerts) == 1
    assert alerts[0].data["entity"] == "key"
    assert alerts[0].data["entity_id"] == "k1"
    assert alerts[0].data["spend"] == 0.10
    assert alerts[0].data["soft_budget"] == 0.08


async def test_zero_cost_model_skips_budgets(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"max_budget": 0}}}) as runner:
        assert await spend(runner, "tok", model="free") == 200
        assert await spend(runner, "tok") == 429


async def test_unpriced_model_policy(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"max_budget": 1}}}) as runner:
        result = await runner.authenticate(chat("tok", model="mystery"))
        assert result.status_code == 403
        assert result.error is not None
        assert result.error.code == "model_not_priced"
    priced = {
        "unpriced_models": "default_price",
        "default_price": {"input_per_1m_tokens": 0, "output_per_1m_tokens": 50},
    }
    async with make_runner({"tok": {"key_id": "k1", "limits": {"max_budget": 0.05}}}, **priced) as runner:
        assert [await spend(runner, "tok", model="mystery"), await spend(runner, "tok", model="mystery")] == [200, 429]


async def test_admission_is_all_or_nothing_across_entities(make_runner: RunnerFactory) -> None:
    """A request denied by one budget holds nothing on the others."""
    async with make_runner({"tok": IDENTITY}) as runner:
        await set_budget(runner, entity="team", id="t1", max_budget=1.0)
        await set_budget(runner, entity="user", id="u1", max_budget=0.0)
        for _ in range(5):
            assert await spend(runner, "tok") == 429
        async with app_client(runner) as client:
            info = await client.get(
                "/budget/info", params={"entity": "team", "id": "t1"}, headers={"authorization": "Bearer admin"}
            )
        assert info.json()["budgets"][0]["reserved"] == 0
        assert info.json()["budgets"][0]["spend"] == 0


async def test_in_process_race_admits_exactly_twenty(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"max_budget": 1.0}}}) as runner:
        statuses = await asyncio.gather(*(spend(runner, "tok") for _ in range(100)))
        assert statuses.count(200) == 20
        assert statuses.count(429) == 80
        total = await budgets_of(runner).accountant.ledger.total(_key_filter("k1"))
        assert total == 1_000_000


async def test_admin_info_shows_spend_and_remaining(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": IDENTITY, "viewer": {"key_id": "v", "role": "proxy_admin_viewer"}}) as runner:
        await set_budget(runner, entity="team", id="t1", max_budget=1.0, soft_budget=0.5, budget_duration="30d")
        await spend(runner, "tok")
        async with app_client(runner) as client:
            headers = {"authorization": "Bearer viewer"}
            info = await client.get("/budget/info", params={"entity": "team", "id": "t1"}, headers=headers)
            assert info.status_code == 200
            budget = info.json()["budgets"][0]
            assert (budget["spend"], budget["remaining"], budget["max_budget"]) == (0.05, 0.95, 1.0)
            assert budget["budget_reset_at"] is not None
            assert info.json()["total_spend"] == 0.05
            denied = await client.post(
                "/budget/set", json={"entity": "team", "id": "t1", "max_budget": 9}, headers=headers
            )
            assert denied.status_code == 403
            anonymous = await client.get(
                "/budget/info", params={"entity": "team", "id": "t1"}, headers={"authorization": "Bearer tok"}
            )
            assert anonymous.status_code == 403
            bad = await client.post(
                "/budget/set",
                json={"entity": "global", "id": "x", "max_budget": 1},
                headers={"authorization": "Bearer admin"},
            )
            assert bad.status_code == 400


def _key_filter(key_id: str) -> Any:
    from authcore_budgets.entities import LedgerFilter

    return LedgerFilter((("key_id", key_id),), None, 0, None)


_ = httpx


async def test_spend_before_a_budget_exists_counts_once_it_is_set(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": IDENTITY}) as runner:
        assert [await spend(runner, "tok") for _ in range(3)] == [200, 200, 200]
        await set_budget(runner, entity="team", id="t1", max_budget=0.20, budget_duration="30d")
        assert [await spend(runner, "tok"), await spend(runner, "tok")] == [200, 429]
        async with app_client(runner) as client:
            info = await client.get(
                "/budget/info", params={"entity": "user", "id": "u1"}, headers={"authorization": "Bearer admin"}
            )
        assert info.json()["total_spend"] == 0.20


async def test_a_free_model_in_the_body_does_not_hide_a_priced_one_in_the_path(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"max_budget": 0.05}}}) as runner:
        payload = {"model": "free", "max_tokens": NICKEL_TOKENS, "messages": []}
        headers = {"authorization": "Bearer tok"}
        path = "/openai/deployments/m5c/chat/completions"
        first = await runner.authenticate(make_request("POST", path, headers=headers, json=payload))
        assert first.status_code == 200
        second = await runner.authenticate(make_request("POST", path, headers=headers, json=payload))
        assert second.status_code == 429


async def test_holds_of_an_unsettled_request_expire_after_the_ttl(make_runner: RunnerFactory) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"max_budget": 0.05}}}, hold_ttl_s=0.3) as runner:
        abandoned = await runner.authenticate(chat("tok"))  # never settled, as if its replica died
        assert abandoned.status_code == 200
        assert await spend(runner, "tok") == 429
        await asyncio.sleep(0.4)
        assert await spend(runner, "tok") == 200


async def test_soft_budget_alert_is_posted_to_the_webhook(make_runner: RunnerFactory) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        await received.put(head + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/alerts?token=hook-secret-123"
    identity = {"key_id": "k1", "limits": {"soft_budget": 0.04}}
    async with server, make_runner({"tok": identity}, soft_budget_webhook_url=url) as runner:
        assert await spend(runner, "tok") == 200
        request = await asyncio.wait_for(received.get(), 5)
    assert request.startswith(b"POST /alerts?token=hook-secret-123 ")
    body = json.loads(request.split(b"\r\n\r\n", 1)[1])
    assert body["event"] == "budgets.soft_limit"
    assert (body["entity"], body["entity_id"], body["spend"]) == ("key", "k1", 0.05)
    assert received.empty()


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def test_monthly_budget_resets_on_the_first_of_the_next_calendar_month(make_runner: RunnerFactory) -> None:
    identity = {"key_id": "k-month", "limits": {"max_budget": 0.05, "budget_duration": "1mo"}}
    async with make_runner({"tok": identity}) as runner:
        plugin = budgets_of(runner)
        plugin.now_ms = lambda: _ms(datetime(2030, 1, 31, 12, tzinfo=UTC))
        assert await spend(runner, "tok") == 200
        result = await runner.authenticate(chat("tok"))
        assert result.status_code == 429
        assert result.error is not None
        # Twelve hours to Feb 1, 00:00 UTC: not 30 days, not 31.
        assert result.error.response_headers()["retry-after"] == str(12 * 3600)
        plugin.now_ms = lambda: _ms(datetime(2030, 2, 1, tzinfo=UTC))
        assert [await spend(runner, "tok"), await spend(runner, "tok")] == [200, 429]
        # February has 28 days in 2030: still the same period on the 28th, a new one on March 1.
        plugin.now_ms = lambda: _ms(datetime(2030, 2, 28, 23, 59, tzinfo=UTC))
        assert await spend(runner, "tok") == 429
        plugin.now_ms = lambda: _ms(datetime(2030, 3, 1, tzinfo=UTC))
        assert await spend(runner, "tok") == 200


def test_month_counters_follow_the_calendar() -> None:
    rule = BudgetRule("key", "k1", None, 100, None, parse_duration("1mo"))
    counter = counter_for(rule, {"key_id": "k1"}, _ms(datetime(2024, 2, 10, 8, tzinfo=UTC)), grace_ms=0)
    assert counter.ledger.start_ms == _ms(datetime(2024, 2, 1, tzinfo=UTC))
    assert counter.period_end_ms == _ms(datetime(2024, 3, 1, tzinfo=UTC))
    assert ":1mo:" in counter.name
    assert rule.duration_s is None
    quarter = BudgetRule("key", "k1", None, 100, None, parse_duration("3mo"))
    counter = counter_for(quarter, {"key_id": "k1"}, _ms(datetime(2024, 5, 31, tzinfo=UTC)), grace_ms=0)
    assert (counter.ledger.start_ms, counter.period_end_ms) == (
        _ms(datetime(2024, 4, 1, tzinfo=UTC)),
        _ms(datetime(2024, 7, 1, tzinfo=UTC)),
    )


def test_fixed_period_counters_keep_their_names() -> None:
    # Counters live in Redis under these names: a deploy must not rename (and so reset) them.
    rule = BudgetRule("key", "k1", None, 100, None, parse_duration("1h"))
    counter = counter_for(rule, {"key_id": "k1"}, 3_600_000 * 5 + 7, grace_ms=0)
    assert counter.name == f"key:k1:*:3600:{3_600_000 * 5}"
    assert rule.duration_s == 3600


async def test_a_key_temporary_increase_in_identity_limits_counts_until_it_expires(make_runner: RunnerFactory) -> None:
    expiry = datetime.now(UTC) + timedelta(hours=1)
    limits = {"max_budget": 0.05, "temp_budget_increase": 0.05, "temp_budget_expiry": expiry.isoformat()}
    async with make_runner({"tok": {"key_id": "k-temp", "limits": limits}}) as runner:
        plugin = budgets_of(runner)
        plugin.now_ms = lambda: _ms(expiry - timedelta(minutes=1))
        assert await spend(runner, "tok") == 200
        assert await has_room(runner, "tok")
        # One second past the expiry the same key, with the same limits, has only its base budget (spent).
        plugin.now_ms = lambda: _ms(expiry + timedelta(seconds=1))
        assert not await has_room(runner, "tok")


async def has_room(runner: Runner, token: str) -> bool:
    """Whether one more nickel fits now; the hold is given back either way."""
    result = await runner.authenticate(chat(token))
    await runner.settle(result, completed=False)
    return result.error is None


def test_temporary_increase_rules() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    later = (now + timedelta(hours=1)).isoformat()

    def limit_at(moment: datetime, **limits: Any) -> list[tuple[int, int | None]]:
        identity = Identity(auth_method="api_key", key_id="k1", limits=limits)
        return [(rule.limit, rule.valid_until_ms) for rule in key_rules(identity, "m", _ms(moment))]

    base = {"max_budget": 1, "temp_budget_increase": 0.5}
    assert limit_at(now, **base, temp_budget_expiry=later) == [(1_500_000, _ms(now + timedelta(hours=1)))]
    assert limit_at(now + timedelta(hours=1), **base, temp_budget_expiry=later) == [(1_000_000, None)]
    # No offset means UTC, as virtual_keys writes it.
    assert limit_at(now, **base, temp_budget_expiry="2030-01-01T00:30:00") == [(1_500_000, _ms(now) + 1_800_000)]
    # Half a pair, an unreadable expiry, or no hard budget to raise: nothing is added.
    assert limit_at(now, max_budget=1, temp_budget_increase=0.5) == [(1_000_000, None)]
    assert limit_at(now, **base, temp_budget_expiry="soon") == [(1_000_000, None)]
    assert limit_at(now, soft_budget=1, temp_budget_increase=0.5, temp_budget_expiry=later) == [(-1, None)]


async def test_budgets_handed_over_in_identity_limits_hold_for_team_and_org(make_runner: RunnerFactory) -> None:
    # What virtual_keys hands over for a key's team and organization (`/team/new {"max_budget": ...}`).
    for kind, id_field in [("team", "team_id"), ("org", "org_id")]:
        member = {"key_id": f"k-{kind}-1", id_field: f"{kind}-h", "limits": {kind: {"max_budget": 0.10}}}
        other_member = {"key_id": f"k-{kind}-2", id_field: f"{kind}-h", "limits": {kind: {"max_budget": 0.10}}}
        outsider = {"key_id": f"k-{kind}-3", id_field: f"{kind}-other"}
        async with make_runner({"a": member, "b": other_member, "c": outsider}) as runner:
            # Two keys of one team share the team's $0.10: the third nickel is refused, whoever sends it.
            assert [await spend(runner, "a"), await spend(runner, "b"), await spend(runner, "a")] == [200, 200, 429]
            assert await spend(runner, "c") == 200, kind


async def test_a_stored_entity_budget_replaces_the_handed_over_one(make_runner: RunnerFactory) -> None:
    member = {"key_id": "k-rep", "team_id": "t-rep", "limits": {"team": {"max_budget": 0.05}}}
    async with make_runner({"tok": member}) as runner:
        await set_budget(runner, entity="team", id="t-rep", max_budget=0.15)
        # $0.15 from /budget/set, not the handed-over $0.05.
        assert [await spend(runner, "tok") for _ in range(4)] == [200, 200, 200, 429]


async def test_an_unreadable_handed_over_budget_fails_closed(make_runner: RunnerFactory) -> None:
    from authcore_budgets.entities import applicable_rules

    # Not a mapping: nothing is handed over for the team.
    odd = Identity(auth_method="api_key", key_id="k", team_id="t", limits={"team": "not a mapping"})
    assert applicable_rules(odd, "m5c", {}, None) == []
    # A mapping with an unreadable budget: the request is refused (503), never let through unbudgeted.
    bad = {"key_id": "k-bad", "team_id": "t-bad", "limits": {"team": {"max_budget": "lots"}}}
    async with make_runner({"tok": bad}) as runner:
        assert await spend(runner, "tok") == 503
