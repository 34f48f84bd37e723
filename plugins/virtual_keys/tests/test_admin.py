"""The admin API: every endpoint, LiteLLM-compatible shapes, and bad input changing nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authcore_virtual_keys import VirtualKeysPlugin
from authcore_virtual_keys.tables import keys, teams, users
from sqlalchemy import select, text
from starlette.applications import Starlette
from starlette.middleware import Middleware

from authcore.config import parse_config
from authcore.credentials import HeaderCredentials
from authcore.lifespan import authcore_lifespan
from authcore.loader import mapping_resolver
from authcore.middleware import AuthcoreMiddleware
from authcore.resources import Resources

from .conftest import INSTANCE, MASTER_KEY, Gateway, plugin_config


async def table_rows(gw: Gateway) -> dict[str, list[dict[str, Any]]]:
    async with gw.resources.engine().connect() as connection:
        return {
            table.name: [dict(row) for row in (await connection.execute(select(table))).mappings()]
            for table in (keys, teams, users)
        }


def assert_openai_error(body: dict[str, Any], status_type: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == status_type
    assert body["error"]["message"]


async def test_generate_returns_the_key_once_with_its_token(gw: Gateway) -> None:
    response = await gw.admin(
        "/key/generate",
        {"models": ["gpt-4o"], "duration": "30d", "key_alias": "ci", "metadata": {"owner": "ci"}, "max_budget": 5},
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert data["key"].startswith("sk-")
    assert len(data["key"]) >= 40
    assert len(data["token"]) == 64
    assert data["key_name"] == f"sk-...{data['key'][-4:]}"
    assert data["models"] == ["gpt-4o"]
    assert data["key_alias"] == "ci"
    assert data["metadata"] == {"owner": "ci"}
    assert data["max_budget"] == 5
    expires = datetime.fromisoformat(data["expires"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)


async def test_generate_accepts_an_empty_body(gw: Gateway) -> None:
    response = await gw.client.post("/key/generate", headers={"authorization": f"Bearer {MASTER_KEY}"})

    assert response.status_code == 200
    assert response.json()["expires"] is None


async def test_generated_keys_are_distinct(gw: Gateway) -> None:
    first = await gw.generate()
    second = await gw.generate()

    assert first["key"] != second["key"]
    assert first["token"] != second["token"]


async def test_caller_chosen_key_works(gw: Gateway) -> None:
    chosen = "sk-imported-0123456789abcdefXYZ"
    created = await gw.generate(key=chosen)

    assert created["key"] == chosen
    assert (await gw.chat(chosen)).status_code == 200


async def test_key_recently_tried_while_unknown_works_once_created(gw: Gateway) -> None:
    chosen = "sk-imported-0123456789abcdefXYZ"
    assert (await gw.chat(chosen)).status_code == 401

    await gw.generate(key=chosen)

    assert (await gw.chat(chosen)).status_code == 200


async def test_bad_generate_input_is_rejected_and_changes_nothing(gw: Gateway) -> None:
    await gw.team("t1", models=["gpt-4o-mini"])
    before = await table_rows(gw)
    bad_bodies: list[Any] = [
        {"unknown_field": 1},
        {"duration": "30 days"},
        {"duration": "0d"},
        {"models": "gpt-4o"},
        {"max_budget": -1},
        {"team_id": "no-such-team"},
        {"team_id": "t1", "models": ["gpt-4o"]},
        {"allowed_routes": ["v1/chat"]},
        {"key": "not-sk-prefixed-0123456789abcdef"},
        {"key": "sk-short"},
        ["not", "an", "object"],
    ]

    for body in bad_bodies:
        response = await gw.admin("/key/generate", body)
        assert response.status_code in (400, 422), body
        assert_openai_error(response.json(), "invalid_request_error")
    malformed = await gw.client.post(
        "/key/generate", content=b"{not json", headers={"authorization": f"Bearer {MASTER_KEY}"}
    )

    assert malformed.status_code == 400
    assert await table_rows(gw) == before


async def test_validation_errors_name_the_field(gw: Gateway) -> None:
    response = await gw.admin("/key/generate", {"tpm_limit": "lots"})

    assert response.status_code == 422
    assert "tpm_limit" in response.json()["error"]["message"]
    assert response.json()["error"]["param"] == "tpm_limit"


async def test_duplicate_alias_is_400(gw: Gateway) -> None:
    await gw.generate(key_alias="one")
    before = await table_rows(gw)

    response = await gw.admin("/key/generate", {"key_alias": "one"})

    assert response.status_code == 400
    assert await table_rows(gw) == before


async def test_info_by_token_and_by_key_never_echoes_the_key(gw: Gateway) -> None:
    created = await gw.generate(key_alias="info-me")

    by_token = await gw.admin("/key/info", {"token": created["token"]}, method="GET")
    by_key = await gw.admin("/key/info", {"key": created["key"]})

    for response in (by_token, by_key):
        assert response.status_code == 200
        assert response.json()["key"] == created["token"]
        assert response.json()["info"]["key_alias"] == "info-me"
        assert created["key"] not in response.text


async def test_info_of_unknown_key_is_404(gw: Gateway) -> None:
    response = await gw.admin("/key/info", {"token": "0" * 64}, method="GET")

    assert response.status_code == 404
    assert_openai_error(response.json(), "not_found_error")


async def test_info_of_a_value_that_is_neither_key_nor_token_is_400(gw: Gateway) -> None:
    response = await gw.admin("/key/info", {"key": "hello"})

    assert response.status_code == 400


async def test_update_changes_only_given_fields(gw: Gateway) -> None:
    created = await gw.generate(models=["gpt-4o"], key_alias="before", metadata={"a": 1})

    response = await gw.admin("/key/update", {"key": created["key"], "key_alias": "after", "duration": "1h"})

    assert response.status_code == 200
    info = response.json()
    assert info["key_alias"] == "after"
    assert info["models"] == ["gpt-4o"]
    assert info["metadata"] == {"a": 1}
    assert datetime.fromisoformat(info["expires"]) - datetime.now(UTC) <= timedelta(hours=1)


async def test_update_applies_to_the_next_request(gw: Gateway) -> None:
    created = await gw.generate(models=["gpt-4o"])
    assert (await gw.chat(created["key"], model="gpt-4o")).status_code == 200

    await gw.admin("/key/update", {"key": created["token"], "models": ["gpt-4o-mini"]})

    assert (await gw.chat(created["key"], model="gpt-4o")).status_code == 403
    assert (await gw.chat(created["key"], model="gpt-4o-mini")).status_code == 200


async def test_bad_update_changes_nothing(gw: Gateway) -> None:
    await gw.team("t1", models=["gpt-4o-mini"])
    created = await gw.generate(models=["gpt-4o"])
    before = await table_rows(gw)
    bad_bodies: list[dict[str, Any]] = [
        {"key": created["key"], "models": None},
        {"key": created["key"], "metadata": None},
        {"key": created["key"], "duration": "soon"},
        {"key": created["key"], "team_id": "t1"},
        {"key": created["key"], "bogus": True},
        {"models": ["gpt-4o"]},
    ]

    for body in bad_bodies:
        response = await gw.admin("/key/update", body)
        assert response.status_code in (400, 422), body
    missing = await gw.admin("/key/update", {"key": "0" * 64, "key_alias": "x"})

    assert missing.status_code == 404
    assert await table_rows(gw) == before
    assert (await gw.chat(created["key"], model="gpt-4o")).status_code == 200


async def test_delete_by_key_and_by_alias(gw: Gateway) -> None:
    first = await gw.generate()
    second = await gw.generate(key_alias="second")
    assert (await gw.chat(first["key"])).status_code == 200

    by_key = await gw.admin("/key/delete", {"keys": [first["key"]]})
    by_alias = await gw.admin("/key/delete", {"key_aliases": ["second"]})

    assert by_key.status_code == 200
    assert by_key.json() == {"deleted_keys": [first["token"]]}
    assert first["key"] not in by_key.text
    assert by_alias.json() == {"deleted_keys": [second["token"]]}
    assert (await gw.chat(first["key"])).status_code == 401
    assert (await gw.chat(second["key"])).status_code == 401


async def test_delete_with_one_unknown_key_deletes_nothing(gw: Gateway) -> None:
    created = await gw.generate()
    before = await table_rows(gw)

    partly_unknown = await gw.admin("/key/delete", {"keys": [created["key"], "sk-" + "Z" * 43]})
    unknown_alias = await gw.admin("/key/delete", {"key_aliases": ["nope"]})
    both = await gw.admin("/key/delete", {"keys": [created["key"]], "key_aliases": ["x"]})
    empty = await gw.admin("/key/delete", {"keys": []})

    assert partly_unknown.status_code == 404
    assert unknown_alias.status_code == 404
    assert both.status_code == 422
    assert empty.status_code == 422
    assert await table_rows(gw) == before
    assert (await gw.chat(created["key"])).status_code == 200


async def test_block_of_unknown_key_is_404(gw: Gateway) -> None:
    assert (await gw.admin("/key/block", {"key": "sk-" + "Q" * 43})).status_code == 404
    assert (await gw.admin("/key/unblock", {})).status_code == 422


async def test_list_filters_and_pages(gw: Gateway) -> None:
    await gw.team("t1")
    team_keys = [await gw.generate(team_id="t1") for _ in range(3)]
    await gw.generate()

    page1 = (await gw.admin("/key/list", {"team_id": "t1", "size": 2}, method="GET")).json()
    page2 = (await gw.admin("/key/list", {"team_id": "t1", "size": 2, "page": 2}, method="GET")).json()
    full = (await gw.admin("/key/list", {"return_full_object": "true"}, method="GET")).json()

    assert page1["total_count"] == 3
    assert page1["total_pages"] == 2
    assert len(page1["keys"]) == 2
    assert len(page2["keys"]) == 1
    assert set(page1["keys"] + page2["keys"]) == {created["token"] for created in team_keys}
    assert full["total_count"] == 4
    assert all(isinstance(item, dict) and "token" in item for item in full["keys"])
    assert (await gw.admin("/key/list", {"size": 0}, method="GET")).status_code == 422
    assert (await gw.admin("/key/list", {"colour": "red"}, method="GET")).status_code == 422


async def test_team_lifecycle(gw: Gateway) -> None:
    created = await gw.admin("/team/new", {"team_alias": "Research", "models": ["gpt-4o"], "metadata": {"cc": 7}})
    team_id = created.json()["team_id"]

    info = await gw.admin("/team/info", {"team_id": team_id}, method="GET")
    updated = await gw.admin("/team/update", {"team_id": team_id, "team_alias": "R&D"})
    deleted = await gw.admin("/team/delete", {"team_ids": [team_id]})

    assert created.status_code == 200
    assert info.json()["team_info"]["models"] == ["gpt-4o"]
    assert info.json()["team_info"]["metadata"] == {"cc": 7}
    assert updated.json()["team_alias"] == "R&D"
    assert updated.json()["models"] == ["gpt-4o"]
    assert deleted.json() == {"deleted_teams": [team_id]}
    assert (await gw.admin("/team/info", {"team_id": team_id}, method="GET")).status_code == 404


async def test_bad_team_input_changes_nothing(gw: Gateway) -> None:
    await gw.team("t1", models=["gpt-4o"])
    before = await table_rows(gw)

    responses = [
        await gw.admin("/team/new", {"team_id": "t1"}),
        await gw.admin("/team/new", {"models": "gpt-4o"}),
        await gw.admin("/team/update", {"team_id": "t1", "models": None}),
        await gw.admin("/team/update", {"team_id": "nope", "blocked": True}),
        await gw.admin("/team/delete", {"team_ids": ["t1", "nope"]}),
        await gw.admin("/team/delete", {"team_ids": []}),
        await gw.admin("/team/info", {}, method="GET"),
    ]

    assert [response.status_code for response in responses] == [400, 422, 422, 404, 404, 422, 400]
    assert await table_rows(gw) == before


async def test_user_lifecycle(gw: Gateway) -> None:
    created = await gw.admin("/user/new", {"user_email": "a@example.com", "user_role": "internal_user"})
    user_id = created.json()["user_id"]

    info = await gw.admin("/user/info", {"user_id": user_id}, method="GET")
    updated = await gw.admin("/user/update", {"user_id": user_id, "deactivated": True})

    assert created.status_code == 200
    assert info.json()["user_info"]["user_email"] == "a@example.com"
    assert info.json()["user_info"]["deactivated"] is False
    assert updated.json()["deactivated"] is True


async def test_bad_user_input_changes_nothing(gw: Gateway) -> None:
    await gw.user("u1")
    before = await table_rows(gw)

    responses = [
        await gw.admin("/user/new", {"user_id": "u1"}),
        await gw.admin("/user/new", {"user_role": "superuser"}),
        await gw.admin("/user/update", {"user_id": "u1", "deactivated": None}),
        await gw.admin("/user/update", {"user_id": "nope", "deactivated": True}),
        await gw.admin("/user/info", {"user_id": "nope"}, method="GET"),
    ]

    assert [response.status_code for response in responses] == [400, 422, 422, 404, 404]
    assert await table_rows(gw) == before


async def test_admin_routes_need_credentials(gw: Gateway) -> None:
    response = await gw.client.post("/key/generate", json={})

    assert response.status_code == 401
    assert (await table_rows(gw))["vk_keys"] == []


async def test_store_failure_on_an_admin_route_is_503(gw: Gateway) -> None:
    async with gw.resources.engine().begin() as connection:
        await connection.execute(text("DROP TABLE vk_teams"))

    response = await gw.admin("/team/new", {"team_id": "t1"})

    assert response.status_code == 503
    assert_openai_error(response.json(), "api_error")


async def test_litellm_get_key_info_with_key_query_works_with_query_data_routes(database_url: str) -> None:
    # As in the embedded default config: the `headers` extractor leaves `?key=` on /key/info to the endpoint.
    config = parse_config(
        {
            "plugins": {
                "headers": {"use": "headers", "config": {"query_data_routes": ["/key/info"]}},
                INSTANCE: {"use": "virtual_keys", "config": plugin_config()},
            },
            "storage": {"database_url": database_url},
        }
    )
    resources = Resources(database_url)
    resolve = mapping_resolver({"virtual_keys": VirtualKeysPlugin, "headers": HeaderCredentials})
    app = Starlette(
        middleware=[Middleware(AuthcoreMiddleware)],
        lifespan=authcore_lifespan(config, resolve=resolve, resources=resources),
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                admin = {"authorization": f"Bearer {MASTER_KEY}"}
                created = (await client.post("/key/generate", json={"key_alias": "k"}, headers=admin)).json()

                info = await client.get("/key/info", params={"key": created["key"]}, headers=admin)
                as_caller = await client.get("/key/info", params={"key": MASTER_KEY})
    finally:
        await resources.aclose()

    assert info.status_code == 200
    assert info.json()["key"] == created["token"]
    assert info.json()["info"]["key_alias"] == "k"
    assert created["key"] not in info.text
    # The query is data here, never the caller's credential.
    assert as_caller.status_code == 401
