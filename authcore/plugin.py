"""What a plugin is: a class with a pydantic `Config`, hook methods, and an instance name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Generic, Literal, TypeVar

import pluggy
from pydantic import BaseModel, ConfigDict

from authcore.describe import Describe, describe_nothing

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from authcore.events import AuthEvent
    from authcore.migrations import Migrations
    from authcore.resources import Resources

API_VERSION = 1
"""The hook contract version this core implements. A plugin declaring another is refused."""

hookimpl = pluggy.HookimplMarker("authcore")
"""Mark a plugin method as the implementation of the hook of the same name."""


class EmptyConfig(BaseModel):
    """The config of a plugin that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=BaseModel)


class Plugin(Generic[ConfigT]):
    """Base class of every plugin type.

    The entry point in the `authcore.plugins` group names the class; the runner
    makes one instance per configured use, each with its own validated config.
    Subclasses set `Config` to a pydantic model with `extra="forbid"` and
    `SecretStr` for secrets, and implement hooks as methods marked `@hookimpl`.
    """

    api_version: ClassVar[int] = API_VERSION
    Config: ClassVar[type[BaseModel]] = EmptyConfig
    cpu_only: ClassVar[bool] = False
    """Declares that sync hook methods only compute (no I/O): they are called inline, without a timeout.

    One that must sometimes wait returns a coroutine for that part, which the runner awaits under the timeout."""
    blocking: ClassVar[bool] = False
    """Set to True when sync hook methods do I/O: they then run in a worker thread under the timeout."""
    migrations: ClassVar[Migrations | None] = None
    """The plugin's schema migrations (`authcore.migrations`), run by `authcore migrate` on the shared engine."""

    def __init__(self, name: str, config: ConfigT) -> None:
        self.name = name
        self.config = config

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


Access = Literal["public", "authenticated", "admin"]


@dataclass(frozen=True, slots=True)
class PluginRoute:
    """A route a plugin adds to the app, with the access rule the middleware applies."""

    path: str
    endpoint: Callable[..., Awaitable[object]] | ASGIApp
    methods: Sequence[str] = ("GET",)
    access: Access = "admin"
    """`admin` routes need a `proxy_admin` identity (viewers may use GET and HEAD)."""
    name: str | None = None


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What `startup` hands a plugin instance."""

    resources: Resources
    emit: Callable[[AuthEvent], Awaitable[None]]
    """Send an event to every `on_event` observer; errors there never reach the caller."""
    settings: dict[str, object] = field(default_factory=dict)
    describe: Describe = describe_nothing
    """`await describe(kind, entity_id, settings)`: what every `describe_entity` implementation says about an
    entity (spend, remaining budget...), merged, with the instances that failed named (`authcore.describe`).
    For admin views; never call it on the auth path."""
