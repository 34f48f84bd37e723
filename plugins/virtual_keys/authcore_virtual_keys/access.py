"""Which models a key and its team may call, and access groups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

ALL_TEAM_MODELS = "all-team-models"
"""In a key's list: the key may use whatever its team may use."""
ALL_PROXY_MODELS = "all-proxy-models"
WILDCARD = "*"


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
