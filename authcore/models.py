"""The values that flow through the pipeline: credentials, identities, reservations."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import SecretStr

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Credentials:
    """A credential taken from a request.

    `value` is a `SecretStr`: its repr and str are masked, so a `Credentials`
    can be logged or traced safely. Call `value.get_secret_value()` only where
    the raw secret is really needed (hashing, verification).
    """

    kind: str
    """What it is: `"api_key"` for a bearer-style key or token, `"basic"`, or a plugin's own kind."""
    value: SecretStr
    source: str
    """Where it came from, e.g. `"authorization"`, `"x-api-key"`, `"query:key"`."""

    @classmethod
    def of(cls, kind: str, value: str, source: str) -> Credentials:
        return cls(kind, SecretStr(value), source)

    def reveal(self) -> str:
        """The raw secret. Never log or return it."""
        return self.value.get_secret_value()


@dataclass(frozen=True, slots=True)
class Identity:
    """The one principal shape every auth method resolves to.

    `None` in `models` or `allowed_routes` means "no restriction at this level";
    an empty tuple means "nothing allowed".
    """

    auth_method: str
    """How the principal proved itself: `"api_key"`, `"master_key"`, `"jwt"`, `"oauth2"`, `"custom"`..."""
    plugin: str | None = None
    """Name of the plugin instance that resolved this identity."""
    user_id: str | None = None
    team_id: str | None = None
    org_id: str | None = None
    project_id: str | None = None
    end_user_id: str | None = None
    role: str | None = None
    key_id: str | None = None
    """A stable, non-secret id of the credential (a hash prefix or an alias); never the secret."""
    key_alias: str | None = None
    models: tuple[str, ...] | None = None
    allowed_routes: tuple[str, ...] | None = None
    scopes: tuple[str, ...] = ()
    limits: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def is_admin(self) -> bool:
        return self.role == "proxy_admin"

    def summary(self) -> dict[str, str | None]:
        """Non-secret fields for traces, audit events and logs."""
        return {
            "auth_method": self.auth_method,
            "plugin": self.plugin,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "org_id": self.org_id,
            "key_id": self.key_id,
            "role": self.role,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """What an upstream call actually consumed, as reported in its `usage` block."""

    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    """Cost in USD when the upstream or the app already priced it."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Reservation(abc.ABC):
    """A hold made by `reserve_budget`.

    The framework settles every reservation exactly once: `commit` when the
    response completed successfully, `release` when it failed, was cancelled or
    the client went away. Implementations should still be idempotent (keyed by
    `request_id`), because a replica can die between the two.
    """

    plugin: str | None = None
    """Set by the runner to the instance that made the hold."""
    headers: Mapping[str, str] = _EMPTY
    """Headers added to the response of an allowed request (e.g. `x-ratelimit-remaining-requests`)."""
    cancel_safe: bool = False
    """True when cancelling `commit` or `release` part-way loses nothing: each has done its work, or handed
    it on (a command already queued to its store, the charge already recorded), before it first suspends.
    The middleware then awaits settlement directly; otherwise it shields it in a task of its own."""

    @abc.abstractmethod
    async def commit(self, usage: Usage | None) -> None:
        """Charge the actual cost. `usage` is `None` when the app reported none."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Drop the hold without charging."""
