"""Team memberships: /team/member_add, /team/member_update, /team/member_delete, and what a key's identity gets."""

from __future__ import annotations

from typing import Any

from authcore_virtual_keys.tables import team_members, teams, users
from sqlalchemy import select

from .conftest import Gateway


async def rows(gw: Gateway) -> dict[str, list[dict[str, Any]]]:
    async with gw.resources.engine().connect() as connection:
        return {
            table.name: [dict(row) for row in (await connection.execute(select(table))).mappings()]
            for table in (teams, users, team_members)
        }


def members(response: Any) -> list[tuple[str, str, float | None]]:
    return [(m["user_id"], m["role"], m["max_budget_in_team"]) for m in response.json()["members_with_roles"]]


async def test_members_are_added_listed_updated_and_removed(gw: Gateway) -> None:
    await gw.team("t1", team_alias="research")
    await gw.user("u1", user_email="ada@example.com")
    added = await gw.admin(
        "/team/member_add",
        {"team_id": "t1", "member": [{"user_id": "u1", "role": "admin"}, {"user_email": "bob@example.com"}]},
    )
    assert added.status_code == 200, added.text
    body = added.json()
    assert body["team_id"] == "t1"
    assert body["team_alias"] == "research"
    # bob was not a user: he becomes one, as in LiteLLM.
    (bob,) = body["updated_users"]
    assert bob["user_email"] == "bob@example.com"
    assert bob["user_role"] == "internal_user"
    assert sorted(members(added)) == sorted([("u1", "admin", None), (bob["user_id"], "user", None)])

    info = await gw.admin("/team/info", {"team_id": "t1"}, method="GET")
    assert info.status_code == 200
    listed = info.json()["team_info"]["members_with_roles"]
    assert {(m["user_id"], m["user_email"], m["role"]) for m in listed} == {
        ("u1", "ada@example.com", "admin"),
        (bob["user_id"], "bob@example.com", "user"),
    }

    updated = await gw.admin(
        "/team/member_update", {"team_id": "t1", "user_email": "bob@example.com", "max_budget_in_team": 2.5}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json() == {
        "team_id": "t1",
        "user_id": bob["user_id"],
        "user_email": "bob@example.com",
        "role": "user",
        "max_budget_in_team": 2.5,
    }

    removed = await gw.admin("/team/member_delete", {"team_id": "t1", "user_id": "u1"})
    assert removed.status_code == 200, removed.text
    assert members(removed) == [(bob["user_id"], "user", 2.5)]
    # The user stays a user; only the membership went.
    assert (await gw.admin("/user/info", {"user_id": "u1"}, method="GET")).status_code == 200


async def test_bad_membership_requests_are_refused_and_change_nothing(gw: Gateway) -> None:
    await gw.team("t1")
    await gw.user("u1")
    assert (await gw.admin("/team/member_add", {"team_id": "t1", "member": {"user_id": "u1"}})).status_code == 200
    before = await rows(gw)
    bad: list[tuple[str, dict[str, Any], int, str | None]] = [
        ("/team/member_add", {"team_id": "nope", "member": {"user_id": "u2"}}, 404, "team_not_found"),
        ("/team/member_add", {"team_id": "t1", "member": {"user_id": "u1"}}, 400, "already_member"),
        # All or nothing: u2 would be new, u1 is already in.
        ("/team/member_add", {"team_id": "t1", "member": [{"user_id": "u2"}, {"user_id": "u1"}]}, 400, None),
        ("/team/member_add", {"team_id": "t1", "member": [{"user_id": "u2"}, {"user_id": "u2"}]}, 400, None),
        ("/team/member_add", {"team_id": "t1", "member": {"role": "user"}}, 422, None),
        ("/team/member_add", {"team_id": "t1", "member": {"user_id": "u2", "role": "owner"}}, 422, None),
        ("/team/member_add", {"team_id": "t1", "member": [], "max_budget_in_team": 1}, 422, None),
        ("/team/member_add", {"team_id": "t1", "member": {"user_id": "u2"}, "max_budget_in_team": -1}, 422, None),
        ("/team/member_add", {"team_id": "t1", "member": {"user_id": "u2"}, "surprise": 1}, 422, None),
        ("/team/member_update", {"team_id": "t1", "user_id": "u9", "role": "admin"}, 404, "member_not_found"),
        ("/team/member_update", {"team_id": "t1", "user_id": "u1", "role": None}, 400, None),
        ("/team/member_update", {"team_id": "t1", "user_id": "u1", "user_email": "x@y.z"}, 422, None),
        ("/team/member_update", {"team_id": "nope", "user_id": "u1", "role": "admin"}, 404, "team_not_found"),
        ("/team/member_delete", {"team_id": "t1", "user_id": "u9"}, 404, "member_not_found"),
        ("/team/member_delete", {"team_id": "t1", "user_email": "nobody@example.com"}, 404, "member_not_found"),
        ("/team/member_delete", {"team_id": "t1"}, 422, None),
    ]
    for path, body, status, code in bad:
        response = await gw.admin(path, body)
        assert response.status_code == status, (path, body, response.text)
        error = response.json()["error"]
        assert error["message"], (path, body)
        if code is not None:
            assert error["code"] == code, (path, body)
    assert await rows(gw) == before


async def test_membership_endpoints_are_for_admins_only(gw: Gateway) -> None:
    await gw.team("t1")
    await gw.user("viewer", user_role="proxy_admin_viewer")
    key = (await gw.generate(team_id="t1"))["key"]
    viewer = (await gw.generate(user_id="viewer"))["key"]
    for caller in (key, viewer):
        response = await gw.admin("/team/member_add", {"team_id": "t1", "member": {"user_id": "u1"}}, key=caller)
        assert response.status_code in (401, 403), response.text
    assert (await rows(gw))["vk_team_members"] == []


async def test_a_members_budget_in_the_team_is_handed_over_with_the_key(gw: Gateway) -> None:
    await gw.team("t1")
    await gw.user("u1")
    key = (await gw.generate(team_id="t1", user_id="u1"))["key"]

    async def handed_over() -> Any:
        response = await gw.chat(key)
        assert response.status_code == 200, response.text
        return response.json()["limits"].get("team_member")

    assert await handed_over() is None
    added = await gw.admin("/team/member_add", {"team_id": "t1", "member": {"user_id": "u1"}, "max_budget_in_team": 3})
    assert added.status_code == 200
    # The cached key follows each change at once (the team's keys are invalidated).
    assert await handed_over() == {"max_budget": 3}
    await gw.admin("/team/member_update", {"team_id": "t1", "user_id": "u1", "max_budget_in_team": 4})
    assert await handed_over() == {"max_budget": 4}
    await gw.admin("/team/member_delete", {"team_id": "t1", "user_id": "u1"})
    assert await handed_over() is None


async def test_deleting_a_team_removes_its_memberships(gw: Gateway) -> None:
    await gw.team("t1")
    await gw.admin("/team/member_add", {"team_id": "t1", "member": {"user_id": "u1"}})
    assert (await gw.admin("/team/delete", {"team_ids": ["t1"]})).status_code == 200
    assert (await rows(gw))["vk_team_members"] == []


# -- the rest of the /team/* and /user/* set -----------------------------------


async def test_team_block_and_unblock_apply_to_its_keys_at_once(gw: Gateway) -> None:
    await gw.team("t1")
    key = (await gw.generate(team_id="t1"))["key"]
    assert (await gw.chat(key)).status_code == 200
    blocked = await gw.admin("/team/block", {"team_id": "t1"})
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["blocked"] is True
    denied = await gw.chat(key)
    assert denied.status_code == 403
    unblocked = await gw.admin("/team/unblock", {"team_id": "t1"})
    assert unblocked.json()["blocked"] is False
    assert (await gw.chat(key)).status_code == 200
    assert (await gw.admin("/team/block", {"team_id": "nope"})).status_code == 404
    assert (await gw.admin("/team/block", {"team_ids": ["t1"]})).status_code == 422
    assert (await gw.chat(key)).status_code == 200


async def test_team_and_user_lists_page_through_every_row(gw: Gateway) -> None:
    for index in range(3):
        await gw.team(f"t{index}")
        await gw.user(f"u{index}", user_email=f"u{index}@example.com")
    teams_page = await gw.admin("/team/list", {"page": 1, "size": 2}, method="GET")
    assert teams_page.status_code == 200, teams_page.text
    assert teams_page.json()["total_count"] == 3
    assert teams_page.json()["total_pages"] == 2
    second = await gw.admin("/team/list", {"page": 2, "size": 2}, method="GET")
    listed = [team["team_id"] for team in teams_page.json()["teams"] + second.json()["teams"]]
    assert sorted(listed) == ["t0", "t1", "t2"]
    users_page = await gw.admin("/user/list", {}, method="GET")
    assert users_page.status_code == 200
    assert sorted(user["user_email"] for user in users_page.json()["users"]) == [
        "u0@example.com",
        "u1@example.com",
        "u2@example.com",
    ]
    assert "spend" in users_page.json()["users"][0]
    assert (await gw.admin("/user/list", {"size": 0}, method="GET")).status_code == 422


async def test_user_delete_takes_the_users_keys_and_memberships_all_or_nothing(gw: Gateway) -> None:
    await gw.team("t1")
    await gw.user("u1")
    await gw.user("u2")
    key = (await gw.generate(user_id="u1", team_id="t1"))["key"]
    kept = (await gw.generate(user_id="u2"))["key"]
    await gw.admin("/team/member_add", {"team_id": "t1", "member": {"user_id": "u1"}})
    assert (await gw.chat(key)).status_code == 200  # cached now

    before = await rows(gw)
    missing = await gw.admin("/user/delete", {"user_ids": ["u1", "ghost"]})
    assert missing.status_code == 404
    assert await rows(gw) == before

    deleted = await gw.admin("/user/delete", {"user_ids": ["u1"]})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted_users": ["u1"]}
    # Its key is gone at once, cached or not; another user's key is untouched.
    assert (await gw.chat(key)).status_code == 401
    assert (await gw.chat(kept)).status_code == 200
    after = await rows(gw)
    assert [row["user_id"] for row in after["vk_users"]] == ["u2"]
    assert after["vk_team_members"] == []
