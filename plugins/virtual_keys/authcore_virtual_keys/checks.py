"""The per-request checks on a resolved key: blocked flags, owner state, models, end users."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from authcore import AuthcoreError, DependencyFailure, Forbidden, RequestContext
from authcore_virtual_keys.access import NO_GROUPS, AccessGroups, expand, key_allows, level_allows
from authcore_virtual_keys.records import KeySnapshot
from authcore_virtual_keys.store import KeyStore
from authcore_virtual_keys.tables import end_users

MAX_MODEL_NAME_IN_MESSAGE = 100
logger = logging.getLogger("authcore.virtual_keys")


class InvalidRequest(AuthcoreError):
    """400: the request body cannot be checked."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"
    default_message = "Invalid request."


def check_key(snapshot: KeySnapshot, models: Iterable[str], groups: AccessGroups = NO_GROUPS) -> None:
    """Raise `Forbidden` when the key, its team or its user may not make this request.

    Access group names in any model list stand for their members (`groups`).
    """
    if snapshot.blocked:
        raise Forbidden("This key is blocked; an admin can unblock it.", reason_id="key_blocked", code="key_blocked")
    team = snapshot.team
    if snapshot.team_id is not None and team is None:
        # The key points at a team that no longer exists: its limits cannot be known.
        raise Forbidden("This key's team does not exist.", reason_id="team_not_found", code="team_not_found")
    if team is not None and team.blocked:
        raise Forbidden("This key's team is blocked.", reason_id="team_blocked", code="team_blocked")
    if snapshot.org_id is not None and (snapshot.org is None or snapshot.org.blocked):
        # A missing organization is denied like a missing team: its model list cannot be known.
        message = "This key's organization is blocked or does not exist."
        raise Forbidden(message, reason_id="org_denied", code="org_denied")
    if snapshot.project_id is not None and (snapshot.project is None or snapshot.project.blocked):
        message = "This key's project is blocked or does not exist."
        raise Forbidden(message, reason_id="project_denied", code="project_denied")
    if snapshot.user is not None and snapshot.user.deactivated:
        raise Forbidden("This key's user is deactivated.", reason_id="user_deactivated", code="user_deactivated")
    key_models = expand(snapshot.models, groups)
    team_models = expand(team.models, groups) if team is not None else None
    scopes = tuple(expand(scope, groups) for scope in snapshot.scope_models())
    for model in models:
        allowed = key_allows(key_models, team_models, model)
        if not allowed or not all(level_allows(scope, model) for scope in scopes):
            shown = model if len(model) <= MAX_MODEL_NAME_IN_MESSAGE else model[:MAX_MODEL_NAME_IN_MESSAGE] + "..."
            raise Forbidden(
                f"This key is not allowed to use model {shown!r}.",
                reason_id="model_not_allowed",
                code="model_not_allowed",
                param="model",
            )


END_USER_HEADERS = ("x-litellm-customer-id", "x-litellm-end-user-id")
"""Headers naming the end user (customer) a request is made for, before the body's `user`."""
MAX_END_USER_ID = 255
# One pass over the raw header list, in precedence order: servers give lower-case names.
_END_USER_HEADER_NAMES = tuple(name.encode() for name in END_USER_HEADERS)


async def end_user_id(request: RequestContext) -> str | None:
    """The end user named by the headers, else by the JSON body's `user` (LiteLLM's precedence)."""
    named: dict[bytes, bytes] = {}
    for name, value in request.raw_headers:
        if name in _END_USER_HEADER_NAMES:
            named.setdefault(name, value)
    for header in _END_USER_HEADER_NAMES:
        raw = named.get(header)
        if raw:
            return raw.decode("latin-1")
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    try:
        body = await request.json()
    except Exception:  # noqa: BLE001 - an unreadable body names no end user; other checks judge the body
        return None
    if not isinstance(body, Mapping):
        return None
    user = body.get("user")
    if user is None:
        return None
    if not isinstance(user, str) or not user:
        raise InvalidRequest("user must be a non-empty string.", reason_id="unreadable_end_user", param="user")
    return user


class EndUserCheck:
    """Blocked end users (customers) get 403; unknown ones too when `validate` is set.

    Read from the database on every request that names an end user, so a
    block applies at once in every process.
    """

    def __init__(self, store: Callable[[], KeyStore], *, validate: bool) -> None:
        self._store = store
        self._validate = validate

    async def __call__(self, request: RequestContext) -> None:
        user_id = await end_user_id(request)
        if user_id is None:
            return
        if len(user_id) > MAX_END_USER_ID:
            raise InvalidRequest("The end user id is too long.", reason_id="end_user_id_too_long", param="user")
        try:
            row: dict[str, Any] | None = await self._store().get_row(end_users, user_id)
        except DependencyFailure:
            raise
        except Exception as error:  # noqa: BLE001 - any store failure denies with 503
            logger.warning("end user lookup failed: %s", type(error).__name__)
            raise DependencyFailure("The key store is unavailable.", reason_id="key_store_unavailable") from None
        if row is None and self._validate:
            raise Forbidden("Unknown end user.", reason_id="end_user_unknown", code="end_user_unknown", param="user")
        if row is not None and row["blocked"]:
            raise Forbidden("This end user is blocked.", reason_id="end_user_blocked", code="end_user_blocked")
