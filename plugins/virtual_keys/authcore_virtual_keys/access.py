"""Which models a key and its team may call, access groups, and every model a request body names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

ALL_TEAM_MODELS = "all-team-models"
"""In a key's list: the key may use whatever its team may use."""
ALL_PROXY_MODELS = "all-proxy-models"
WILDCARD = "*"

FALLBACK_FIELDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
"""Body fields that make the app call other models when the first one fails."""
ROUTER_OVERRIDE_FIELD = "router_settings_override"
ROUTER_MODEL_FIELDS = (*FALLBACK_FIELDS, "model_group_alias")
"""Fields of `router_settings_override` that can name models (aliases redirect to them)."""
MAX_DEPTH = 8


class UnreadableModels(ValueError):
    """The body names models in a shape that cannot be checked."""


def unrestricted(models: Iterable[str]) -> bool:
    """An empty list, `*` or `all-proxy-models` means no restriction at this level."""
    listed = tuple(models)
    return not listed or WILDCARD in listed or ALL_PROXY_MODELS in listed


SPECIAL_NAMES = frozenset({ALL_TEAM_MODELS, ALL_PROXY_MODELS, WILDCARD})
"""Names with a meaning of their own in a model list: never access groups or their members."""

AccessGroups = Mapping[str, tuple[str, ...]]
"""Access group name -> the model names and `prefix/*` patterns it stands for."""
NO_GROUPS: AccessGroups = MappingProxyType({})


def expand(models: tuple[str, ...], groups: AccessGroups) -> tuple[str, ...]:
    """`models` with each access group name replaced by the group's members (order kept, no duplicates).

    Groups are never empty and never nest (checked in the config), so a
    restricting list stays restricting.
    """
    if not groups or not any(name in groups for name in models):
        return models
    expanded: dict[str, None] = {}
    for name in models:
        for member in groups.get(name, (name,)):
            expanded[member] = None
    return tuple(expanded)


def listed(model: str, allowed: Iterable[str]) -> bool:
    """Exact name, or a `prefix/*` pattern matching `prefix/anything`."""
    for pattern in allowed:
        if pattern == model:
            return True
        if pattern.endswith("/*") and model.startswith(pattern[:-1]) and len(model) > len(pattern) - 1:
            return True
    return False


def level_allows(models: tuple[str, ...], model: str) -> bool:
    """Whether one level's list (a key's or a team's) lets `model` through."""
    return unrestricted(models) or listed(model, models)


def key_allows(key_models: tuple[str, ...], team_models: tuple[str, ...] | None, model: str) -> bool:
    """Key and team must both allow the model: a key never grants more than its team.

    `team_models` is `None` for a key without a team. `all-team-models` in the
    key's list defers to the team, and allows nothing without one.
    """
    if ALL_TEAM_MODELS in key_models:
        if team_models is None:
            return False
    elif not level_allows(key_models, model):
        return False
    return team_models is None or level_allows(team_models, model)


def body_models(body: Any) -> list[str]:
    """Models a JSON body names besides `model`: client-side fallbacks, also inside `router_settings_override`.

    Raise `UnreadableModels` when `model` or one of those fields has a shape
    that cannot be checked, so it cannot slip a model past the checks.
    """
    if not isinstance(body, Mapping):
        return []
    if "model" in body and body["model"] is not None and not isinstance(body["model"], str):
        raise UnreadableModels("model must be a string")
    found: list[str] = []
    for field in FALLBACK_FIELDS:
        _collect(body.get(field), found, field, 0)
    override = body.get(ROUTER_OVERRIDE_FIELD)
    if override is not None:
        if not isinstance(override, Mapping):
            raise UnreadableModels(f"{ROUTER_OVERRIDE_FIELD} must be an object")
        for field in ROUTER_MODEL_FIELDS:
            _collect(override.get(field), found, f"{ROUTER_OVERRIDE_FIELD}.{field}", 0)
    return found


def _collect(value: Any, found: list[str], field: str, depth: int) -> None:
    if value is None:
        return
    if depth > MAX_DEPTH:
        raise UnreadableModels(f"{field} is nested too deeply")
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found, field, depth + 1)
    elif isinstance(value, Mapping):
        if "model" in value:
            # A fallback given as a full request: only its model is called.
            model = value["model"]
            if not isinstance(model, str):
                raise UnreadableModels(f"{field}: a fallback's model must be a string")
            found.append(model)
            return
        # Router style {"gpt-4o": ["gpt-4o-mini"]} or an alias map: keys and values are models.
        for name, item in value.items():
            found.append(str(name))
            _collect(item, found, field, depth + 1)
    else:
        raise UnreadableModels(f"{field} must name models as strings")
