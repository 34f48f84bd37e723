"""Organizations, projects and customers: their admin endpoints, and what they change for keys and requests."""

from __future__ import annotations

from typing import Any

import pytest
from authcore_virtual_keys.tables import end_users, keys, organizations, projects
from sqlalchemy import select

from .conftest import MASTER_KEY, Gateway, open_gateway


async def entity_rows(gw: Gateway) -> dict[str, list[dict[str, Any]]]:
    async with gw.resources.engine().connect() as connection:
        return {
            table.name: [dict(row) for row in (await connection.execute(select(table))).mappings()]
            for table in (keys, organizations, projects, end_users)
        }


# -- organizations ----------------------------------------------------------


async def test_organization_lifecycle(gw: Gateway) -> None:
    created = await gw.admin(
        "/organization/new", {"organization_alias": "acme", "models": ["gpt-4o"], "max_budget": 10}
    )
    assert created.status_code == 200
    org = created.json()
    assert org["organization_alias"] == "acme"
    assert org["models"] == ["gpt-4o"]
    assert org["max_budget"] == 10
    org_id = org["organization_id"]

    info = await gw.admin("/organization/info", {"organization_id": org_id}, method="GET")
    assert info.status_code == 200
    assert info.json()["organization_alias"] == "acme"

    updated = await gw.admin("/organization/update", {"organization_id": org_id, "models": ["gpt-4o", "o3"]})
    assert updated.status_code == 200
    assert updated.json()["models"] == ["gpt-4o", "o3"]
    assert updated.json()["organization_alias"] == "acme"

    listed = await gw.admin("/organization/list", {}, method="GET")
    assert listed.status_code == 200
    assert [item["organization_id"] for item in listed.json()["organizations"]] == [org_id]
    assert listed.json()["total_count"] == 1

    deleted = await gw.admin("/organization/delete", {"organization_ids": [org_id]})
    assert deleted.status_code == 200
    assert (await gw.admin("/organization/info", {"organization_id": org_id}, method="GET")).status_code == 404


async def test_bad_organization_input_changes_nothing(gw: Gateway) -> None:
    await gw.admin("/organization/new", {"organization_id": "o1"})
    await gw.generate(organization_id="o1")
    before = await entity_rows(gw)
    bad: list[tuple[str, Any, int]] = [
        ("/organization/new", {"organization_id": "o1"}, 400),
        ("/organization/new", {"models": "gpt-4o"}, 422),
        ("/organization/new", {"max_budget": -1}, 422),
        ("/organization/new", {"surprise": True}, 422),
        ("/organization/update", {"organization_id": "nope", "blocked": True}, 404),
        ("/organization/update", {"organization_id": "o1", "models": None}, 422),
        ("/organization/delete", {"organization_ids": ["o1"]}, 400),
        ("/organization/delete", {"organization_ids": []}, 422),
        ("/organization/delete", {"organization_ids": ["nope"]}, 404),
    ]

    for path, body, status in bad:
        response = await gw.admin(path, body)
        assert response.status_code == status, (path, body, response.text)
        assert set(response.json()) == {"error"}
    assert await entity_rows(gw) == before


async def test_key_cannot_exceed_its_organization(gw: Gateway) -> None:
    await gw.admin("/organization/new", {"organization_id": "o1", "models": ["gpt-4o-mini"]})

    refused = await gw.admin("/key/generate", {"organization_id": "o1", "models": ["gpt-4o"]})
    unknown = await gw.admin("/key/generate", {"organization_id": "nope"})
    key = await gw.generate(organization_id="o1")

    assert refused.status_code == 400
    assert unknown.status_code == 400
    assert (await gw.chat(key["key"], model="gpt-4o-mini")).status_code == 200
    assert (await gw.chat(key["key"], model="gpt-4o")).status_code == 403
    fallback = await gw.chat(key["key"], model="gpt-4o-mini", fallbacks=["gpt-4o"])
    assert fallback.status_code == 403


async def test_organization_changes_apply_to_its_keys_at_once(gw: Gateway) -> None:
    await gw.admin("/organization/new", {"organization_id": "o1"})
    key = await gw.generate(organization_id="o1")
    assert (await gw.chat(key["key"], model="gpt-4o")).status_code == 200  # cached now

    await gw.admin("/organization/update", {"organization_id": "o1", "models": ["gpt-4o-mini"]})
    assert (await gw.chat(key["key"], model="gpt-4o")).status_code == 403

    await gw.admin("/organization/update", {"organization_id": "o1", "blocked": True})
    blocked = await gw.chat(key["key"], model="gpt-4o-mini")
    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "org_denied"


async def test_key_whose_organization_vanished_is_denied(gw: Gateway) -> None:
    await gw.admin("/organization/new", {"organization_id": "o1"})
    key = await gw.generate(organization_id="o1")
    async with gw.resources.engine().begin() as connection:
        await connection.execute(organizations.delete())
    gw.plugin.cache.clear()

    assert (await gw.chat(key["key"])).status_code == 403


# -- projects ---------------------------------------------------------------


async def test_project_lifecycle(gw: Gateway) -> None:
    await gw.admin("/organization/new", {"organization_id": "o1"})
    created = await gw.admin("/project/new", {"project_id": "p1", "organization_id": "o1", "models": ["gpt-4o"]})
    assert created.status_code == 200
    assert created.json()["organization_id"] == "o1"

    info = await gw.admin("/project/info", {"project_id": "p1"}, method="GET")
    assert info.status_code == 200
    assert info.json()["models"] == ["gpt-4o"]

    updated = await gw.admin("/project/update", {"project_id": "p1", "project_alias": "web"})
    assert updated.status_code == 200
    assert updated.json()["project_alias"] == "web"

    listed = await gw.admin("/project/list", {}, method="GET")
    assert [item["project_id"] for item in listed.json()["projects"]] == ["p1"]

    assert (await gw.admin("/project/delete", {"project_ids": ["p1"]})).status_code == 200
    assert (await gw.admin("/project/info", {"project_id": "p1"}, method="GET")).status_code == 404


async def test_bad_project_input_changes_nothing(gw: Gateway) -> None:
    await gw.admin("/project/new", {"project_id": "p1"})
    await gw.generate(project_id="p1")
    before = await entity_rows(gw)
    bad: list[tuple[str, Any, int]] = [
        ("/project/new", {"project_id": "p1"}, 400),
        ("/project/new", {"project_id": "p2", "organization_id": "nope"}, 404),
        ("/project/update", {"project_id": "p1", "organization_id": "o2"}, 422),
        ("/project/update", {"project_id": "nope", "models": []}, 404),
        ("/project/delete", {"project_ids": ["p1"]}, 400),
    ]

    for path, body, status in bad:
        response = await gw.admin(path, body)
        assert response.status_code == status, (path, body, response.text)
    assert await entity_rows(gw) == before


async def test_key_is_bounded_by_its_project_and_the_projects_organization(gw: Gateway) -> None:
    await gw.admin("/organization/new", {"organization_id": "o1", "models": ["gpt-4o", "gpt-4o-mini"]})
    await gw.admin("/organization/new", {"organization_id": "o2"})
    await gw.admin("/project/new", {"project_id": "p1", "organization_id": "o1", "models": ["gpt-4o-mini", "o3"]})

    other_org = await gw.admin("/key/generate", {"project_id": "p1", "organization_id": "o2"})
    too_wide = await gw.admin("/key/generate", {"project_id": "p1", "models": ["gpt-4o"]})
    key = await gw.generate(project_id="p1")

    assert other_org.status_code == 400
    assert too_wide.status_code == 400
    # The key takes the project's organization, so both lists apply.
    assert key["organization_id"] == "o1"
    assert (await gw.chat(key["key"], model="gpt-4o-mini")).status_code == 200
    assert (await gw.chat(key["key"], model="gpt-4o")).status_code == 403  # not in the project
    assert (await gw.chat(key["key"], model="o3")).status_code == 403  # not in the organization


async def test_blocked_project_blocks_its_keys(gw: Gateway) -> None:
    await gw.admin("/project/new", {"project_id": "p1"})
    key = await gw.generate(project_id="p1")
    assert (await gw.chat(key["key"])).status_code == 200

    await gw.admin("/project/update", {"project_id": "p1", "blocked": True})

    response = await gw.chat(key["key"])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "project_denied"


async def test_key_update_checks_organization_and_project(gw: Gateway) -> None:
    await gw.admin("/organization/new", {"organization_id": "o1", "models": ["gpt-4o-mini"]})
    key = await gw.generate(models=["gpt-4o"])

    refused = await gw.admin("/key/update", {"key": key["token"], "organization_id": "o1"})
    missing = await gw.admin("/key/update", {"key": key["token"], "project_id": "nope"})
    accepted = await gw.admin("/key/update", {"key": key["token"], "organization_id": "o1", "models": []})

    assert refused.status_code == 400
    assert missing.status_code == 400
    assert accepted.status_code == 200
    assert accepted.json()["organization_id"] == "o1"
    assert (await gw.chat(key["key"], model="gpt-4o")).status_code == 403


# -- customers (end users) --------------------------------------------------


async def test_customer_lifecycle_with_litellm_shapes(gw: Gateway) -> None:
    created = await gw.admin("/customer/new", {"user_id": "c1", "max_budget": 3, "allowed_model_region": "eu"})
    assert created.status_code == 200
    assert created.json()["user_id"] == "c1"
    assert created.json()["allowed_model_region"] == "eu"
    assert created.json()["litellm_budget_table"] == {"max_budget": 3}
    assert created.json()["blocked"] is False

    info = await gw.admin("/customer/info", {"end_user_id": "c1"}, method="GET")
    assert info.status_code == 200
    assert info.json()["user_id"] == "c1"

    updated = await gw.admin("/customer/update", {"user_id": "c1", "alias": "Customer One"})
    assert updated.status_code == 200
    assert updated.json()["alias"] == "Customer One"

    assert (await gw.admin("/customer/block", {"user_ids": ["c1"]})).json() == {"blocked_users": ["c1"]}
    assert (await gw.admin("/customer/info", {"end_user_id": "c1"}, method="GET")).json()["blocked"] is True
    assert (await gw.admin("/customer/unblock", {"user_ids": ["c1"]})).status_code == 200

    listed = await gw.admin("/customer/list", {}, method="GET")
    assert [item["user_id"] for item in listed.json()] == ["c1"]

    assert (await gw.admin("/customer/delete", {"user_ids": ["c1"]})).status_code == 200
    assert (await gw.admin("/customer/info", {"end_user_id": "c1"}, method="GET")).status_code == 404


async def test_bad_customer_input_changes_nothing(gw: Gateway) -> None:
    await gw.admin("/customer/new", {"user_id": "c1"})
    before = await entity_rows(gw)
    bad: list[tuple[str, Any, int]] = [
        ("/customer/new", {"user_id": "c1"}, 400),
        ("/customer/new", {}, 422),
        ("/customer/new", {"user_id": "c2", "allowed_model_region": "mars"}, 422),
        ("/customer/new", {"user_id": "c2", "max_budget": -5}, 422),
        ("/customer/block", {"user_ids": ["c1", "nope"]}, 404),
        ("/customer/delete", {"user_ids": ["c1", "nope"]}, 404),
        ("/customer/update", {"user_id": "nope", "alias": "x"}, 404),
        ("/customer/update", {"user_id": "c1", "blocked": None}, 422),
    ]

    for path, body, status in bad:
        response = await gw.admin(path, body)
        assert response.status_code == status, (path, body, response.text)
    assert await entity_rows(gw) == before


async def test_entity_routes_are_for_admins_only(gw: Gateway) -> None:
    key = await gw.generate()
    for path, body in (
        ("/organization/new", {"organization_id": "o1"}),
        ("/project/new", {"project_id": "p1"}),
        ("/customer/new", {"user_id": "c1"}),
        ("/customer/block", {"user_ids": ["c1"]}),
    ):
        assert (await gw.admin(path, body, key=key["key"])).status_code == 403, path
        assert (await gw.client.post(path, json=body)).status_code == 401, path
    assert (await entity_rows(gw))["vk_organizations"] == []


# -- the end-user check ------------------------------------------------------




async def test_blocked_customer_is_403_by_body_and_by_header(database_url: str) -> None:
    async with open_gateway(database_url) as gw:
        key = await gw.generate()
        await gw.admin("/customer/new", {"user_id": "c1", "blocked": True})
        await gw.admin("/customer/new", {"user_id": "c2"})

        by_body = await gw.chat(key["key"], user="c1")
        by_header = await gw.client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "user": "c2"},
            headers={"authorization": f"Bearer {key['key']}", "x-litellm-end-user-id": "c1"},
        )
        allowed = await gw.chat(key["key"], user="c2")

        assert by_body.status_code == 403
        assert by_body.json()["error"]["code"] == "end_user_blocked"
        assert by_header.status_code == 403
        assert allowed.status_code == 200


async def test_blocked_customer_is_403_even_with_the_master_key(database_url: str) -> None:
    async with open_gateway(database_url) as gw:
        await gw.admin("/customer/new", {"user_id": "c1", "blocked": True})
        denied = await gw.chat(MASTER_KEY, user="c1")
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "end_user_blocked"
        assert (await gw.chat(MASTER_KEY, user="c2")).status_code == 200


async def test_unblocking_a_customer_applies_to_the_next_request(database_url: str) -> None:
    async with open_gateway(database_url) as gw:
        key = await gw.generate()
        await gw.admin("/customer/new", {"user_id": "c1"})
        assert (await gw.chat(key["key"], user="c1")).status_code == 200

        await gw.admin("/customer/block", {"user_ids": ["c1"]})
        assert (await gw.chat(key["key"], user="c1")).status_code == 403

        await gw.admin("/customer/unblock", {"user_ids": ["c1"]})
        assert (await gw.chat(key["key"], user="c1")).status_code == 200


@pytest.mark.parametrize("validate", [False, True])
async def test_unknown_customer_passes_unless_validation_is_on(database_url: str, validate: bool) -> None:
    async with open_gateway(database_url, validate_end_users=validate) as gw:
        key = await gw.generate()

        unknown = await gw.chat(key["key"], user="stranger")
        anonymous = await gw.chat(key["key"])

        assert unknown.status_code == (403 if validate else 200)
        assert anonymous.status_code == 200


async def test_end_user_that_is_not_a_string_is_400(database_url: str) -> None:
    async with open_gateway(database_url) as gw:
        key = await gw.generate()

        assert (await gw.chat(key["key"], user={"id": "c1"})).status_code == 400


async def test_project_limits_are_stored_shown_and_handed_over_with_its_keys(gw: Gateway) -> None:
    created = await gw.admin("/project/new", {"project_id": "p1", "max_budget": 5, "rpm_limit": 10})
    assert created.status_code == 200, created.text
    assert (created.json()["max_budget"], created.json()["rpm_limit"], created.json()["tpm_limit"]) == (5, 10, None)
    key = (await gw.generate(project_id="p1"))["key"]
    first = await gw.chat(key)
    assert first.status_code == 200, first.text
    assert first.json()["limits"]["project"] == {"max_budget": 5, "rpm_limit": 10}
    updated = await gw.admin("/project/update", {"project_id": "p1", "tpm_limit": 1000})
    assert updated.json()["tpm_limit"] == 1000
    # The key's cached snapshot follows the project's change at once.
    assert (await gw.chat(key)).json()["limits"]["project"] == {"max_budget": 5, "rpm_limit": 10, "tpm_limit": 1000}
    assert (await gw.admin("/project/new", {"project_id": "p2", "max_budget": -1})).status_code == 422
