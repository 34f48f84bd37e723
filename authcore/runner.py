"""The pipeline: calls each configured plugin instance, in order, fail closed.

pluggy discovers and validates; this module does every call itself, because
pluggy is synchronous, orders by registration, and stops at the first
exception without saying who raised it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from time import perf_counter_ns
from types import CoroutineType
from typing import Any

from pydantic import BaseModel

from authcore import hookspecs
from authcore.config import AuthcoreConfig
from authcore.deadline import Deadlines, await_with_timeout, finish_with_timeout
from authcore.describe import EntityDescriber
from authcore.errors import (
    AuthcoreError,
    ConfigurationError,
    InvalidCredentials,
    MalformedCredentials,
    MissingCredentials,
    PluginFailure,
)
from authcore.events import AuthEvent
from authcore.loader import TypeResolver, build_instances, entry_point_resolver, implementations, register
from authcore.models import Credentials, Identity, Reservation, Usage
from authcore.plugin import Plugin, PluginContext, PluginRoute
from authcore.request import RequestContext
from authcore.resources import Resources
from authcore.result import AuthResult
from authcore.route_policy import ADMIN, PUBLIC, RoutePolicy
from authcore.trace import Trace

logger = logging.getLogger("authcore")

# Arguments each hook can take, in the order the runner passes them.
HOOK_ARGS: dict[str, tuple[str, ...]] = {
    "extract_credentials": ("request",),
    "custom_auth": ("request", "credentials"),
    "resolve_identity": ("request", "credentials"),
    "post_checks": ("request", "identity"),
    "reserve_budget": ("request", "identity"),
    "startup": ("context",),
    "shutdown": (),
    "on_event": ("event",),
    "describe_entity": ("kind", "entity_id", "settings"),
}

# Exceptions that must keep unwinding: they are the process or the event loop
# talking, not a plugin failing.
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit)


_OUTCOME = {
    "extract_credentials": "credentials",
    "custom_auth": "decided",
    "resolve_identity": "identity",
    "post_checks": "pass",
    "reserve_budget": "reserved",
}


class HookCall:
    """One instance's implementation of one hook, ready to call with the hook's full arguments."""

    __slots__ = (
        "_picks",
        "blocking",
        "deadlines",
        "empty",
        "function",
        "is_async",
        "name",
        "passed",
        "plugin",
        "stage",
        "timeout",
    )

    def __init__(
        self,
        plugin: Plugin[BaseModel],
        hook: str,
        function: Callable[..., Any],
        argnames: Sequence[str],
        timeout: float,
    ) -> None:
        self.plugin = plugin
        self.name = plugin.name
        self.function = function
        self.is_async = asyncio.iscoroutinefunction(function)
        self.blocking = type(plugin).blocking and not self.is_async
        self.timeout = timeout
        self.deadlines = Deadlines(timeout)
        self.stage = hook
        # The trace outcomes of a call that returned something, and of one that returned `None`
        # (for post_checks `None` is the pass itself, not an abstention).
        self.passed = _OUTCOME.get(hook, "returned")
        self.empty = "pass" if hook == "post_checks" else "abstain"
        spec = HOOK_ARGS[hook]
        # None when the implementation takes every argument in spec order (the common case).
        self._picks: tuple[int, ...] | None = (
            None if tuple(argnames) == spec else tuple(spec.index(name) for name in argnames)
        )

    def pick(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The subset of the hook's full arguments this implementation declares."""
        picks = self._picks
        return args if picks is None else tuple(args[index] for index in picks)

    async def __call__(self, *args: Any) -> Any:
        """Call with the hook's full arguments; raise `TimeoutError` past the deadline."""
        if self._picks is not None:
            args = self.pick(args)
        if self.is_async:
            return await await_with_timeout(self.function(*args), self.deadlines)
        if self.blocking:
            return await asyncio.wait_for(asyncio.to_thread(self.function, *args), self.timeout)
        result = self.function(*args)
        if result.__class__ is CoroutineType:
            # A sync hook's part that must wait, awaited as the runner does.
            return await await_with_timeout(result, self.deadlines)
        return result


_ROUTE_PASS = ("route", None, "pass", None, 0)


class _Suspended:
    """A hook call waiting for I/O: its coroutine, what it yielded first, and when the call started."""

    __slots__ = ("coro", "first", "start")

    def __init__(self, coro: Any, first: Any, start: int) -> None:
        self.coro = coro
        self.first = first
        self.start = start


class Runner:
    """Runs the configured pipeline for requests. Build it with `Runner.from_config`."""

    def __init__(self, config: AuthcoreConfig, instances: Sequence[Plugin[BaseModel]]) -> None:
        self.config = config
        self.instances = list(instances)
        self.manager = register(self.instances)
        self.resources: Resources | None = None
        self.started = False
        """True between `startup` and `shutdown` (a plain attribute: the middleware reads it per request)."""
        calls = self._calls_by_hook()
        self.stages: dict[str, list[HookCall]] = {
            stage: self._order(stage, calls.get(stage, {})) for stage in hookspecs.DECISION_HOOKS
        }
        self._extract = self.stages["extract_credentials"]
        self._custom = self.stages["custom_auth"]
        self._resolve = self.stages["resolve_identity"]
        self._checks = self.stages["post_checks"]
        self._reserve = self.stages["reserve_budget"]
        self._startup = list(calls.get("startup", {}).values())
        self._shutdown = list(calls.get("shutdown", {}).values())
        self._observers = list(calls.get("on_event", {}).values())
        self.describe = EntityDescriber(calls.get("describe_entity", {}).values())
        self._route_impls: list[tuple[Plugin[BaseModel], Callable[[], Any]]] = [
            (instance, impl.function)
            for instance in self.instances
            if (impl := implementations(self.manager, instance).get("routes")) is not None
        ]
        self._log_decisions = config.log_decisions
        self.plugin_routes = self._collect_routes()
        self.policy = RoutePolicy(
            [*config.routes.public, *(route.path for _, route in self.plugin_routes if route.access == "public")],
            [*config.routes.admin, *(route.path for _, route in self.plugin_routes if route.access == "admin")],
        )

    @classmethod
    def from_config(cls, config: AuthcoreConfig, resolve: TypeResolver | None = None) -> Runner:
        """Import the configured plugin types (entry points by default) and build the runner."""
        instances = build_instances(config, resolve or entry_point_resolver())
        return cls(config, instances)

    # -- construction -------------------------------------------------------

    def _calls_by_hook(self) -> dict[str, dict[str, HookCall]]:
        calls: dict[str, dict[str, HookCall]] = {}
        for instance in self.instances:
            timeout = self.config.plugins[instance.name].timeout_s if instance.name in self.config.plugins else 1.0
            for hook, impl in implementations(self.manager, instance).items():
                if hook == "routes":
                    continue
                calls.setdefault(hook, {})[instance.name] = HookCall(
                    instance, hook, impl.function, impl.argnames, timeout
                )
        return calls

    def _order(self, stage: str, available: Mapping[str, HookCall]) -> list[HookCall]:
        listed: list[str] | None = getattr(self.config.pipeline, stage)
        if listed is None:
            return list(available.values())
        defined = {instance.name for instance in self.instances}
        seen: set[str] = set()
        ordered: list[HookCall] = []
        for name in listed:
            where = f"{self.config.source}: pipeline.{stage}"
            if name in seen:
                raise ConfigurationError(f"{where}: instance {name!r} is listed twice")
            seen.add(name)
            if name not in defined:
                raise ConfigurationError(f"{where}: instance {name!r} is not defined under plugins")
            if name not in available:
                raise ConfigurationError(f"{where}: instance {name!r} does not implement {stage}")
            ordered.append(available[name])
        return ordered

    def _collect_routes(self) -> list[tuple[str, PluginRoute]]:
        contributed: list[tuple[str, PluginRoute]] = []
        seen: dict[str, str] = {}
        for plugin, function in self._route_impls:
            for route in function() or ():
                if not isinstance(route, PluginRoute):
                    raise ConfigurationError(f"plugin instance {plugin.name!r}: routes() must return PluginRoute items")
                if not route.path.startswith("/") or "{" in route.path:
                    # Access rules match raw paths before routing, so paths must be static.
                    raise ConfigurationError(
                        f"plugin instance {plugin.name!r}: route path {route.path!r} must be a static path"
                    )
                if route.path in seen:
                    raise ConfigurationError(
                        f"route {route.path!r} is contributed by both {seen[route.path]!r} and {plugin.name!r}"
                    )
                seen[route.path] = plugin.name
                contributed.append((plugin.name, route))
        return contributed

    def unused_implementations(self) -> list[tuple[str, str]]:
        """(instance, stage) pairs where an instance implements a stage the pipeline leaves out."""
        unused: list[tuple[str, str]] = []
        for instance in self.instances:
            for hook in implementations(self.manager, instance):
                if hook in self.stages and all(call.name != instance.name for call in self.stages[hook]):
                    unused.append((instance.name, hook))
        return unused

    # -- lifecycle ----------------------------------------------------------

    async def startup(self, resources: Resources | None = None) -> None:
        """Start every instance in order. Any failure stops and shuts down those already started."""
        self.resources = resources or Resources.from_storage(self.config.storage)
        context = PluginContext(resources=self.resources, emit=self.emit, describe=self.describe)
        started: list[HookCall] = []
        for call in self._startup:
            try:
                # Start-up may connect to databases: give it more room than a request.
                args = call.pick((context,))
                await asyncio.wait_for(
                    call.function(*args) if call.is_async else _sync(call.function, *args), max(call.timeout, 30.0)
                )
            except Exception as error:
                await self._shutdown_instances(name for name in (c.name for c in started))
                raise ConfigurationError(
                    f"plugin instance {call.name!r} failed to start: {type(error).__name__}: {error}"
                ) from error
            started.append(call)
        self.started = True

    async def shutdown(self) -> None:
        """Shut every instance down in reverse order, then close shared connections."""
        await self._shutdown_instances(instance.name for instance in self.instances)
        self.started = False
        if self.resources is not None:
            await self.resources.aclose()

    async def _shutdown_instances(self, names: Iterable[str]) -> None:
        wanted = set(names)
        for call in reversed(self._shutdown):
            if call.name not in wanted:
                continue
            try:
                await asyncio.wait_for(call.function() if call.is_async else _sync(call.function), 30.0)
            except Exception as error:  # noqa: BLE001 - one failing shutdown must not stop the others
                logger.warning("plugin instance %r failed to shut down: %s", call.name, type(error).__name__)

    # -- the request path ---------------------------------------------------

    async def authenticate(self, request: RequestContext, *, reserve: bool = True) -> AuthResult:
        """Run the pipeline for one request. Never raises for anything a client or plugin does.

        With `reserve=False` the `reserve_budget` stage is skipped (for callers
        that cannot settle reservations, such as the `AuthenticationBackend` adapter).
        """
        trace = Trace()
        path = request.path
        policy = self.policy
        kind = policy.kinds.get(path)
        if kind is None:
            kind = policy.kind(path)
        if kind == PUBLIC:
            trace.add(("route", None, "public", None, 0))
            return AuthResult(None, trace)
        reservations: list[Reservation] = []
        try:
            # Identification, inline: a coroutine of its own was a measurable part of every request.
            credentials: Credentials | None = None
            identity: Identity | None = None
            for call in self._extract:
                found = self._call(call, trace, (request,))
                if found.__class__ is _Suspended:
                    found = await self._resume(call, trace, found)
                if found is None:
                    continue
                if not isinstance(found, Credentials):
                    raise self._violation(call, "extract_credentials", trace, found)
                if credentials is None:
                    credentials = found
                elif found.value != credentials.value:
                    raise MalformedCredentials(
                        "More than one credential was provided; send exactly one.", reason_id="ambiguous_credentials"
                    )
            for call in self._custom:
                decided = self._call(call, trace, (request, credentials))
                if decided.__class__ is _Suspended:
                    decided = await self._resume(call, trace, decided)
                if decided is None:
                    continue
                if isinstance(decided, Identity):
                    identity = _attributed(decided, call)
                    break
                if isinstance(decided, Credentials):
                    credentials = decided
                    break
                raise self._violation(call, "custom_auth", trace, decided)
            if identity is None:
                if credentials is None:
                    raise MissingCredentials(reason_id="no_credentials")
                for call in self._resolve:
                    resolved = self._call(call, trace, (request, credentials))
                    if resolved.__class__ is _Suspended:
                        resolved = await self._resume(call, trace, resolved)
                    if resolved is None:
                        continue
                    if not isinstance(resolved, Identity):
                        raise self._violation(call, "resolve_identity", trace, resolved)
                    # Inline, not `_attributed`: this is every request's path.
                    identity = resolved if resolved.plugin == call.name else _attributed(resolved, call)
                    break
                else:
                    raise InvalidCredentials(reason_id="unrecognised_credentials")
            if identity.allowed_routes is not None or kind == ADMIN:
                try:
                    policy.check(request.method, path, identity, kind)
                except AuthcoreError as error:
                    trace.add(("route", None, "deny", error.reason_id, 0))
                    raise
            trace.add(_ROUTE_PASS)
            denial: AuthcoreError | None = None
            for call in self._checks:
                try:
                    verdict = self._call(call, trace, (request, identity))
                    if verdict.__class__ is _Suspended:
                        verdict = await self._resume(call, trace, verdict)
                    if verdict is not None:
                        # `False` or a "deny" string must not read as a pass.
                        raise self._violation(call, "post_checks", trace, verdict)
                except AuthcoreError as error:
                    if denial is None:
                        denial = error
            if denial is not None:
                raise denial
            for call in self._reserve if reserve else ():
                held = self._call(call, trace, (request, identity))
                if held.__class__ is _Suspended:
                    held = await self._resume(call, trace, held)
                if held is not None:
                    if not isinstance(held, Reservation):
                        raise self._violation(call, "reserve_budget", trace, held)
                    reservations.append(held)
                    # object.__setattr__: frozen dataclass reservations are legitimate.
                    object.__setattr__(held, "plugin", call.name)
            result = AuthResult(identity, trace, None, reservations)
        except AuthcoreError as error:
            if reservations:
                await self._release_all(reservations, trace)
            result = AuthResult(None, trace, error)
        except _PASS_THROUGH:
            if reservations:
                await asyncio.shield(self._release_all(reservations, trace))
            raise
        except Exception as error:  # noqa: BLE001 - a fault outside any plugin call still denies
            trace.add(("pipeline", None, "error", "internal_error", 0))
            logger.error("authcore pipeline failed: %s", type(error).__name__)
            if reservations:
                await self._release_all(reservations, trace)
            result = AuthResult(None, trace, PluginFailure(reason_id="internal_error"))
        if self._log_decisions:
            self._log(result)
        if self._observers:
            await self.emit(
                AuthEvent(
                    "decision",
                    status=result.status_code,
                    reason_id=result.error.reason_id if result.error else None,
                    identity=result.identity.summary() if result.identity else None,
                    trace=trace,
                )
            )
        return result

    # Every hook call starts in `_call`, a plain function: a sync hook runs there, and an async one is
    # stepped once there. Only a coroutine that really suspends (a database read, a Redis round trip)
    # is finished in `_resume`, so a cache hit costs the plugin's coroutine and no coroutine of ours.

    def _call(self, call: HookCall, trace: Trace, args: tuple[Any, ...]) -> Any:
        """The hook's result, or `_Suspended` for `_resume` to await; records the step, turns failures into denies."""
        start = perf_counter_ns()
        try:
            if call._picks is not None:
                args = call.pick(args)
            if call.blocking:
                return _Suspended(asyncio.to_thread(call.function, *args), None, start)
            result = call.function(*args)
            # An async hook's coroutine, or one a sync hook returned for the part that must wait.
            if result.__class__ is CoroutineType:
                try:
                    first = result.send(None)
                except StopIteration as done:
                    result = done.value
                else:
                    return _Suspended(result, first, start)
        except BaseException as error:  # noqa: BLE001 - fail closed on anything a plugin throws
            raise self._failed(call, trace, error, start)  # noqa: B904 - `_failed` decides the chaining
        outcome = call.empty if result is None else call.passed
        trace.add((call.stage, call.name, outcome, None, perf_counter_ns() - start))
        return result

    async def _resume(self, call: HookCall, trace: Trace, pending: _Suspended) -> Any:
        """Finish a hook call `_call` left waiting, under the hook's timeout; as `_call` for the rest."""
        start = pending.start
        try:
            if call.blocking:
                result = await asyncio.wait_for(pending.coro, call.timeout)
            else:
                # It suspended: only now is a timer worth arming.
                result = await finish_with_timeout(pending.coro, pending.first, call.deadlines)
        except BaseException as error:  # noqa: BLE001 - fail closed on anything a plugin throws
            raise self._failed(call, trace, error, start)  # noqa: B904 - `_failed` decides the chaining
        outcome = call.empty if result is None else call.passed
        trace.add((call.stage, call.name, outcome, None, perf_counter_ns() - start))
        return result

    @staticmethod
    def _failed(call: HookCall, trace: Trace, error: BaseException, start: int) -> BaseException:
        """What to raise for an exception out of a hook call, recorded in the trace.

        The process's own exceptions (cancellation, exit) pass unchanged and unrecorded; a plugin's
        `AuthcoreError` is its deny; anything else becomes a `PluginFailure` (503), with the plugin's
        exception left out of the chain: its message may quote the credential.
        """
        if isinstance(error, _PASS_THROUGH):
            return error
        elapsed = perf_counter_ns() - start
        stage = call.stage
        if isinstance(error, AuthcoreError):
            trace.add((stage, call.name, "deny", error.reason_id, elapsed))
            return error
        if isinstance(error, TimeoutError):
            trace.add((stage, call.name, "timeout", "plugin_timeout", elapsed))
            logger.warning("plugin instance %r timed out in %s after %.3fs", call.name, stage, call.timeout)
            failure = PluginFailure(reason_id="plugin_timeout")
        else:
            trace.add((stage, call.name, "error", "plugin_error", elapsed))
            # The type only, for the same reason.
            logger.warning("plugin instance %r raised %s in %s", call.name, type(error).__name__, stage)
            failure = PluginFailure(reason_id="plugin_error")
        failure.__suppress_context__ = True  # as `raise failure from None`
        return failure

    @staticmethod
    def _violation(call: HookCall, stage: str, trace: Trace, value: object) -> PluginFailure:
        trace.add((stage, call.name, "error", "contract_violation", 0))
        logger.warning("plugin instance %r returned %s from %s", call.name, type(value).__name__, stage)
        return PluginFailure(reason_id="contract_violation")

    async def _release_all(self, reservations: Sequence[Reservation], trace: Trace | None) -> None:
        for held in reversed(reservations):
            start = perf_counter_ns()
            try:
                await held.release()
                outcome, reason = "released", None
            except Exception as error:  # noqa: BLE001 - a failed release must not hide the deny
                outcome, reason = "error", "release_failed"
                logger.warning(
                    "plugin instance %r failed to release a reservation: %s", held.plugin, type(error).__name__
                )
            if trace is not None:
                trace.add(("settle", held.plugin, outcome, reason, perf_counter_ns() - start))

    def settles_cancel_safe(self, result: AuthResult) -> bool:
        """Whether cancelling `settle(result)` part-way loses nothing (no observer, every hold `cancel_safe`)."""
        return not self._observers and all(held.cancel_safe for held in result.reservations)

    async def settle(self, result: AuthResult, *, completed: bool) -> None:
        """Commit `result.usage` to every reservation if the response completed, else release them. Once."""
        if result.settled or not result.reservations:
            result.settled = True
            return
        result.settled = True
        usage: Usage | None = result.usage
        if completed:
            for held in result.reservations:
                start = perf_counter_ns()
                try:
                    await held.commit(usage)
                    outcome, reason = "committed", None
                except Exception as error:  # noqa: BLE001 - the response is already sent
                    outcome, reason = "error", "commit_failed"
                    logger.warning("plugin instance %r failed to commit: %s", held.plugin, type(error).__name__)
                result.trace.add(("settle", held.plugin, outcome, reason, perf_counter_ns() - start))
        else:
            await self._release_all(result.reservations, result.trace)
        if self._observers:
            await self.emit(
                AuthEvent(
                    "settlement",
                    status=200 if completed else None,
                    identity=result.identity.summary() if result.identity else None,
                    trace=result.trace,
                    data={"completed": completed, "usage": usage},
                )
            )

    async def emit(self, event: AuthEvent) -> None:
        """Deliver an event to every observer. Observer failures are logged and dropped."""
        for call in self._observers:
            try:
                await call(event)
            except _PASS_THROUGH:
                raise
            except BaseException as error:  # noqa: BLE001 - observers never change a decision
                logger.warning("observer %r failed on %s: %s", call.name, event.kind, type(error).__name__)

    def _log(self, result: AuthResult) -> None:
        logger.info(
            "decision status=%s request_id=%s\n%s", result.status_code, result.trace.request_id, result.trace.format()
        )


def _attributed(identity: Identity, call: HookCall) -> Identity:
    """`identity` naming the instance that produced it, whatever name it carried."""
    return identity if identity.plugin == call.name else replace(identity, plugin=call.name)


async def _sync(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)
