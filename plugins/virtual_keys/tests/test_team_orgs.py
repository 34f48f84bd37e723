"""Teams in organizations, targeted invalidation of organization/project changes, and end users on requests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from authcore_virtual_keys.cache import SnapshotCache
from authcore_virtual_keys.config import VirtualKeysConfig
from authcore_virtual_keys.end_users import DEFAULT_MODEL_FIELD, REGION_FIELD, EndUserCache, EndUserRecord
from authcore_virtual_keys.invalidation import ALL, Change
from authcore_virtual_keys.records import KeySnapshot, snapshot_from_row
from authcore_virtual_keys.tables import end_users
from pydantic import ValidationError
from sqlalchemy import delete

from .conftest import REVOCATION_BOUND_S, Gateway, Replica, open_gateway, plugin_config, seconds_until, warm


async def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def refused(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["error"]["code"]
    return code


# -- teams in organizations --------------------------------------------------


async def test_a_team_names_an_organization_that_exists(gw: Gateway) -> None:
    assert refused(await gw.admin("/team/new", {"team_id": "t1", "organization_id": "nope"})) == (
        "organization_not_found"
    )
    await ok(await gw.admin("/organization/new", {"organization_id": "o1"}))
    created = await ok(await gw.admin("/team/new", {"team_id": "t1", "organization_id": "o1"}))
    assert created["organization_id"] == "o1"
    assert refused(await gw.admin("/team/update", {"team_id": "t1", "organization_id": "nope"})) == (
        "organization_not_found"
    )
    info = await ok(await gw.admin("/team/info", {"team_id": "t1"}, method="GET"))
    assert info["team_info"]["organization_id"] == "o1"
    # Moved out of the organization.
    assert (await ok(await gw.admin("/team/update", {"team_id": "t1", "organization_id": None})))[
        "organization_id"
    ] is None


async def test_a_teams_key_is_in_the_teams_organization_and_within_its_models(gw: Gateway) -> None:
    await ok(await gw.admin("/organization/new", {"organization_id": "o1", "models": ["gpt-4o", "o3"]}))
    await gw.team("t1", organization_id="o1")

    # The organization bounds the key even though the key names no organization.
    exceeding = await gw.admin("/key/generate", {"team_id": "t1", "models": ["gpt-4o-mini"]})
    assert refused(exceeding) == "invalid_request"
    key = await gw.generate(team_id="t1")
    assert key["organization_id"] is None  # follows the team rather than copying it

    allowed = await gw.chat(key["key"], "gpt-4o")
    assert allowed.status_code == 200
    assert allowed.json()["identity"]["org_id"] == "o1"
    assert (await gw.chat(key["key"], "gpt-4o-mini")).status_code == 403

    # A later change of the team's organization applies to the key (its snapshot is dropped).
    await ok(await gw.admin("/organization/new", {"organization_id": "o2", "models": ["gpt-4o-mini"]}))
    await ok(await gw.admin("/team/update", {"team_id": "t1", "organization_id": "o2"}))
    moved = await gw.chat(key["key"], "gpt-4o-mini")
    assert moved.status_code == 200
    assert moved.json()["identity"]["org_id"] == "o2"
    assert (await gw.chat(key["key"], "gpt-4o")).status_code == 403


async def test_a_blocked_or_deleted_teams_organization_denies_the_teams_keys(gw: Gateway) -> None:
    await ok(await gw.admin("/organization/new", {"organization_id": "o1"}))
    await gw.team("t1", organization_id="o1")
    key = (await gw.generate(team_id="t1"))["key"]
    assert (await gw.chat(key)).status_code == 200

    await ok(await gw.admin("/organization/update", {"organization_id": "o1", "blocked": True}))
    denied = await gw.chat(key)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "org_denied"

    # Still referenced by the team: the organization cannot go.
    assert refused(await gw.admin("/organization/delete", {"organization_ids": ["o1"]})) == "in_use"


async def test_a_key_cannot_be_in_another_organization_than_its_team(gw: Gateway) -> None:
    for org in ("o1", "o2"):
        await ok(await gw.admin("/organization/new", {"organization_id": org}))
    await ok(await gw.admin("/project/new", {"project_id": "p2", "organization_id": "o2"}))
    await gw.team("t1", organization_id="o1")
    await gw.team("t-free")

    mismatch = await gw.admin("/key/generate", {"team_id": "t1", "organization_id": "o2"})
    assert refused(mismatch) == "organization_mismatch"
    # A project brings its organization along: o2 again.
    assert refused(await gw.admin("/key/generate", {"team_id": "t1", "project_id": "p2"})) == "organization_mismatch"
    same = await gw.generate(team_id="t1", organization_id="o1")
    assert same["organization_id"] == "o1"

    key = await gw.generate(team_id="t-free", organization_id="o2")
    assert refused(await gw.admin("/key/update", {"key": key["token"], "team_id": "t1"})) == "organization_mismatch"
    assert refused(await gw.admin("/key/update", {"key": same["token"], "organization_id": "o2"})) == (
        "organization_mismatch"
    )
    # Nothing changed.
    assert (await ok(await gw.admin("/key/info", {"key": key["token"]})))["info"]["team_id"] == "t-free"

    # The team cannot move to o2 while one of its keys names o1.
    assert refused(await gw.admin("/team/update", {"team_id": "t1", "organization_id": "o2"})) == (
        "organization_mismatch"
    )


# -- key ids ------------------------------------------------------------------


async def test_a_key_is_found_by_its_key_id_before_and_after_regeneration(gw: Gateway) -> None:
    key = await gw.generate(key_alias="by-id")
    assert key["key_id"] == key["token"][:12]
    rotated = await ok(await gw.admin("/key/regenerate", {"key": key["key"]}))

    found = await ok(await gw.admin("/key/info", {"key": key["key_id"]}))

    assert found["key"] == rotated["token"]
    assert found["info"]["key_id"] == key["key_id"]
    assert refused(await gw.admin("/key/info", {"key": "0" * 12}), 404) == "key_not_found"
    identity = (await gw.chat(rotated["key"])).json()["identity"]
    assert identity["key_id"] == key["key_id"]


# -- targeted invalidation ----------------------------------------------------


def snapshot(token: str, **row: Any) -> KeySnapshot:
    return snapshot_from_row({"token_hash": token, "models": [], "metadata": {}, "blocked": False, **row})


async def test_organization_and_project_changes_drop_only_their_keys() -> None:
    rows = {
        "a": snapshot("a", org_id="o1"),
        "b": snapshot("b", team_id="t1", team_team_id="t1", team_organization_id="o1"),
        "c": snapshot("c", org_id="o2", project_id="p1"),
        "d": snapshot("d"),
    }

    async def load(token: str, max_age_s: float) -> KeySnapshot | None:
        return rows[token]

    cache = SnapshotCache(load, ttl=60, negative_ttl=5, negative_size=10)
    published: list[Change] = []
    cache.set_publisher(published.append)
    for token in rows:
        await cache.get(token)

    cache.invalidate_org("o1")
    assert [token for token in rows if cache.holds(token)] == ["c", "d"]
    cache.invalidate_project("p1")
    assert [token for token in rows if cache.holds(token)] == ["d"]
    # Other replicas get the same targeted change, never `all`.
    assert published == [Change("org", "o1"), Change("project", "p1")]
    assert ALL not in published
    for change in published:
        assert Change.decode(change.encode().encode()) == change

    for token in rows:
        await cache.get(token)
    cache.apply(Change("org", "o2"))
    assert [token for token in rows if cache.holds(token)] == ["a", "b", "d"]


async def test_an_end_user_change_drops_only_that_end_user() -> None:
    reads: list[str] = []

    async def load(user_id: str) -> EndUserRecord | None:
        reads.append(user_id)
        return EndUserRecord(user_id, blocked=False) if user_id != "ghost" else None

    end_user_cache = EndUserCache(load, ttl=60)

    async def no_keys(token: str, max_age_s: float) -> KeySnapshot | None:
        return None

    cache = SnapshotCache(no_keys, ttl=60, negative_ttl=5, negative_size=10, end_users=end_user_cache)
    for user_id in ("c1", "c2", "ghost", "c1", "ghost"):
        await end_user_cache.get(user_id)
    assert reads == ["c1", "c2", "ghost"]  # unknown end users are remembered too

    cache.apply(Change("end_user", "c1"))
    await end_user_cache.get("c1")
    await end_user_cache.get("c2")
    assert reads == ["c1", "c2", "ghost", "c1"]
    cache.clear()
    assert len(end_user_cache) == 0


async def test_concurrent_first_requests_of_one_end_user_share_one_read() -> None:
    reads: list[str] = []
    release = asyncio.Event()

    async def load(user_id: str) -> EndUserRecord | None:
        reads.append(user_id)
        await release.wait()
        return EndUserRecord(user_id, blocked=user_id == "c1")

    end_users = EndUserCache(load, ttl=60)
    waiting = [asyncio.create_task(end_users.get(user_id)) for user_id in ("c1", "c1", "c2", "c1")]
    await asyncio.sleep(0)
    waiting[0].cancel()  # one request giving up does not cancel the read for the others
    release.set()
    found = await asyncio.gather(*waiting[1:])
    assert reads == ["c1", "c2"]
    assert [(record.user_id, record.blocked) for record in found if record is not None] == [
        ("c1", True),
        ("c2", False),
        ("c1", True),
    ]


async def test_an_end_user_read_started_before_a_change_is_not_kept() -> None:
    blocked = False
    release = asyncio.Event()

    async def load(user_id: str) -> EndUserRecord | None:
        answer = EndUserRecord(user_id, blocked=blocked)
        await release.wait()
        return answer

    end_users = EndUserCache(load, ttl=60)
    before = asyncio.create_task(end_users.get("c1"))
    await asyncio.sleep(0)
    end_users.drop("c1")  # blocked through the admin API meanwhile
    blocked = True
    after = asyncio.create_task(end_users.get("c1"))
    await asyncio.sleep(0)
    release.set()
    assert (await before) is not None
    fresh = await after
    assert fresh is not None
    assert fresh.blocked
    kept = await end_users.get("c1")
    assert kept is not None
    assert kept.blocked


# -- end users on requests ----------------------------------------------------


async def test_an_end_users_default_model_and_region_reach_the_gateway_in_the_identity(database_url: str) -> None:
    async with open_gateway(database_url) as gw:
        key = await gw.generate(metadata={"team": "web"})
        await ok(
            await gw.admin("/customer/new", {"user_id": "c1", "default_model": "gpt-4o", "allowed_model_region": "eu"})
        )
        await ok(await gw.admin("/customer/new", {"user_id": "c2"}))

        named = await ok(await gw.chat(key["key"], model=None, user="c1"))
        by_header = await gw.client.post(
            "/v1/chat/completions",
            json={"messages": []},
            headers={"authorization": f"Bearer {key['key']}", "x-litellm-end-user-id": "c1"},
        )
        plain = await ok(await gw.chat(key["key"], user="c2"))
        anonymous = await ok(await gw.chat(key["key"]))

        expected = {"team": "web", DEFAULT_MODEL_FIELD: "gpt-4o", REGION_FIELD: "eu"}
        assert named["metadata"] == expected
        assert (await ok(by_header))["metadata"] == expected
        assert plain["metadata"] == anonymous["metadata"] == {"team": "web"}

        # Cleared through the admin API: the next request no longer carries it.
        await ok(await gw.admin("/customer/update", {"user_id": "c1", "default_model": None}))
        after = await ok(await gw.chat(key["key"], user="c1"))
        assert after["metadata"] == {"team": "web", REGION_FIELD: "eu"}


async def test_end_user_rows_are_cached_and_admin_changes_apply_at_once(database_url: str) -> None:
    async with open_gateway(database_url) as gw:
        key = (await gw.generate())["key"]
        await ok(await gw.admin("/customer/new", {"user_id": "c1", "blocked": True}))
        assert (await gw.chat(key, user="c1")).status_code == 403

        # Removed behind the API's back: the cached row is still trusted, within the freshness bound.
        async with gw.resources.engine().begin() as connection:
            await connection.execute(delete(end_users).where(end_users.c.user_id == "c1"))
        assert (await gw.chat(key, user="c1")).status_code == 403

        # Through the API, at once.
        await ok(await gw.admin("/customer/new", {"user_id": "c1", "blocked": False}))
        assert (await gw.chat(key, user="c1")).status_code == 200
        await ok(await gw.admin("/customer/block", {"user_ids": ["c1"]}))
        assert (await gw.chat(key, user="c1")).status_code == 403


async def test_an_unknown_end_user_created_later_is_known_at_once(database_url: str) -> None:
    async with open_gateway(database_url, validate_end_users=True) as gw:
        key = (await gw.generate())["key"]
        assert (await gw.chat(key, user="late")).status_code == 403  # remembered as unknown

        await ok(await gw.admin("/customer/new", {"user_id": "late"}))

        assert (await gw.chat(key, user="late")).status_code == 200


# -- across replicas ----------------------------------------------------------


@pytest.mark.services
async def test_org_and_customer_changes_on_one_replica_apply_on_the_other_within_a_second(replica: Replica) -> None:
    async with replica() as a, replica() as b:
        await ok(await a.admin("/organization/new", {"organization_id": "o1"}))
        await a.team("t1", organization_id="o1")
        key = (await a.generate(team_id="t1"))["key"]
        await ok(await a.admin("/customer/new", {"user_id": "c1"}))
        await warm(b, key)
        assert (await b.chat(key, user="c1")).status_code == 200

        await ok(await a.admin("/organization/update", {"organization_id": "o1", "blocked": True}))
        await seconds_until(403, lambda: b.chat(key), REVOCATION_BOUND_S)

        await ok(await a.admin("/organization/update", {"organization_id": "o1", "blocked": False}))
        await seconds_until(200, lambda: b.chat(key), REVOCATION_BOUND_S)
        await ok(await a.admin("/customer/block", {"user_ids": ["c1"]}))
        await seconds_until(403, lambda: b.chat(key, user="c1"), REVOCATION_BOUND_S)


async def test_a_configured_end_user_header_names_the_end_user_after_the_standard_ones(database_url: str) -> None:
    async with open_gateway(database_url, end_user_header="X-Customer") as gw:
        key = (await gw.generate())["key"]
        await ok(await gw.admin("/customer/new", {"user_id": "blocked-c", "blocked": True}))

        async def named(headers: dict[str, str], **body: Any) -> httpx.Response:
            return await gw.client.post(
                "/v1/chat/completions",
                json={"messages": [], **body},
                headers={"authorization": f"Bearer {key}", **headers},
            )

        assert (await ok(await named({"x-customer": "c-h"})))["end_user_id"] == "c-h"
        # The standard headers come first, then the configured one, then the body's `user`.
        both = await named({"x-customer": "c-h", "x-litellm-end-user-id": "c-std"}, user="c-body")
        assert (await ok(both))["end_user_id"] == "c-std"
        assert (await ok(await named({"x-customer": "c-h"}, user="c-body")))["end_user_id"] == "c-h"
        assert (await ok(await named({}, user="c-body")))["end_user_id"] == "c-body"
        # An end user named by the configured header is judged like any other.
        assert (await named({"x-customer": "blocked-c"})).status_code == 403


async def test_the_body_names_the_end_user_where_litellm_looks_after_user(database_url: str) -> None:
    async with open_gateway(database_url) as gw:
        key = (await gw.generate())["key"]
        await ok(await gw.admin("/customer/new", {"user_id": "blocked-c", "blocked": True}))

        async def end_user(**body: Any) -> httpx.Response:
            return await gw.client.post(
                "/v1/chat/completions", json={"messages": [], **body}, headers={"authorization": f"Bearer {key}"}
            )

        assert (await ok(await end_user(litellm_metadata={"user": "c-lm"})))["end_user_id"] == "c-lm"
        assert (await ok(await end_user(metadata={"user_id": "c-meta"})))["end_user_id"] == "c-meta"
        assert (await ok(await end_user(safety_identifier="c-safe")))["end_user_id"] == "c-safe"
        # `user` first, then the others in LiteLLM's order.
        both = await end_user(user="c-user", metadata={"user_id": "c-meta"}, safety_identifier="c-safe")
        assert (await ok(both))["end_user_id"] == "c-user"
        assert (await ok(await end_user(metadata={"user_id": "c-meta"}, safety_identifier="c-safe")))[
            "end_user_id"
        ] == "c-meta"
        # Other shapes there name no one; an end user named there is judged like any other.
        assert (await ok(await end_user(metadata={"user_id": 7}, litellm_metadata="x")))["end_user_id"] is None
        assert (await end_user(metadata={"user_id": "blocked-c"})).status_code == 403


def test_a_credential_header_cannot_be_the_end_user_header() -> None:
    for name in ("Authorization", "x-api-key", "not a header"):
        with pytest.raises(ValidationError):
            VirtualKeysConfig.model_validate(plugin_config(end_user_header=name))
