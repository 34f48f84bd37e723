"""`describe_entity` fan-out: what other plugins know about an entity, for one plugin's admin views.

The plugin that serves `/key/info` does not track spend; the one that tracks
spend serves no `/key/info`. Neither imports the other: the view asks every
`describe_entity` implementation through `PluginContext.describe` and merges
what comes back. A failing implementation never fails the view and never
turns into a made-up value: it is named in `EntityDescription.unavailable`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

logger = logging.getLogger("authcore")

ENTITY_KINDS = ("key", "team", "user", "team_member", "org", "end_user", "project", "global")
"""What `describe_entity` can be asked about. Ids are those of `Identity`: `key` is `Identity.key_id`
(never a secret), `team_member` is `team_id/user_id`, `end_user` is `Identity.end_user_id`, `global` is `global`."""

_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class EntityDescription:
    """The merged answers of every `describe_entity` implementation for one entity."""

    fields: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    described_by: tuple[str, ...] = ()
    """Instances that returned fields, in configuration order."""
    unavailable: tuple[str, ...] = ()
    """Instances that raised, timed out or broke the contract: the fields they own are missing, not zero."""


Describe = Callable[[str, str, Mapping[str, object]], Awaitable[EntityDescription]]
"""The type of `PluginContext.describe`: (kind, entity_id, settings) -> description."""


async def describe_nothing(kind: str, entity_id: str, settings: Mapping[str, object] = _EMPTY) -> EntityDescription:
    """`PluginContext.describe` where no runner provides one (a context built by hand)."""
    return EntityDescription()


class _HookCall(Protocol):
    """One instance's `describe_entity`, called with the hook's full arguments under its timeout."""

    @property
    def name(self) -> str: ...

    async def __call__(self, *args: Any) -> Any: ...


class EntityDescriber:
    """Calls every `describe_entity` implementation in configuration order and merges the mappings."""

    def __init__(self, calls: Iterable[_HookCall]) -> None:
        self._calls = tuple(calls)

    async def __call__(self, kind: str, entity_id: str, settings: Mapping[str, object] = _EMPTY) -> EntityDescription:
        if kind not in ENTITY_KINDS:
            # A caller's bug, not a plugin's failure: no implementation should see it.
            raise ValueError(f"unknown entity kind {kind!r}; one of {', '.join(ENTITY_KINDS)}")
        # Read-only, so one implementation cannot change what the next one sees.
        shared = MappingProxyType(dict(settings))
        merged: dict[str, object] = {}
        owners: dict[str, str] = {}
        described: list[str] = []
        unavailable: list[str] = []
        for call in self._calls:
            try:
                found = await call(kind, entity_id, shared)
            except TimeoutError:
                logger.warning("plugin instance %r timed out in describe_entity (%s)", call.name, kind)
                unavailable.append(call.name)
                continue
            except Exception as error:  # noqa: BLE001 - one failing plugin must not fail another's view
                # The type only: a message could carry anything the plugin held.
                logger.warning(
                    "plugin instance %r raised %s in describe_entity (%s)", call.name, type(error).__name__, kind
                )
                unavailable.append(call.name)
                continue
            if found is None:
                continue
            if not isinstance(found, Mapping) or not all(isinstance(name, str) for name in found):
                logger.warning("plugin instance %r returned %s from describe_entity", call.name, type(found).__name__)
                unavailable.append(call.name)
                continue
            described.append(call.name)
            for name, value in found.items():
                if name not in merged:
                    merged[name] = value
                    owners[name] = call.name
                elif merged[name] != value:
                    logger.warning(
                        "describe_entity: %r and %r disagree on %r of a %s; %r (earlier in configuration) is kept",
                        owners[name],
                        call.name,
                        name,
                        kind,
                        owners[name],
                    )
        return EntityDescription(MappingProxyType(merged), tuple(described), tuple(unavailable))
