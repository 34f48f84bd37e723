"""Resolving keys and the per-request checks, through HTTP."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from sqlalchemy import text

from .conftest import HASH_SECRET, MASTER_KEY, Gateway, GatewayFactory


async def test_generated_key_reaches_the_app_with_its_identity(gw: Gateway) -> None:
    await gw.team("t1", models=["gpt-4o"])
    await gw.user("u1", user_role="internal_user")
    created = await gw.generate(team_id="t1", user_id="u1", key_alias="svc", metadata={"env": "test"})

    response = await gw.chat(created["key"])

    assert response.status_code == 200
    identity = response.json()["identity"]
    assert identity["auth_method"] == "api_key"
    assert identity["plugin"] == "keys"
    assert identity["team_id"] == "t1"
    assert identity["user_id"] == "u1"
    assert identity["role"] == "internal_user"
    assert identity["key_id"] == created["token"][:12]
    assert response.json()["models"] == ["gpt-4o"]


async def test_unknown_key_is_401(gw: Gateway) -> None:
    response = await gw.chat("sk-" + "A" * 43)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_key_without_sk_prefix_is_not_resolved(gw: Gateway) -> None:
    response = await gw.chat("not-a-virtual-key-0123456789")

    assert response.status_code == 401


async def test_stored_hash_is_not_a_credential(gw: Gateway) -> None:
    created = await gw.generate()

    as_hash = await gw.chat(created["token"])
    as_prefixed_hash = await gw.chat("sk-" + created["token"])

    assert as_hash.status_code == 401
    assert as_prefixed_hash.status_code == 401
    assert (await gw.chat(created["key"])).status_code == 200


async def test_sha256_mode_hash_is_not_a_credential(make_gateway: GatewayFactory) -> None:
    async with make_gateway(hash_mode="sha256", hash_secret=None) as gw:
        created = await gw.generate()
        assert created["token"] == hashlib.sha256(created["key"].encode()).hexdigest()

        assert (await gw.chat(created["token"])).status_code == 401
        assert (await gw.chat(created["key"])).status_code == 200


async def test_hmac_mode_does_not_store_plain_sha256(gw: Gateway) -> None:
    created = await gw.generate()

    assert created["token"] != hashlib.sha256(created["key"].encode()).hexdigest()
    assert HASH_SECRET not in created["token"]


async def test_expired_key_is_401(gw: Gateway) -> None:
    created = await gw.generate(duration="1s")
    assert (await gw.chat(created["key"])).status_code == 200

    await asyncio.sleep(1.1)
    response = await gw.chat(created["key"])

    # The snapshot is still cached: expiry is checked on every request.
    assert len(gw.plugin.cache) == 1
    assert response.status_code == 401


async def test_unknown_expired_and_deleted_keys_get_identical_bodies(gw: Gateway) -> None:
    expired = await gw.generate(duration="1s")
    deleted = await gw.generate()
    assert (await gw.admin("/key/delete", {"keys": [deleted["key"]]})).status_code == 200
    await asyncio.sleep(1.1)

    responses = [
        await gw.chat("sk-" + "B" * 43),
        await gw.chat(expired["key"]),
        await gw.chat(deleted["key"]),
    ]

    assert {response.status_code for response in responses} == {401}
    assert len({response.content for response in responses}) == 1
    assert len({response.headers["www-authenticate"] for response in responses}) == 1


async def test_blocked_key_is_403_immediately_after_block(gw: Gateway) -> None:
    created = await gw.generate()
    assert (await gw.chat(created["key"])).status_code == 200

    assert (await gw.admin("/key/block", {"key": created["key"]})).status_code == 200
    blocked = await gw.chat(created["key"])
    assert (await gw.admin("/key/unblock", {"key": created["token"]})).status_code == 200
    unblocked = await gw.chat(created["key"])

    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "key_blocked"
    assert unblocked.status_code == 200


async def test_blocked_team_is_403(gw: Gateway) -> None:
    await gw.team("t1")
    created = await gw.generate(team_id="t1")
    assert (await gw.chat(created["key"])).status_code == 200

    assert (await gw.admin("/team/update", {"team_id": "t1", "blocked": True})).status_code == 200
    response = await gw.chat(created["key"])

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "team_blocked"


async def test_team_blocked_at_creation_is_403(gw: Gateway) -> None:
    await gw.team("t1", blocked=True)
    created = await gw.generate(team_id="t1")

    assert (await gw.chat(created["key"])).status_code == 403


async def test_deactivated_user_is_403(gw: Gateway) -> None:
    await gw.user("u1")
    created = await gw.generate(user_id="u1")
    assert (await gw.chat(created["key"])).status_code == 200

    assert (await gw.admin("/user/update", {"user_id": "u1", "deactivated": True})).status_code == 200
    response = await gw.chat(created["key"])

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "user_deactivated"


async def test_deleted_team_takes_its_keys_along(gw: Gateway) -> None:
    await gw.team("t1")
    created = await gw.generate(team_id="t1")
    assert (await gw.chat(created["key"])).status_code == 200

    assert (await gw.admin("/team/delete", {"team_ids": ["t1"]})).status_code == 200

    assert (await gw.chat(created["key"])).status_code == 401


async def test_model_not_allowed_for_key_is_403(gw: Gateway) -> None:
    created = await gw.generate(models=["gpt-4o-mini", "openai/*"])

    allowed = await gw.chat(created["key"], model="gpt-4o-mini")
    wildcard = await gw.chat(created["key"], model="openai/gpt-4.1")
    denied = await gw.chat(created["key"], model="gpt-4o")
    prefix_only = await gw.chat(created["key"], model="openai")

    assert allowed.status_code == 200
    assert wildcard.status_code == 200
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "model_not_allowed"
    assert prefix_only.status_code == 403


async def test_model_in_path_is_checked(gw: Gateway) -> None:
    created = await gw.generate(models=["gpt-4o-mini"])

    response = await gw.client.post(
        "/openai/deployments/gpt-4o/chat/completions",
        json={"messages": []},
        headers={"authorization": f"Bearer {created['key']}"},
    )

    assert response.status_code == 403


async def test_model_named_in_a_get_path_is_checked(gw: Gateway) -> None:
    created = await gw.generate(models=["gpt-4o-mini"])
    headers = {"authorization": f"Bearer {created['key']}"}

    listing = await gw.client.get("/v1/models", headers=headers)
    allowed = await gw.client.get("/v1/models/gpt-4o-mini", headers=headers)
    denied = await gw.client.get("/v1/models/gpt-4o", headers=headers)

    assert listing.status_code == 200
    assert allowed.status_code == 200
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "model_not_allowed"


async def test_key_deleted_after_use_is_401(gw: Gateway) -> None:
    created = await gw.generate()
    assert (await gw.chat(created["key"])).status_code == 200

    assert (await gw.admin("/key/delete", {"keys": [created["key"]]})).status_code == 200

    assert (await gw.chat(created["key"])).status_code == 401


async def test_only_keys_that_exist_are_remembered_unhashed(gw: Gateway) -> None:
    created = await gw.generate()
    unknown = "sk-" + "B" * 43

    assert (await gw.chat(unknown)).status_code == 401
    assert (await gw.chat(created["key"])).status_code == 200

    # Made-up keys must not take the places of real ones in the plugin's raw-key -> hash memory.
    assert unknown not in gw.plugin._tokens
    assert gw.plugin._tokens[created["key"]] == created["token"]


async def test_model_not_allowed_for_team_is_403(gw: Gateway) -> None:
    await gw.team("t1", models=["gpt-4o-mini"])
    created = await gw.generate(team_id="t1")

    assert (await gw.chat(created["key"], model="gpt-4o-mini")).status_code == 200
    assert (await gw.chat(created["key"], model="gpt-4o")).status_code == 403


async def test_key_never_grants_more_than_its_team(gw: Gateway) -> None:
    await gw.team("t1", models=["gpt-4o-mini", "gpt-4o"])
    created = await gw.generate(team_id="t1", models=["gpt-4o"])
    # The team narrows after the key was made: the key's own list no longer counts.
    assert (await gw.admin("/team/update", {"team_id": "t1", "models": ["gpt-4o-mini"]})).status_code == 200

    response = await gw.chat(created["key"], model="gpt-4o")

    assert response.status_code == 403
    assert (await gw.chat(created["key"], model="gpt-4o-mini")).status_code == 403


async def test_all_team_models_follows_the_team_list(gw: Gateway) -> None:
    await gw.team("t1", models=["claude-3-5-sonnet"])
    created = await gw.generate(team_id="t1", models=["all-team-models"])

    assert (await gw.chat(created["key"], model="claude-3-5-sonnet")).status_code == 200
    assert (await gw.chat(created["key"], model="gpt-4o")).status_code == 403


async def test_all_team_models_without_a_team_allows_nothing(gw: Gateway) -> None:
    created = await gw.generate(models=["all-team-models"])

    assert (await gw.chat(created["key"], model="gpt-4o")).status_code == 403


async def test_fallback_models_are_checked(gw: Gateway) -> None:
    created = await gw.generate(models=["gpt-4o-mini"])
    key = created["key"]
    smuggled: list[dict[str, Any]] = [
        {"fallbacks": ["gpt-4o"]},
        {"fallbacks": [{"model": "gpt-4o", "messages": []}]},
        {"fallbacks": [{"gpt-4o-mini": ["gpt-4o"]}]},
        {"context_window_fallbacks": [{"gpt-4o-mini": ["gpt-4o"]}]},
        {"content_policy_fallbacks": ["gpt-4o"]},
        {"router_settings_override": {"fallbacks": [{"gpt-4o-mini": ["gpt-4o"]}]}},
        {"router_settings_override": {"model_group_alias": {"gpt-4o-mini": "gpt-4o"}}},
    ]

    for body in smuggled:
        response = await gw.chat(key, model="gpt-4o-mini", **body)
        assert response.status_code == 403, body
    assert (await gw.chat(key, model="gpt-4o-mini", fallbacks=["gpt-4o-mini"])).status_code == 200


async def test_fallbacks_that_cannot_be_read_are_400(gw: Gateway) -> None:
    created = await gw.generate(models=["gpt-4o-mini"])

    numeric = await gw.chat(created["key"], model="gpt-4o-mini", fallbacks=[1])
    listed_model = await gw.chat(created["key"], model=["gpt-4o"])
    bad_override = await gw.chat(created["key"], model="gpt-4o-mini", router_settings_override=["gpt-4o"])

    assert numeric.status_code == 400
    assert listed_model.status_code == 400
    assert bad_override.status_code == 400


async def test_fallbacks_are_checked_against_the_team(gw: Gateway) -> None:
    await gw.team("t1", models=["gpt-4o-mini"])
    created = await gw.generate(team_id="t1")

    response = await gw.chat(created["key"], model="gpt-4o-mini", fallbacks=["gpt-4o"])

    assert response.status_code == 403


async def test_master_key_is_admin(gw: Gateway) -> None:
    response = await gw.chat(MASTER_KEY, model="anything")

    assert response.status_code == 200
    identity = response.json()["identity"]
    assert identity["auth_method"] == "master_key"
    assert identity["role"] == "proxy_admin"
    assert identity["key_id"] == "master_key"
    assert (await gw.admin("/key/list", method="GET")).status_code == 200


async def test_master_key_with_one_character_changed_is_401(gw: Gateway) -> None:
    wrong = MASTER_KEY[:-1] + ("A" if MASTER_KEY[-1] != "A" else "B")

    assert (await gw.chat(wrong)).status_code == 401
    assert (await gw.admin("/key/list", method="GET", key=wrong)).status_code == 401


async def test_non_admin_key_on_admin_route_is_403(gw: Gateway) -> None:
    await gw.user("u1", user_role="internal_user")
    created = await gw.generate(user_id="u1")

    listing = await gw.admin("/key/list", method="GET", key=created["key"])
    generating = await gw.admin("/key/generate", {}, key=created["key"])

    assert listing.status_code == 403
    assert generating.status_code == 403
    assert (await gw.admin("/key/list", {"return_full_object": "true"}, method="GET")).json()["total_count"] == 1


async def test_key_of_an_admin_user_is_admin(gw: Gateway) -> None:
    await gw.user("boss", user_role="proxy_admin")
    created = await gw.generate(user_id="boss")

    assert (await gw.admin("/key/list", method="GET", key=created["key"])).status_code == 200


async def test_viewer_key_may_read_but_not_write(gw: Gateway) -> None:
    await gw.user("viewer", user_role="proxy_admin_viewer")
    created = await gw.generate(user_id="viewer")

    assert (await gw.admin("/key/list", method="GET", key=created["key"])).status_code == 200
    assert (await gw.admin("/key/generate", {}, key=created["key"])).status_code == 403


async def test_user_role_change_applies_immediately(gw: Gateway) -> None:
    await gw.user("u1", user_role="proxy_admin")
    created = await gw.generate(user_id="u1")
    assert (await gw.admin("/key/list", method="GET", key=created["key"])).status_code == 200

    assert (await gw.admin("/user/update", {"user_id": "u1", "user_role": "internal_user"})).status_code == 200

    assert (await gw.admin("/key/list", method="GET", key=created["key"])).status_code == 403


async def test_allowed_routes_are_enforced(gw: Gateway) -> None:
    created = await gw.generate(allowed_routes=["/v1/models"])

    assert (await gw.client.get("/v1/models", headers={"authorization": f"Bearer {created['key']}"})).status_code == 200
    assert (await gw.chat(created["key"])).status_code == 403


async def test_database_failure_is_503(gw: Gateway) -> None:
    created = await gw.generate()
    async with gw.resources.engine().begin() as connection:
        await connection.execute(text("DROP TABLE vk_keys"))

    response = await gw.chat(created["key"])

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
