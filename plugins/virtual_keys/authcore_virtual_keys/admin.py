"""The admin API: /key/*, /team/*, /user/* with LiteLLM-compatible request and response shapes.

Organizations, projects and customers live in `entities`; their routes are
served from here too.

The core's middleware already requires `proxy_admin` on these routes (viewers
may GET); each endpoint checks again, so mounting them without the middleware
opens nothing. Bad input is a 400/422 and changes nothing. Every change drops
the affected keys from this process's cache before the response is sent.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authcore import AuthcoreError, PluginRoute
from authcore.describe import Describe, EntityDescription, describe_nothing
from authcore.responses import error_response
from authcore_virtual_keys.access import ALL_TEAM_MODELS, NO_GROUPS, AccessGroups, expand, listed, unrestricted
from authcore_virtual_keys.hashing import KEY_ID_LENGTH, KEY_PREFIX, generate_key, is_token, key_id
from authcore_virtual_keys.records import handed_over, snapshot_from_row
from authcore_virtual_keys.schemas import (
    NO_EXPIRY,
    DeleteKeys,
    DeleteTeams,
    DeleteUsers,
    GenerateKey,
    KeyFields,
    KeyRef,
    NewTeam,
    NewUser,
    RegenerateKey,
    TeamId,
    UpdateKey,
    UpdateTeam,
    UpdateUser,
    parse_duration,
)
from authcore_virtual_keys.store import now_utc
from authcore_virtual_keys.tables import keys, organizations, projects, teams, users
from authcore_virtual_keys.views import key_view, member_view, team_view, user_view, with_spend

if TYPE_CHECKING:
    from authcore_virtual_keys.cache import SnapshotCache
    from authcore_virtual_keys.hashing import KeyHasher
    from authcore_virtual_keys.store import KeyStore

logger = logging.getLogger("authcore.virtual_keys")

ADMIN_ROLE = "proxy_admin"
VIEWER_ROLE = "proxy_admin_viewer"
READ_METHODS = frozenset({"GET", "HEAD"})
NO_STORE = {"cache-control": "no-store"}

Handler = Callable[[Request], Awaitable[Response]]
RequestT = TypeVar("RequestT", bound=BaseModel)

# Request fields stored in a column of another name.
_KEY_COLUMNS = {"organization_id": "org_id"}
# Columns that cannot be null: an explicit null must not silently mean "no restriction".
_NOT_NULL = frozenset({"models", "metadata", "blocked", "deactivated"})


class Backend(Protocol):
    """What the endpoints need from the plugin instance."""

    @property
    def store(self) -> KeyStore: ...

    @property
    def hasher(self) -> KeyHasher: ...

    @property
    def cache(self) -> SnapshotCache: ...


class ApiError(Exception):
    """An admin request that cannot be served; the message is public."""

    def __init__(self, status: int, message: str, *, code: str = "invalid_request", param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    def response(self) -> JSONResponse:
        error_type = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}.get(
            self.status, "invalid_request_error" if self.status < 500 else "api_error"
        )
        body = {"error": {"message": self.message, "type": error_type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


class ListKeysQuery(BaseModel):
    """Query parameters of GET /key/list."""

    model_config = ConfigDict(extra="forbid")

    team_id: str | None = None
    user_id: str | None = None
    key_alias: str | None = None
    organization_id: str | None = None
    page: int = Field(1, ge=1, le=100_000)
    size: int = Field(10, ge=1, le=100)
    return_full_object: bool = False


def _caller_error(request: Request) -> ApiError | None:
    result = request.scope.get("authcore")
    identity = getattr(result, "identity", None) if getattr(result, "allowed", False) else None
    if identity is None:
        return ApiError(401, "Authentication required.", code="invalid_api_key")
    if identity.role == ADMIN_ROLE or (identity.role == VIEWER_ROLE and request.method in READ_METHODS):
        return None
    return ApiError(403, "This route is for proxy admins only.", code="admin_only")


def _validate(model: type[RequestT], data: Any) -> RequestT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        # loc and msg only: the input may be a key.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}" for item in error.errors()
        )
        first = error.errors()[0]["loc"] if error.errors() else ()
        raise ApiError(422, problems, code="invalid_request", param=str(first[0]) if first else None) from None


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return data


def _query(request: Request) -> dict[str, str]:
    query = request.query_params
    for name in query:
        if len(query.getlist(name)) > 1:
            raise ApiError(400, f"The query parameter {name!r} was given more than once.", param=name)
    return dict(query)


def _no_nulls(fields: BaseModel, names: set[str]) -> None:
    for name in names & _NOT_NULL:
        if getattr(fields, name) is None:
            raise ApiError(422, f"{name} cannot be null.", param=name)


def _expiry(duration: str | None) -> datetime | None:
    if duration is None or duration == NO_EXPIRY:
        return None
    return now_utc() + parse_duration(duration)


def _key_columns(fields: KeyFields, names: set[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in names:
        if name in ("key", "duration"):
            continue
        values[_KEY_COLUMNS.get(name, name)] = getattr(fields, name)
    if "duration" in names and fields.duration is not None:
        values["expires_at"] = _expiry(fields.duration)
    return values


class AdminApi:
    """The admin endpoints of one plugin instance."""

    def __init__(self, backend: Backend, access_groups: AccessGroups = NO_GROUPS) -> None:
        self._backend = backend
        self._groups = access_groups
        self.describe: Describe = describe_nothing
        """Set at start-up to `PluginContext.describe`: other plugins' fields (spend) for the info views."""

    def routes(self) -> list[PluginRoute]:
        post, get = ("POST",), ("GET",)
        table: list[tuple[str, Handler, tuple[str, ...]]] = [
            ("/key/generate", self.key_generate, post),
            ("/key/info", self.key_info, ("GET", "POST")),
            ("/key/update", self.key_update, post),
            ("/key/delete", self.key_delete, post),
            ("/key/block", self.key_block, post),
            ("/key/unblock", self.key_unblock, post),
            ("/key/regenerate", self.key_regenerate, post),
            ("/key/list", self.key_list, get),
            ("/team/new", self.team_new, post),
            ("/team/info", self.team_info, get),
            ("/team/update", self.team_update, post),
            ("/team/delete", self.team_delete, post),
            ("/team/block", self.team_block, post),
            ("/team/unblock", self.team_unblock, post),
            ("/user/new", self.user_new, post),
            ("/user/info", self.user_info, get),
            ("/user/update", self.user_update, post),
            ("/user/delete", self.user_delete, post),
        ]
        # Imported here: the entity and membership endpoints reuse this module's helpers.
        from authcore_virtual_keys.entities import EntityApi
        from authcore_virtual_keys.members import MemberApi

        table.extend(MemberApi(self._backend).table())
        table.extend(EntityApi(self._backend, self.spent).table())
        return [PluginRoute(path, _guarded(handler), methods, access="admin") for path, handler, methods in table]

    # -- helpers ------------------------------------------------------------

    async def _token(self, value: SecretStr) -> str:
        """The stored hash a reference names: a raw `sk-` key is hashed; a 64-hex token is taken as is;
        a key id (`Identity.key_id`, as logs and budgets show it) is looked up.
        """
        raw = value.get_secret_value().strip()
        if raw.startswith(KEY_PREFIX):
            return self._backend.hasher.token(raw)
        if is_token(raw.lower()):
            return raw.lower()
        if _is_key_id(raw):
            token = await self._backend.store.token_for_key_id(raw)
            if token is None:
                raise ApiError(404, "Key not found.", code="key_not_found", param="key")
            return token
        raise ApiError(400, "key must be a key (sk-...), its token or its key_id.", param="key")

    async def _check_team(self, team_id: str | None, models: list[str] | None) -> dict[str, Any] | None:
        """The team must exist, and a key's models must stay within the team's. Returns the team."""
        if team_id is None:
            return None
        team = await self._backend.store.get_row(teams, team_id)
        if team is None:
            raise ApiError(400, f"Team {team_id!r} does not exist.", code="team_not_found", param="team_id")
        _within(models, team.get("models"), "team", self._groups)
        return team

    async def _check_owners(
        self, team_id: str | None, org_id: str | None, project_id: str | None, models: list[str] | None
    ) -> str | None:
        """Team, organization and project of a key: each exists and allows the key's models,
        and they agree on the organization. Returns the key's own organization (see `_check_scopes`).

        A key without an organization of its own is in its team's: that one's models bound it too.
        """
        team = await self._check_team(team_id, models)
        own_org = await self._check_scopes(org_id, project_id, models)
        team_org = team.get("organization_id") if team is not None else None
        if team_org is None:
            return own_org
        if own_org is not None and own_org != team_org:
            message = f"The key's organization {own_org!r} is not its team's ({team_org!r})."
            raise ApiError(400, message, code="organization_mismatch", param="organization_id")
        if own_org is None:
            await self._check_scopes(team_org, None, models)
        return own_org

    async def _check_scopes(self, org_id: str | None, project_id: str | None, models: list[str] | None) -> str | None:
        """Organization and project must exist and allow the key's models. Returns the key's organization:

        a project's organization when the key names none, so the organization's models bound the key as well.
        """
        project = None
        if project_id is not None:
            project = await self._backend.store.get_row(projects, project_id)
            if project is None:
                raise ApiError(
                    400, f"Project {project_id!r} does not exist.", code="project_not_found", param="project_id"
                )
            _within(models, project.get("models"), "project", self._groups)
            project_org = project.get("organization_id")
            if project_org is not None:
                if org_id is not None and org_id != project_org:
                    message = "The project belongs to another organization."
                    raise ApiError(400, message, param="organization_id")
                org_id = project_org
        if org_id is not None:
            org = await self._backend.store.get_row(organizations, org_id)
            if org is None:
                message = f"Organization {org_id!r} does not exist."
                raise ApiError(400, message, code="organization_not_found", param="organization_id")
            _within(models, org.get("models"), "organization", self._groups)
        return org_id

    async def described(
        self, kind: str, entity_id: str, settings: Mapping[str, Any] | None = None
    ) -> EntityDescription:
        """What other plugins (budgets) say about an entity; read at call time, `describe` is set after the routes."""
        return await self.describe(kind, entity_id, settings or {})

    async def spent(
        self, view: Mapping[str, Any], kind: str, entity_id: str, settings: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """`view` with the spend other plugins count for the entity (`with_spend`): every admin response uses it."""
        return with_spend(view, await self.described(kind, entity_id, settings))

    async def _key_info_view(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """`key_view` with the key's spend; the key's budget settings go along as `Identity.limits` carries them."""
        snapshot = snapshot_from_row(row)
        return await self.spent(key_view(row), "key", _row_key_id(row), snapshot.limits)

    def _drop_key(self, tokens: list[str], graces: list[str]) -> None:
        """Forget the keys and their grace-period predecessors in the cache."""
        for token in (*tokens, *graces):
            self._backend.cache.invalidate(token)

    async def _graces(self, tokens: list[str]) -> list[str]:
        found: list[str] = []
        for token in tokens:
            found.extend(await self._backend.store.grace_tokens(token))
        return found

    async def _key_row(self, token: str) -> dict[str, Any]:
        row = await self._backend.store.get_row(keys, token)
        if row is None:
            raise ApiError(404, "Key not found.", code="key_not_found", param="key")
        return row

    # -- keys ---------------------------------------------------------------

    async def key_generate(self, request: Request) -> Response:
        body = _validate(GenerateKey, await _body(request))
        org_id = await self._check_owners(body.team_id, body.organization_id, body.project_id, body.models)
        raw = body.key.get_secret_value() if body.key is not None else generate_key()
        token = self._backend.hasher.token(raw)
        values = {
            **_key_columns(body, body.model_fields_set),
            "org_id": org_id,
            "token_hash": token,
            # Fixed from now on: regenerating the key keeps it, so its spend stays its own.
            "key_id": key_id(token),
            "key_prefix": KEY_PREFIX,
            "last4": raw[-4:],
            "models": body.models or [],
            "metadata": body.metadata or {},
            "blocked": bool(body.blocked),
            "expires_at": _expiry(body.duration),
            "spend": 0.0,
            "created_at": now_utc(),
        }
        try:
            await self._backend.store.insert_row(keys, values)
        except IntegrityError:
            raise ApiError(400, "A key with this value or key_alias already exists.", code="key_exists") from None
        # A negative-cache entry (someone tried this key before) must not hide the new key.
        self._backend.cache.invalidate(token)
        logger.info("virtual key created key_id=%s alias=%s", values["key_id"], body.key_alias)
        row = await self._key_row(token)
        return JSONResponse({**key_view(row), "key": raw}, headers=NO_STORE)

    async def key_info(self, request: Request) -> Response:
        if request.method == "POST":
            ref = _validate(KeyRef, await _body(request)).key
        else:
            query = _query(request)
            value = query.get("key") or query.get("token")
            if not value or set(query) - {"key", "token"}:
                raise ApiError(400, "Give exactly the 'key' (or 'token') query parameter.", param="key")
            ref = SecretStr(value)
        token = await self._token(ref)
        row = await self._key_row(token)
        return JSONResponse({"key": token, "info": await self._key_info_view(row)})

    async def key_update(self, request: Request) -> Response:
        body = _validate(UpdateKey, await _body(request))
        token = await self._token(body.key)
        names = set(body.model_fields_set) - {"key"}
        _no_nulls(body, names)
        current = await self._key_row(token)
        values = _key_columns(body, names)
        if names & {"team_id", "organization_id", "project_id", "models"}:
            team_id = body.team_id if "team_id" in names else current.get("team_id")
            org_id = body.organization_id if "organization_id" in names else current.get("org_id")
            project_id = body.project_id if "project_id" in names else current.get("project_id")
            models = body.models if "models" in names else current.get("models")
            own_org = await self._check_owners(team_id, org_id, project_id, models)
            if "organization_id" in names or own_org != current.get("org_id"):
                values["org_id"] = own_org
        if not values:
            return JSONResponse(await self._key_info_view(current))
        graces = await self._graces([token])
        try:
            row = await self._backend.store.update_row(keys, token, values)
        except IntegrityError:
            raise ApiError(400, "Another key already has this key_alias.", code="key_exists") from None
        finally:
            self._drop_key([token], graces)
        if row is None:
            raise ApiError(404, "Key not found.", code="key_not_found", param="key")
        logger.info("virtual key updated key_id=%s fields=%s", _row_key_id(row), ",".join(sorted(values)))
        return JSONResponse(await self._key_info_view(row))

    async def key_delete(self, request: Request) -> Response:
        body = _validate(DeleteKeys, await _body(request))
        if body.keys:
            tokens = [await self._token(value) for value in body.keys]
        else:
            aliases = body.key_aliases or []
            found = await self._backend.store.tokens_for_aliases(aliases)
            missing = [alias for alias in aliases if alias not in found]
            if missing:
                raise ApiError(404, f"No key has the alias {missing[0]!r}; nothing was deleted.", code="key_not_found")
            tokens = [found[alias] for alias in aliases]
        graces = await self._graces(tokens)
        try:
            deleted = await self._backend.store.delete_keys(tokens)
        finally:
            self._drop_key(tokens, graces)
        if not deleted:
            message = "One or more keys do not exist; nothing was deleted."
            raise ApiError(404, message, code="key_not_found", param="keys")
        logger.info("virtual keys deleted key_ids=%s", ",".join(key_id(token) for token in tokens))
        return JSONResponse({"deleted_keys": sorted(set(tokens))})

    async def _set_blocked(self, request: Request, blocked: bool) -> Response:
        token = await self._token(_validate(KeyRef, await _body(request)).key)
        graces = await self._graces([token])
        try:
            row = await self._backend.store.update_row(keys, token, {"blocked": blocked})
        finally:
            self._drop_key([token], graces)
        if row is None:
            raise ApiError(404, "Key not found.", code="key_not_found", param="key")
        logger.info("virtual key %s key_id=%s", "blocked" if blocked else "unblocked", _row_key_id(row))
        return JSONResponse(await self._key_info_view(row))

    async def key_block(self, request: Request) -> Response:
        return await self._set_blocked(request, True)

    async def key_unblock(self, request: Request) -> Response:
        return await self._set_blocked(request, False)

    async def key_regenerate(self, request: Request) -> Response:
        """A new key with the same settings, returned once. The old key ends now, or after `grace_period`."""
        body = _validate(RegenerateKey, await _body(request))
        old = await self._token(body.key)
        raw = body.new_key.get_secret_value() if body.new_key is not None else generate_key()
        new = self._backend.hasher.token(raw)
        if new == old:
            raise ApiError(400, "new_key must differ from the key it replaces.", param="new_key")
        grace = parse_duration(body.grace_period) if body.grace_period is not None else None
        graces = await self._graces([old])
        try:
            row = await self._backend.store.regenerate_key(old, new, raw[-4:], grace)
        except IntegrityError:
            raise ApiError(400, "A key with this value already exists.", code="key_exists", param="new_key") from None
        finally:
            # The old hash's cached snapshot must not outlive this change; the new hash may be remembered as unknown.
            self._drop_key([old, new], graces)
        if row is None:
            raise ApiError(404, "Key not found.", code="key_not_found", param="key")
        logger.info("virtual key regenerated key_id=%s grace=%s", _row_key_id(row), body.grace_period)
        return JSONResponse({**await self._key_info_view(row), "key": raw, "token": new}, headers=NO_STORE)

    async def key_list(self, request: Request) -> Response:
        query = _validate(ListKeysQuery, _query(request))
        filters = {
            column: value
            for column, value in (
                ("team_id", query.team_id),
                ("user_id", query.user_id),
                ("key_alias", query.key_alias),
                ("org_id", query.organization_id),
            )
            if value is not None
        }
        rows, total = await self._backend.store.list_keys(filters, (query.page - 1) * query.size, query.size)
        keys = [await self._key_info_view(row) if query.return_full_object else row["token_hash"] for row in rows]
        return JSONResponse(
            {
                "keys": keys,
                "total_count": total,
                "current_page": query.page,
                "total_pages": (total + query.size - 1) // query.size,
            }
        )

    # -- teams --------------------------------------------------------------

    async def team_new(self, request: Request) -> Response:
        body = _validate(NewTeam, await _body(request))
        await self._check_team_org(None, body.organization_id)
        team_id = body.team_id or str(uuid.uuid4())
        values = {
            "team_id": team_id,
            "team_alias": body.team_alias,
            "organization_id": body.organization_id,
            "models": body.models or [],
            "blocked": bool(body.blocked),
            "metadata": body.metadata or {},
            "max_budget": body.max_budget,
            "tpm_limit": body.tpm_limit,
            "rpm_limit": body.rpm_limit,
            "created_at": now_utc(),
        }
        try:
            await self._backend.store.insert_row(teams, values)
        except IntegrityError:
            raise ApiError(400, f"Team {team_id!r} already exists.", code="team_exists", param="team_id") from None
        row = await self._backend.store.get_row(teams, team_id)
        assert row is not None
        return JSONResponse(await self.spent(team_view(row), "team", team_id, handed_over(row)))

    async def team_info(self, request: Request) -> Response:
        team_id = _single_param(_query(request), "team_id")
        row = await self._backend.store.get_row(teams, team_id)
        if row is None:
            raise ApiError(404, "Team not found.", code="team_not_found", param="team_id")
        info = await self.spent(team_view(row), "team", team_id, handed_over(row))
        info["members_with_roles"] = [member_view(member) for member in await self._backend.store.team_members(team_id)]
        return JSONResponse({"team_id": team_id, "team_info": info})

    async def team_update(self, request: Request) -> Response:
        body = _validate(UpdateTeam, await _body(request))
        names = set(body.model_fields_set) - {"team_id"}
        _no_nulls(body, names)
        values = {name: getattr(body, name) for name in names}
        if "organization_id" in names:
            await self._check_team_org(body.team_id, body.organization_id)
        if not values:
            row = await self._backend.store.get_row(teams, body.team_id)
        else:
            try:
                row = await self._backend.store.update_row(teams, body.team_id, values)
            finally:
                self._invalidate_team(body.team_id)
        if row is None:
            raise ApiError(404, "Team not found.", code="team_not_found", param="team_id")
        logger.info("team updated team_id=%s fields=%s", body.team_id, ",".join(sorted(values)))
        return JSONResponse(await self.spent(team_view(row), "team", body.team_id, handed_over(row)))

    async def team_delete(self, request: Request) -> Response:
        body = _validate(DeleteTeams, await _body(request))
        await self._delete_with_keys(teams, body.team_ids, self._invalidate_team)
        return JSONResponse({"deleted_teams": body.team_ids})

    async def _delete_with_keys(self, table: Table, idents: list[str], invalidate: Callable[[str], None]) -> None:
        """Teams or users with their keys and memberships: all of them, or 404 and nothing."""
        try:
            deleted = await self._backend.store.delete_with_keys(table, idents)
        finally:
            for ident in idents:
                invalidate(ident)
        what = "teams" if table is teams else "users"
        if not deleted:
            message = f"One or more {what} do not exist; nothing was deleted."
            raise ApiError(404, message, code=f"{what[:-1]}_not_found")
        logger.info("%s deleted with their keys ids=%s", what, ",".join(idents))

    async def team_block(self, request: Request) -> Response:
        return await self._set_team_blocked(request, True)

    async def team_unblock(self, request: Request) -> Response:
        return await self._set_team_blocked(request, False)

    async def _set_team_blocked(self, request: Request, blocked: bool) -> Response:
        body = _validate(TeamId, await _body(request))
        try:
            row = await self._backend.store.update_row(teams, body.team_id, {"blocked": blocked})
        finally:
            self._invalidate_team(body.team_id)
        if row is None:
            raise ApiError(404, "Team not found.", code="team_not_found", param="team_id")
        logger.info("team %s team_id=%s", "blocked" if blocked else "unblocked", body.team_id)
        return JSONResponse(await self.spent(team_view(row), "team", body.team_id, handed_over(row)))

    async def _check_team_org(self, team_id: str | None, org_id: str | None) -> None:
        """The organization exists, and no key of the team (`team_id`, when it exists) names another one."""
        if org_id is None:
            return
        if await self._backend.store.get_row(organizations, org_id) is None:
            message = f"Organization {org_id!r} does not exist."
            raise ApiError(400, message, code="organization_not_found", param="organization_id")
        if team_id is None:
            return
        others = sorted((await self._backend.store.team_key_orgs(team_id)) - {org_id})
        if others:
            message = f"Keys of this team belong to organization {others[0]!r}; move them first."
            raise ApiError(400, message, code="organization_mismatch", param="organization_id")

    def _invalidate_team(self, team_id: str) -> None:
        self._backend.cache.invalidate_team(team_id)

    # -- users --------------------------------------------------------------

    async def user_new(self, request: Request) -> Response:
        body = _validate(NewUser, await _body(request))
        user_id = body.user_id or str(uuid.uuid4())
        values = {
            "user_id": user_id,
            "user_role": body.user_role or "internal_user",
            "user_email": body.user_email,
            "deactivated": False,
            "metadata": body.metadata or {},
            "created_at": now_utc(),
        }
        try:
            await self._backend.store.insert_row(users, values)
        except IntegrityError:
            raise ApiError(400, f"User {user_id!r} already exists.", code="user_exists", param="user_id") from None
        # Keys made for this user id before the user existed now gain a role.
        self._invalidate_user(user_id)
        row = await self._backend.store.get_row(users, user_id)
        assert row is not None
        return JSONResponse(await self.spent(user_view(row), "user", user_id))

    async def user_info(self, request: Request) -> Response:
        user_id = _single_param(_query(request), "user_id")
        row = await self._backend.store.get_row(users, user_id)
        if row is None:
            raise ApiError(404, "User not found.", code="user_not_found", param="user_id")
        return JSONResponse({"user_id": user_id, "user_info": await self.spent(user_view(row), "user", user_id)})

    async def user_update(self, request: Request) -> Response:
        body = _validate(UpdateUser, await _body(request))
        names = set(body.model_fields_set) - {"user_id"}
        _no_nulls(body, names)
        values = {name: getattr(body, name) for name in names}
        if not values:
            row = await self._backend.store.get_row(users, body.user_id)
        else:
            try:
                row = await self._backend.store.update_row(users, body.user_id, values)
            finally:
                self._invalidate_user(body.user_id)
        if row is None:
            raise ApiError(404, "User not found.", code="user_not_found", param="user_id")
        logger.info("user updated user_id=%s fields=%s", body.user_id, ",".join(sorted(values)))
        return JSONResponse(await self.spent(user_view(row), "user", body.user_id))

    async def user_delete(self, request: Request) -> Response:
        body = _validate(DeleteUsers, await _body(request))
        await self._delete_with_keys(users, body.user_ids, self._invalidate_user)
        return JSONResponse({"deleted_users": body.user_ids})

    def _invalidate_user(self, user_id: str) -> None:
        self._backend.cache.invalidate_user(user_id)


def _within(models: list[str] | None, allowed: Any, level: str, groups: AccessGroups) -> None:
    """Every model the key's list stands for (access groups expanded) must be allowed by the level's list."""
    allowed_models = expand(tuple(allowed or ()), groups)
    if unrestricted(allowed_models):
        return
    for model in expand(tuple(models or ()), groups):
        if model == ALL_TEAM_MODELS:
            continue
        if not listed(model, allowed_models):
            message = f"Model {model!r} is not one of the {level}'s models; a key cannot exceed its {level}."
            raise ApiError(400, message, param="models")


def _is_key_id(value: str) -> bool:
    """The shape of the key ids this plugin assigns (hex, `KEY_ID_LENGTH` characters)."""
    return len(value) == KEY_ID_LENGTH and all(char in "0123456789abcdef" for char in value)


def _row_key_id(row: Mapping[str, Any]) -> str:
    """The key's public id; a row read before migration 0004 had none (it was the hash's prefix)."""
    return str(row.get("key_id") or key_id(row["token_hash"]))


def _single_param(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value or set(query) - {name}:
        raise ApiError(400, f"Give exactly the {name!r} query parameter.", param=name)
    return value


def _guarded(handler: Handler) -> Handler:
    """Check the caller, run the handler, turn every failure into an OpenAI-shape error."""

    async def endpoint(request: Request) -> Response:
        denied = _caller_error(request)
        if denied is not None:
            return denied.response()
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()
        except AuthcoreError as error:
            return error_response(error)
        except Exception as error:  # noqa: BLE001 - a failed write answers 503, never a stack trace
            logger.warning("admin request %s failed: %s", request.url.path, type(error).__name__)
            return ApiError(503, "The key store is unavailable.", code="dependency_unavailable").response()

    endpoint.__name__ = handler.__name__
    return endpoint
