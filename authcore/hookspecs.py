"""The hooks a plugin can implement.

pluggy only reads these signatures to validate plugins at start-up; the runner
calls every implementation itself, in the order the configuration gives,
awaiting coroutines, under the instance's timeout. Implementations may accept
any subset of a hook's arguments.

Decision hooks (`extract_credentials`, `custom_auth`, `resolve_identity`,
`post_checks`, `reserve_budget`) follow one rule: return `None` to abstain,
return a value to decide, raise an `authcore.errors.AuthcoreError` to deny.
Any other exception, a timeout, or a value of the wrong type denies with 503.
A deny stops the pipeline: no later plugin gets a chance to allow.
Wrapper implementations (`wrapper=True`, `hookwrapper=True`) are refused, and
`tryfirst`/`trylast` are ignored: order is configuration.

A decision hook may be a plain function (on a `cpu_only` class) that returns a
coroutine when it has to wait: the runner awaits it as it would an async
implementation's, under the same timeout. Its common path (a cache hit) is then
a plain call, without a coroutine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from authcore.events import AuthEvent
    from authcore.models import Credentials, Identity, Reservation
    from authcore.plugin import PluginContext, PluginRoute
    from authcore.request import RequestContext

hookspec = pluggy.HookspecMarker("authcore")

DECISION_HOOKS = ("extract_credentials", "custom_auth", "resolve_identity", "post_checks", "reserve_budget")
"""The stages of the pipeline, in the order the runner runs them."""


@hookspec
async def extract_credentials(request: RequestContext) -> Credentials | None:
    """Find a credential in the request.

    Called for every instance in `pipeline.extract_credentials`, in that order;
    all of them run. Return `None` when your credential is absent. Raise
    `MalformedCredentials` when it is present but malformed or duplicated.
    If two instances return credentials with different values the request is
    rejected with 400 (one credential per request); equal values are merged
    and the first instance's result is kept.
    """


@hookspec
async def custom_auth(request: RequestContext, credentials: Credentials | None) -> Identity | Credentials | None:
    """An escape hatch that may take over authentication.

    Called for each instance in `pipeline.custom_auth`, in order, after
    extraction, even when no credential was found (`credentials` is then
    `None`). Stops at the first non-`None` result. An `Identity` skips
    `resolve_identity`; `Credentials` replace the extracted ones and the
    pipeline goes on. Either way `post_checks` and `reserve_budget` still run.
    """


@hookspec
async def resolve_identity(request: RequestContext, credentials: Credentials) -> Identity | None:
    """Turn a credential into the principal it stands for.

    Called only when a credential exists and `custom_auth` produced no
    identity, for each instance in `pipeline.resolve_identity`, in order.
    Stops at the first non-`None` result. Return `None` only when the
    credential is not yours (another plugin may own it). When it is yours but
    unknown, revoked or expired, raise `InvalidCredentials` (401): the chain
    stops there. If every instance abstains, the request gets 401.
    """


@hookspec
async def post_checks(request: RequestContext, identity: Identity) -> None:
    """Check what the resolved principal may do (models, routes, blocked flags...).

    Called for every instance in `pipeline.post_checks`, in order; all run,
    even after one denied, so the trace is complete. Return `None` to pass,
    raise `Forbidden` (or another `AuthcoreError`) to deny. Any deny wins; the
    first one in pipeline order is the response.
    """


@hookspec
async def reserve_budget(request: RequestContext, identity: Identity) -> Reservation | None:
    """Hold budget or rate-limit capacity for this request before the app runs.

    Called for every instance in `pipeline.reserve_budget`, in order; all run.
    Return a `Reservation`, or `None` when no limit applies. Raise
    `BudgetExceeded` or `RateLimited` (429) to deny. When one instance denies,
    the reservations already made are released (in reverse order) before the
    response is sent. Reservations are committed with the actual usage when
    the response completes, and released on error or client disconnect.
    """


@hookspec
async def startup(context: PluginContext) -> None:
    """Connect to what the plugin needs (databases, caches, key sets).

    Called once per instance when the app starts, in configuration order,
    before any request. An exception stops start-up with an error naming the
    instance.
    """


@hookspec
async def shutdown() -> None:
    """Release what `startup` acquired.

    Called once per instance when the app stops, in reverse configuration
    order. Exceptions are logged and do not stop the other instances.
    """


@hookspec
def routes() -> Sequence[PluginRoute]:
    """Routes the plugin adds to the app (admin APIs, callbacks).

    Called once per instance when the app is built. Must be a plain function.
    Each route carries its access rule; the paths of two routes may not clash.
    """
    return ()


@hookspec
async def on_event(event: AuthEvent) -> None:
    """Observe decisions, settlements and plugin events (audit, metrics, alerts).

    Called for every instance that implements it, in configuration order,
    after the decision is made. Exceptions and timeouts are logged and
    swallowed: an observer can never change a decision.
    """


@hookspec
async def describe_entity(kind: str, entity_id: str, settings: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Add the fields this plugin owns (spend, remaining budget...) to another plugin's admin view of an entity.

    Called only when a plugin awaits `PluginContext.describe(kind, entity_id, settings)`
    while it builds an admin response (`virtual_keys`' `/key/info`, `/team/info`...),
    never on the auth path. Every instance implementing it is called, in
    configuration order, each under its `timeout_s`. `kind` is one of
    `authcore.describe.ENTITY_KINDS` (`key`, `team`, `user`, `team_member`,
    `org`, `end_user`, `project`, `global`) and `entity_id` the id `Identity`
    carries for it (`key_id` for a key, never the secret; `team_id/user_id`
    for a team member). `settings` is a read-only mapping of what the caller
    stores for the entity and hands out in `Identity.limits` (for a key:
    `max_budget`, `budget_duration`...); it may be empty.

    Return a mapping of JSON values, or `None` when the entity is nothing to
    you. The mappings are merged: when two instances give one field, the first
    in configuration order wins (a different later value is logged). An
    implementation that raises, times out or returns another type is logged
    (exception type only) and skipped; the caller learns its instance name in
    `EntityDescription.unavailable` and must show those fields as unavailable,
    never as a made-up value.
    """
