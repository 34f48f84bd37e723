"""Admin endpoints for organizations, projects, customers (end users) and the team and user lists, LiteLLM-compatible
where LiteLLM has them.

Served through `AdminApi.routes`, so they share its caller check and error
shapes. Bad input is a 4xx and changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Table
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authcore_virtual_keys.admin import (
    ApiError,
    Backend,
    Handler,
    _body,
    _no_nulls,
    _query,
    _single_param,
    _validate,
)
from authcore_virtual_keys.end_users import end_user_limits
from authcore_virtual_keys.records import handed_over
from authcore_virtual_keys.schemas import (
    CustomerIds,
    DeleteOrganizations,
    DeleteProjects,
    NewCustomer,
    NewOrganization,
    NewProject,
    PageQuery,
    UpdateCustomer,
    UpdateOrganization,
    UpdateProject,
)
from authcore_virtual_keys.store import InUse, now_utc
from authcore_virtual_keys.tables import end_users, keys, organizations, projects, teams, users
from authcore_virtual_keys.views import customer_view, organization_view, project_view, team_view, user_view

logger = logging.getLogger("authcore.virtual_keys")

View = Callable[[dict[str, Any]], dict[str, Any]]
Spent = Callable[[Mapping[str, Any], str, str, Mapping[str, Any] | None], Awaitable[dict[str, Any]]]
"""`AdminApi.spent`: (view, entity kind, entity id, handed-over settings) -> the view with the entity's spend."""


class EntityApi:
    """The organization, project and customer endpoints of one plugin instance."""

    def __init__(self, backend: Backend, spent: Spent) -> None:
        self._backend = backend
        self._spent = spent

    def table(self) -> list[tuple[str, Handler, tuple[str, ...]]]:
        post, get = ("POST",), ("GET",)
        return [
            ("/team/list", self.team_list, get),
            ("/user/list", self.user_list, get),
            ("/organization/new", self.organization_new, post),
            ("/organization/info", self.organization_info, get),
            ("/organization/update", self.organization_update, ("POST", "PATCH")),
            ("/organization/delete", self.organization_delete, ("POST", "DELETE")),
            ("/organization/list", self.organization_list, get),
            ("/project/new", self.project_new, post),
            ("/project/info", self.project_info, get),
            ("/project/update", self.project_update, post),
            ("/project/delete", self.project_delete, ("POST", "DELETE")),
            ("/project/list", self.project_list, get),
            ("/customer/new", self.customer_new, post),
            ("/customer/info", self.customer_info, get),
            ("/customer/update", self.customer_update, post),
            ("/customer/delete", self.customer_delete, post),
            ("/customer/block", self.customer_block, post),
            ("/customer/unblock", self.customer_unblock, post),
            ("/customer/list", self.customer_list, get),
        ]

    # -- shared -------------------------------------------------------------

    async def _create(self, table: Table, values: dict[str, Any], what: str, param: str) -> dict[str, Any]:
        ident = values[param]
        try:
            await self._backend.store.insert_row(table, values)
        except IntegrityError:
            raise ApiError(400, f"{what} {ident!r} already exists.", code="already_exists", param=param) from None
        row = await self._backend.store.get_row(table, ident)
        assert row is not None
        logger.info("%s created id=%s", what.lower(), ident)
        return row

    async def _get(self, table: Table, ident: str, what: str, param: str) -> dict[str, Any]:
        row = await self._backend.store.get_row(table, ident)
        if row is None:
            raise ApiError(404, f"{what} not found.", code="not_found", param=param)
        return row

    async def _update(self, table: Table, body: BaseModel, param: str, what: str) -> dict[str, Any]:
        ident: str = getattr(body, param)
        names = set(body.model_fields_set) - {param}
        _no_nulls(body, names)
        values = {name: getattr(body, name) for name in names}
        row = (
            await self._backend.store.update_row(table, ident, values)
            if values
            else await self._backend.store.get_row(table, ident)
        )
        if row is None:
            raise ApiError(404, f"{what} not found.", code="not_found", param=param)
        logger.info("%s updated id=%s fields=%s", what.lower(), ident, ",".join(sorted(values)))
        return row

    async def _delete(self, table: Table, idents: list[str], what: str, used_by: tuple[Column[Any], ...]) -> None:
        try:
            deleted = await self._backend.store.delete_rows(table, idents, unless_used_by=used_by)
        except InUse as used:
            message = f"{what} {used.ident!r} still has keys or teams; delete or move them first. Nothing was deleted."
            raise ApiError(400, message, code="in_use") from None
        if not deleted:
            raise ApiError(404, f"One or more {what.lower()}s do not exist; nothing was deleted.", code="not_found")
        logger.info("%ss deleted ids=%s", what.lower(), ",".join(idents))

    async def _list(self, request: Request, table: Table, view: View, name: str, kind: str | None) -> Response:
        query = _validate(PageQuery, _query(request))
        rows, total = await self._backend.store.list_rows(table, (query.page - 1) * query.size, query.size)
        return JSONResponse(
            {
                name: [await self._view(view, row, kind, table) for row in rows],
                "total_count": total,
                "current_page": query.page,
                "total_pages": (total + query.size - 1) // query.size,
            }
        )

    async def _view(self, view: View, row: dict[str, Any], kind: str | None, table: Table) -> dict[str, Any]:
        """The row's view, with its spend when other plugins count spend for `kind` (`None`: no spend shown)."""
        shown = view(row)
        if kind is None:
            return shown
        entity_id = str(row[next(iter(table.primary_key.columns)).name])
        settings = end_user_limits(row) if kind == "end_user" else handed_over(row)
        return await self._spent(shown, kind, entity_id, settings)

    def _invalidate_scope(self, column: str, ident: str) -> None:
        # Cached snapshots carry the organization's and project's model lists and blocked flags.
        if column == "org_id":
            self._backend.cache.invalidate_org(ident)
        else:
            self._backend.cache.invalidate_project(ident)

    # -- organizations ------------------------------------------------------

    async def organization_new(self, request: Request) -> Response:
        body = _validate(NewOrganization, await _body(request))
        organization_id = body.organization_id or str(uuid.uuid4())
        values: dict[str, Any] = {
            "organization_id": organization_id,
            "organization_alias": body.organization_alias,
            "models": body.models or [],
            "blocked": bool(body.blocked),
            "metadata": body.metadata or {},
            "max_budget": body.max_budget,
            "tpm_limit": body.tpm_limit,
            "rpm_limit": body.rpm_limit,
            "created_at": now_utc(),
        }
        row = await self._create(organizations, values, "Organization", "organization_id")
        # Keys may have named this organization before it existed (they were denied until now).
        self._invalidate_scope("org_id", organization_id)
        return JSONResponse(await self._view(organization_view, row, "org", organizations))

    async def organization_info(self, request: Request) -> Response:
        ident = _single_param(_query(request), "organization_id")
        row = await self._get(organizations, ident, "Organization", "organization_id")
        return JSONResponse(await self._view(organization_view, row, "org", organizations))

    async def organization_update(self, request: Request) -> Response:
        body = _validate(UpdateOrganization, await _body(request))
        try:
            row = await self._update(organizations, body, "organization_id", "Organization")
        finally:
            self._invalidate_scope("org_id", body.organization_id)
        return JSONResponse(await self._view(organization_view, row, "org", organizations))

    async def organization_delete(self, request: Request) -> Response:
        body = _validate(DeleteOrganizations, await _body(request))
        try:
            used_by = (keys.c.org_id, teams.c.organization_id)
            await self._delete(organizations, body.organization_ids, "Organization", used_by)
        finally:
            for ident in body.organization_ids:
                self._invalidate_scope("org_id", ident)
        return JSONResponse({"deleted_organizations": body.organization_ids})

    async def organization_list(self, request: Request) -> Response:
        return await self._list(request, organizations, organization_view, "organizations", "org")

    # -- team and user lists ------------------------------------------------

    async def team_list(self, request: Request) -> Response:
        return await self._list(request, teams, team_view, "teams", "team")

    async def user_list(self, request: Request) -> Response:
        return await self._list(request, users, user_view, "users", "user")

    # -- projects -----------------------------------------------------------

    async def project_new(self, request: Request) -> Response:
        body = _validate(NewProject, await _body(request))
        if body.organization_id is not None:
            await self._get(organizations, body.organization_id, "Organization", "organization_id")
        project_id = body.project_id or str(uuid.uuid4())
        values: dict[str, Any] = {
            "project_id": project_id,
            "project_alias": body.project_alias,
            "organization_id": body.organization_id,
            "models": body.models or [],
            "blocked": bool(body.blocked),
            "metadata": body.metadata or {},
            "max_budget": body.max_budget,
            "tpm_limit": body.tpm_limit,
            "rpm_limit": body.rpm_limit,
            "created_at": now_utc(),
        }
        row = await self._create(projects, values, "Project", "project_id")
        self._invalidate_scope("project_id", project_id)
        return JSONResponse(project_view(row))

    async def project_info(self, request: Request) -> Response:
        ident = _single_param(_query(request), "project_id")
        return JSONResponse(project_view(await self._get(projects, ident, "Project", "project_id")))

    async def project_update(self, request: Request) -> Response:
        body = _validate(UpdateProject, await _body(request))
        try:
            row = await self._update(projects, body, "project_id", "Project")
        finally:
            self._invalidate_scope("project_id", body.project_id)
        return JSONResponse(project_view(row))

    async def project_delete(self, request: Request) -> Response:
        body = _validate(DeleteProjects, await _body(request))
        try:
            await self._delete(projects, body.project_ids, "Project", (keys.c.project_id,))
        finally:
            for ident in body.project_ids:
                self._invalidate_scope("project_id", ident)
        return JSONResponse({"deleted_projects": body.project_ids})

    async def project_list(self, request: Request) -> Response:
        return await self._list(request, projects, project_view, "projects", None)

    # -- customers (end users) ----------------------------------------------

    async def customer_new(self, request: Request) -> Response:
        body = _validate(NewCustomer, await _body(request))
        values = {
            "user_id": body.user_id,
            "alias": body.alias,
            "blocked": bool(body.blocked),
            "max_budget": body.max_budget,
            "budget_id": body.budget_id,
            "allowed_model_region": body.allowed_model_region,
            "default_model": body.default_model,
            "spend": 0.0,
            "metadata": body.metadata or {},
            "created_at": now_utc(),
        }
        row = await self._create(end_users, values, "Customer", "user_id")
        # Requests may have named this end user before it existed (remembered as unknown).
        self._backend.cache.invalidate_end_user(body.user_id)
        return JSONResponse(await self._view(customer_view, row, "end_user", end_users))

    async def customer_info(self, request: Request) -> Response:
        ident = _single_param(_query(request), "end_user_id")
        row = await self._get(end_users, ident, "Customer", "end_user_id")
        return JSONResponse(await self._view(customer_view, row, "end_user", end_users))

    async def customer_update(self, request: Request) -> Response:
        body = _validate(UpdateCustomer, await _body(request))
        try:
            row = await self._update(end_users, body, "user_id", "Customer")
        finally:
            self._backend.cache.invalidate_end_user(body.user_id)
        return JSONResponse(await self._view(customer_view, row, "end_user", end_users))

    async def customer_delete(self, request: Request) -> Response:
        body = _validate(CustomerIds, await _body(request))
        try:
            await self._delete(end_users, body.user_ids, "Customer", ())
        finally:
            for ident in body.user_ids:
                self._backend.cache.invalidate_end_user(ident)
        return JSONResponse({"deleted_customers": body.user_ids})

    async def _set_blocked(self, request: Request, blocked: bool) -> Response:
        body = _validate(CustomerIds, await _body(request))
        try:
            changed = await self._backend.store.set_flag(end_users, body.user_ids, "blocked", blocked)
        finally:
            for ident in body.user_ids:
                self._backend.cache.invalidate_end_user(ident)
        if not changed:
            raise ApiError(404, "One or more customers do not exist; nothing was changed.", code="not_found")
        logger.info("customers %s ids=%s", "blocked" if blocked else "unblocked", ",".join(body.user_ids))
        return JSONResponse({"blocked_users" if blocked else "unblocked_users": body.user_ids})

    async def customer_block(self, request: Request) -> Response:
        return await self._set_blocked(request, True)

    async def customer_unblock(self, request: Request) -> Response:
        return await self._set_blocked(request, False)

    async def customer_list(self, request: Request) -> Response:
        query = _validate(PageQuery, _query(request))
        rows, _ = await self._backend.store.list_rows(end_users, (query.page - 1) * query.size, query.size)
        # LiteLLM answers /customer/list with a bare list.
        return JSONResponse([await self._view(customer_view, row, "end_user", end_users) for row in rows])
