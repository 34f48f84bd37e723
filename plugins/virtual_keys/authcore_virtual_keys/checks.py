"""The per-request checks on a resolved key: blocked flags, owner state, models."""

from __future__ import annotations

from collections.abc import Iterable

from authcore import AuthcoreError, Forbidden
from authcore_virtual_keys.access import key_allows
from authcore_virtual_keys.records import KeySnapshot

MAX_MODEL_NAME_IN_MESSAGE = 100


class InvalidRequest(AuthcoreError):
    """400: the request body cannot be checked."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"
    default_message = "Invalid request."


def check_key(snapshot: KeySnapshot, models: Iterable[str]) -> None:
    """Raise `Forbidden` when the key, its team or its user may not make this request."""
    if snapshot.blocked:
        raise Forbidden("This key is blocked; an admin can unblock it.", reason_id="key_blocked", code="key_blocked")
    team = snapshot.team
    if snapshot.team_id is not None and team is None:
        # The key points at a team that no longer exists: its limits cannot be known.
        raise Forbidden("This key's team does not exist.", reason_id="team_not_found", code="team_not_found")
    if team is not None and team.blocked:
        raise Forbidden("This key's team is blocked.", reason_id="team_blocked", code="team_blocked")
    if snapshot.user is not None and snapshot.user.deactivated:
        raise Forbidden("This key's user is deactivated.", reason_id="user_deactivated", code="user_deactivated")
    team_models = team.models if team is not None else None
    for model in models:
        if not key_allows(snapshot.models, team_models, model):
            shown = model if len(model) <= MAX_MODEL_NAME_IN_MESSAGE else model[:MAX_MODEL_NAME_IN_MESSAGE] + "..."
            raise Forbidden(
                f"This key is not allowed to use model {shown!r}.",
                reason_id="model_not_allowed",
                code="model_not_allowed",
                param="model",
            )
