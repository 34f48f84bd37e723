"""The per-request checks on a resolved key: blocked flags, owner state, models, end users."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from authcore import AuthcoreError, DependencyFailure, Forbidden, InvalidRequest, RequestContext
from authcore_virtual_keys.access import NO_GROUPS, AccessGroups, expand, key_allows, level_allows
from authcore_virtual_keys.end_users import EndUserCache, EndUserRecord, Miss
from authcore_virtual_keys.records import KeySnapshot

MAX_MODEL_NAME_IN_MESSAGE = 100
logger = logging.getLogger("authcore.virtual_keys")


def check_key(snapshot: KeySnapshot, models: Iterable[str], groups: AccessGroups = NO_GROUPS) -> None:
    """Raise `Forbidden` when the key, its team or its user may not make this request.

    Access group names in any model list stand for their members (`groups`).
    The request path uses `KeyAccess`, the same checks with their fixed parts
    worked out once per snapshot.
    """
    denial = owner_denial(snapshot)
    if denial is not None:
        raise _forbidden(denial)
    key_models = expand(snapshot.models, groups)
    team_models = expand(snapshot.team.models, groups) if snapshot.team is not None else None
    scopes = tuple(expand(scope, groups) for scope in snapshot.scope_models())
    for model in models:
        if not model_allowed(key_models, team_models, scopes, model):
            raise model_denied(model)


Denial = tuple[str, str]
"""(message, reason id); the reason id is also the error code."""


def owner_denial(snapshot: KeySnapshot) -> Denial | None:
    """Why the key, its team, organization, project or user denies every request; `None` when nothing does."""
    if snapshot.blocked:
        return "This key is blocked; an admin can unblock it.", "key_blocked"
    team = snapshot.team
    if snapshot.team_id is not None and team is None:
        # The key points at a team that no longer exists: its limits cannot be known.
        return "This key's team does not exist.", "team_not_found"
    if team is not None and team.blocked:
        return "This key's team is blocked.", "team_blocked"
    if snapshot.org_id is not None and (snapshot.org is None or snapshot.org.blocked):
        # A missing organization is denied like a missing team: its model list cannot be known.
        return "This key's organization is blocked or does not exist.", "org_denied"
    if snapshot.project_id is not None and (snapshot.project is None or snapshot.project.blocked):
        return "This key's project is blocked or does not exist.", "project_denied"
    if snapshot.user is not None and snapshot.user.deactivated:
        return "This key's user is deactivated.", "user_deactivated"
    return None


def _forbidden(denial: Denial) -> Forbidden:
    message, reason = denial
    return Forbidden(message, reason_id=reason, code=reason)


def model_allowed(
    key_models: tuple[str, ...],
    team_models: tuple[str, ...] | None,
    scopes: tuple[tuple[str, ...], ...],
    model: str,
) -> bool:
    """Key, team, organization and project (lists already expanded) all let `model` through."""
    return key_allows(key_models, team_models, model) and all(level_allows(scope, model) for scope in scopes)


def model_denied(model: str) -> Forbidden:
    shown = model if len(model) <= MAX_MODEL_NAME_IN_MESSAGE else model[:MAX_MODEL_NAME_IN_MESSAGE] + "..."
    return Forbidden(
        f"This key is not allowed to use model {shown!r}.",
        reason_id="model_not_allowed",
        code="model_not_allowed",
        param="model",
    )


MEMO_MODELS = 256
"""Model verdicts remembered per snapshot; clients choose the names, so the memo is bounded."""
MEMO_MODEL_NAME = 256
"""Longer names are checked every time rather than kept."""


class KeyAccess:
    """One snapshot as the request path uses it, for one plugin instance.

    The snapshot never changes and the access groups are fixed per instance,
    so the identity, the owner verdict, whether models are restricted, the
    expanded model lists and the verdict per model are worked out once
    instead of on every request. `check` raises exactly what `check_key` does.
    """

    __slots__ = (
        "_denial",
        "_key_models",
        "_scopes",
        "_team_models",
        "_verdicts",
        "expires_at",
        "identity",
        "restricts",
    )

    def __init__(self, snapshot: KeySnapshot, plugin: str, groups: AccessGroups) -> None:
        self.identity = snapshot.identity(plugin, groups)
        self.expires_at: float | None = snapshot.expires_at.timestamp() if snapshot.expires_at is not None else None
        """POSIX seconds: the request path compares it with `time.time()`, no datetime built."""
        self.restricts = snapshot.restricts_models()
        self._denial = owner_denial(snapshot)
        self._key_models = expand(snapshot.models, groups)
        self._team_models = expand(snapshot.team.models, groups) if snapshot.team is not None else None
        self._scopes = tuple(expand(scope, groups) for scope in snapshot.scope_models())
        self._verdicts: dict[str, bool] = {}

    def check(self, models: Iterable[str]) -> None:
        if self._denial is not None:
            # A new exception each time: a shared one would collect every request's traceback.
            raise _forbidden(self._denial)
        for model in models:
            allowed = self._verdicts.get(model)
            if allowed is None:
                allowed = model_allowed(self._key_models, self._team_models, self._scopes, model)
                if len(self._verdicts) < MEMO_MODELS and len(model) <= MEMO_MODEL_NAME:
                    self._verdicts[model] = allowed
            if not allowed:
                raise model_denied(model)


END_USER_HEADERS = ("x-litellm-customer-id", "x-litellm-end-user-id")
"""Headers naming the end user (customer) a request is made for, before the body's `user`."""
MAX_END_USER_ID = 255
# Compared with the raw header names: servers give them lower-case.
_CUSTOMER_HEADER, _END_USER_HEADER = (name.encode() for name in END_USER_HEADERS)


def header_end_user(raw_headers: Iterable[tuple[bytes, bytes]], extra: bytes | None = None) -> str | None:
    """The first non-empty of: the first customer-id header, the first end-user-id header, the first
    `extra` header (the configured one, LiteLLM's `user_header_name`)."""
    customer = end_user = configured = None
    for name, value in raw_headers:
        if name == _CUSTOMER_HEADER:
            if customer is None:
                customer = value
        elif name == _END_USER_HEADER:
            if end_user is None:
                end_user = value
        elif name == extra and configured is None:
            configured = value
    for found in (customer, end_user, configured):
        if found:
            return found.decode("latin-1")
    return None


BODY_END_USER_FALLBACKS = (("litellm_metadata", "user"), ("metadata", "user_id"), (None, "safety_identifier"))
"""Where LiteLLM looks for the end user after the body's `user`, in this order (the last is OpenAI Responses')."""


def body_end_user(body: Any) -> str | None:
    """The end user a parsed JSON body names: its `user`, else the first of `BODY_END_USER_FALLBACKS` that is a
    non-empty string. 400 when `user` is there but not a non-empty string."""
    if not isinstance(body, Mapping):
        return None
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str) or not user:
            raise InvalidRequest("user must be a non-empty string.", reason_id="unreadable_end_user", param="user")
        return user
    for container, field in BODY_END_USER_FALLBACKS:
        holder = body if container is None else body.get(container)
        found = holder.get(field) if isinstance(holder, Mapping) else None
        if isinstance(found, str) and found:
            return found
    return None


class EndUserCheck:
    """Blocked end users (customers) get 403; unknown ones too when `validate` is set.

    Rows are read through `EndUserCache`: a change made through the admin API
    applies at once in every process (invalidation), any other within the
    cache's freshness bound.
    """

    def __init__(self, cache: EndUserCache, *, validate: bool, header: str | None = None) -> None:
        self._cache = cache
        self._validate = validate
        self.header = header.lower().encode("latin-1") if header else None
        """The configured extra header naming the end user (raw, lower-case), read after the standard two."""

    async def check(self, user_id: str) -> EndUserRecord | None:
        """The end user named by the request (`end_user_id`) may be served; its record, if it has one."""
        record = await self.find(user_id)
        self.judge(record)
        return record

    async def find(self, user_id: str) -> EndUserRecord | None:
        """The end user's record (`None`: no row). 400 for an id too long to be one; 503 when unreadable."""
        if len(user_id) > MAX_END_USER_ID:
            raise InvalidRequest("The end user id is too long.", reason_id="end_user_id_too_long", param="user")
        found = self._cache.fresh(user_id)
        if not isinstance(found, Miss):
            return found
        try:
            return await self._cache.get(user_id)
        except DependencyFailure:
            raise
        except Exception as error:  # noqa: BLE001 - any store failure denies with 503
            logger.warning("end user lookup failed: %s", type(error).__name__)
            raise DependencyFailure("The key store is unavailable.", reason_id="key_store_unavailable") from None

    def judge(self, record: EndUserRecord | None) -> None:
        """403 for a blocked end user, or an unknown one when end users are validated."""
        if record is None:
            if self._validate:
                raise Forbidden(
                    "Unknown end user.", reason_id="end_user_unknown", code="end_user_unknown", param="user"
                )
        elif record.blocked:
            raise Forbidden("This end user is blocked.", reason_id="end_user_blocked", code="end_user_blocked")


class NamedEndUser:
    """The end user a request names, as `resolve_identity` found it, for `post_checks` to judge.

    A malformed `user` or a failed judgement is raised by `check`, in `post_checks`, like every 403/400.
    """

    __slots__ = ("error", "record", "user_id")

    def __init__(self, user_id: str | None, record: EndUserRecord | None, error: AuthcoreError | None) -> None:
        self.user_id = user_id
        self.record = record
        self.error = error

    def check(self, end_users: EndUserCheck) -> None:
        if self.error is not None:
            raise self.error
        if self.user_id is not None:
            end_users.judge(self.record)


async def find_end_user(request: RequestContext, end_users: EndUserCheck, user_id: str | None) -> NamedEndUser | None:
    """A `NamedEndUser` when the request names an end user (`user_id` from `header_end_user`, else the body's
    `user`: call it only when there is a body or a `user_id`), with its record; else `None`.

    Raises only when the record cannot be read (503); everything else is left to `NamedEndUser.check`.
    """
    if user_id is None:
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001 - an unreadable body names no end user; the model check reads it again
            return None
        try:
            user_id = body_end_user(body)
        except InvalidRequest as error:
            return NamedEndUser(None, None, error)
        if user_id is None:
            return None
    try:
        record = await end_users.find(user_id)
    except InvalidRequest as error:
        return NamedEndUser(user_id, None, error)
    return NamedEndUser(user_id, record, None)
