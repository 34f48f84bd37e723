"""Team membership endpoints (`/team/member_add`, `/team/member_update`, `/team/member_delete`), LiteLLM's shapes.

A member has a role in the team (`admin` or `user`) and may have a budget there
(`max_budget_in_team`): a key of that team and user hands it over to budgets as
`Identity.limits["team_member"]`. Served through `AdminApi.routes`, so they share
its caller check and error shapes. Bad input is a 4xx and changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authcore_virtual_keys.admin import ApiError, Backend, Handler, _body, _validate
from authcore_virtual_keys.schemas import AddTeamMembers, TeamMemberReference, UpdateTeamMember
from authcore_virtual_keys.store import Row, now_utc
from authcore_virtual_keys.tables import teams, users
from authcore_virtual_keys.views import member_view, team_view, user_view

logger = logging.getLogger("authcore.virtual_keys")


class MemberApi:
    """The team membership endpoints of one plugin instance."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def table(self) -> list[tuple[str, Handler, tuple[str, ...]]]:
        post = ("POST",)
        return [
            ("/team/member_add", self.member_add, post),
            ("/team/member_update", self.member_update, post),
            ("/team/member_delete", self.member_delete, post),
        ]

    async def members_of(self, team_id: str) -> list[dict[str, Any]]:
        """`members_with_roles` of a team view."""
        return [member_view(row) for row in await self._backend.store.team_members(team_id)]

    async def member_add(self, request: Request) -> Response:
        body = _validate(AddTeamMembers, await _body(request))
        store = self._backend.store
        team = await self._team(body.team_id)
        members = body.member
        by_email = await store.user_ids_by_email(m.user_email for m in members if m.user_id is None and m.user_email)
        new_users: list[Row] = []
        memberships: list[dict[str, Any]] = []
        for member in members:
            user_id = member.user_id or by_email.get(member.user_email or "")
            if user_id is None or (member.user_id is not None and await store.get_row(users, user_id) is None):
                # As LiteLLM: a member who is not a user yet becomes one.
                user_id = user_id or str(uuid.uuid4())
                new_users.append(_new_user(user_id, member.user_email))
                if member.user_email:
                    by_email[member.user_email] = user_id
            memberships.append(
                {
                    "user_id": user_id,
                    "role": member.role,
                    "max_budget_in_team": body.max_budget_in_team,
                    "created_at": now_utc(),
                }
            )
        if len({m["user_id"] for m in memberships}) != len(memberships):
            raise ApiError(400, "A user is listed twice.", code="duplicate_member", param="member")
        created = _unique(new_users)
        outcome = await store.add_members(body.team_id, memberships, created)
        if outcome == "no_team":
            raise _team_not_found()
        if outcome == "member":
            raise ApiError(400, "A user is already a member of this team.", code="already_member", param="member")
        self._backend.cache.invalidate_team(body.team_id)
        logger.info("team members added team_id=%s count=%d", body.team_id, len(memberships))
        created_rows = [await store.get_row(users, user["user_id"]) for user in created]
        return JSONResponse(
            {
                **team_view(team),
                "members_with_roles": await self.members_of(body.team_id),
                "updated_users": [user_view(row) for row in created_rows if row is not None],
                "updated_team_memberships": [{"team_id": body.team_id, **member_view(m)} for m in memberships],
            }
        )

    async def member_update(self, request: Request) -> Response:
        body = _validate(UpdateTeamMember, await _body(request))
        user_id = await self._member_id(body)
        fields = ("role", "max_budget_in_team")
        values: dict[str, Any] = {name: getattr(body, name) for name in fields if name in body.model_fields_set}
        if values.get("role", "") is None:
            raise ApiError(400, "role cannot be null.", param="role")
        if values and not await self._backend.store.update_member(body.team_id, user_id, values):
            raise _not_a_member()
        self._backend.cache.invalidate_team(body.team_id)
        logger.info("team member updated team_id=%s fields=%s", body.team_id, ",".join(sorted(values)))
        found = next(
            (row for row in await self._backend.store.team_members(body.team_id) if row["user_id"] == user_id), None
        )
        if found is None:
            raise _not_a_member()
        return JSONResponse({"team_id": body.team_id, **member_view(found)})

    async def member_delete(self, request: Request) -> Response:
        body = _validate(TeamMemberReference, await _body(request))
        user_id = await self._member_id(body)
        if not await self._backend.store.delete_member(body.team_id, user_id):
            raise _not_a_member()
        self._backend.cache.invalidate_team(body.team_id)
        logger.info("team member removed team_id=%s", body.team_id)
        team = await self._team(body.team_id)
        return JSONResponse({**team_view(team), "members_with_roles": await self.members_of(body.team_id)})

    async def _team(self, team_id: str) -> Row:
        row = await self._backend.store.get_row(teams, team_id)
        if row is None:
            raise _team_not_found()
        return row

    async def _member_id(self, body: TeamMemberReference) -> str:
        """The user id the body names (by e-mail too); 404 when the team does not exist."""
        await self._team(body.team_id)
        if body.user_id is not None:
            return body.user_id
        assert body.user_email is not None
        found = (await self._backend.store.user_ids_by_email([body.user_email])).get(body.user_email)
        if found is None:
            raise _not_a_member()
        return found


def _new_user(user_id: str, email: str | None) -> Row:
    return {
        "user_id": user_id,
        "user_role": "internal_user",
        "user_email": email,
        "deactivated": False,
        "metadata": {},
        "created_at": now_utc(),
    }


def _unique(new_users: list[Row]) -> list[Row]:
    return list({user["user_id"]: user for user in new_users}.values())


def _team_not_found() -> ApiError:
    return ApiError(404, "Team not found.", code="team_not_found", param="team_id")


def _not_a_member() -> ApiError:
    return ApiError(404, "This user is not a member of the team.", code="member_not_found", param="user_id")
