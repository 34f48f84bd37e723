"""Finding plugin types through entry points and building the configured instances.

Only the types the configuration names are imported. Everything that could make
auth behave differently from what the configuration says is a start-up error:
a missing or broken type, two distributions claiming one name, an invalid
config, an unknown hook, a wrapper hook.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from authcore import hookspecs
from authcore.config import AuthcoreConfig, resolve_references, validation_problem
from authcore.errors import ConfigurationError
from authcore.plugin import API_VERSION, Plugin

ENTRY_POINT_GROUP = "authcore.plugins"

# Hooks awaited on the event loop (admin views await `describe_entity`): a sync one must not do I/O.
_REQUEST_PATH_HOOKS = frozenset((*hookspecs.DECISION_HOOKS, "on_event", "describe_entity"))

PluginType = type[Plugin[BaseModel]]
TypeResolver = Callable[[str], PluginType]


@dataclass(frozen=True, slots=True)
class InstalledPlugin:
    """One entry point of the `authcore.plugins` group, not imported."""

    name: str
    value: str
    distribution: str | None
    version: str | None


def installed_plugins() -> list[InstalledPlugin]:
    """Every plugin type installed, one row per (name, distribution)."""
    found: dict[tuple[str, str | None], InstalledPlugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else None
        row = InstalledPlugin(ep.name, ep.value, dist_name, dist.version if dist is not None else None)
        found.setdefault((ep.name, _normalise(dist_name)), row)
    return sorted(found.values(), key=lambda row: (row.name, row.distribution or ""))


def duplicate_names(rows: Iterable[InstalledPlugin]) -> dict[str, list[str]]:
    """Plugin type names claimed by more than one distribution."""
    claims: dict[str, set[str]] = {}
    for row in rows:
        claims.setdefault(row.name, set()).add(_normalise(row.distribution) or "?")
    return {name: sorted(dists) for name, dists in claims.items() if len(dists) > 1}


def _normalise(dist: str | None) -> str | None:
    return dist.lower().replace("_", "-") if dist else None


def entry_point_resolver() -> TypeResolver:
    """Resolve type names through installed entry points, refusing ambiguous names."""
    rows = installed_plugins()
    clashes = duplicate_names(rows)
    if clashes:
        described = "; ".join(f"{name!r} from {', '.join(dists)}" for name, dists in sorted(clashes.items()))
        raise ConfigurationError(f"plugin type names registered by more than one distribution: {described}")
    by_name = {row.name: row for row in rows}

    def resolve(type_name: str) -> PluginType:
        row = by_name.get(type_name)
        if row is None:
            raise ConfigurationError(
                f"plugin type {type_name!r} is not installed (no entry point {type_name!r} in the "
                f"{ENTRY_POINT_GROUP!r} group)"
            )
        try:
            loaded = EntryPoint(row.name, row.value, ENTRY_POINT_GROUP).load()
        except Exception as error:
            raise ConfigurationError(
                f"plugin type {type_name!r} ({row.distribution}) failed to import: {type(error).__name__}: {error}"
            ) from error
        return check_plugin_type(type_name, loaded)

    return resolve


def mapping_resolver(types: Mapping[str, type[Plugin[Any]]]) -> TypeResolver:
    """Resolve type names from a given mapping (tests, embedding). No entry points are read."""

    def resolve(type_name: str) -> PluginType:
        if type_name not in types:
            raise ConfigurationError(f"plugin type {type_name!r} is not available")
        return check_plugin_type(type_name, types[type_name])

    return resolve


def check_plugin_type(type_name: str, loaded: object) -> PluginType:
    """Refuse anything that is not a well-formed `Plugin` subclass for this API version."""
    if not (inspect.isclass(loaded) and issubclass(loaded, Plugin)):
        raise ConfigurationError(f"plugin type {type_name!r}: entry point must name a subclass of authcore.Plugin")
    if loaded.api_version != API_VERSION:
        raise ConfigurationError(
            f"plugin type {type_name!r}: written for hook API {loaded.api_version}, "
            f"this authcore provides {API_VERSION}"
        )
    config_model = loaded.Config
    if not (inspect.isclass(config_model) and issubclass(config_model, BaseModel)):
        raise ConfigurationError(f"plugin type {type_name!r}: Config must be a pydantic BaseModel")
    if config_model.model_config.get("extra") != "forbid":
        raise ConfigurationError(
            f"plugin type {type_name!r}: Config must set extra='forbid' so that typos in settings are errors"
        )
    return loaded


def build_instances(config: AuthcoreConfig, resolve: TypeResolver) -> list[Plugin[BaseModel]]:
    """Import the configured types and make one validated instance per configured use, in file order."""
    types: dict[str, PluginType] = {}
    instances: list[Plugin[BaseModel]] = []
    for name, spec in config.plugins.items():
        if spec.use not in types:
            types[spec.use] = resolve(spec.use)
        plugin_type = types[spec.use]
        path = ("plugins", name, "config")
        raw = resolve_references(spec.config, config.source, path)
        try:
            plugin_config = plugin_type.Config.model_validate(raw)
        except ValidationError as error:
            raise validation_problem(config.source, path, error) from None
        try:
            instance = plugin_type(name, plugin_config)
        except ConfigurationError as error:
            raise ConfigurationError(f"{config.source}: plugins.{name}: {error}") from None
        except Exception as error:
            raise ConfigurationError(
                f"{config.source}: plugins.{name}: {spec.use} failed to initialise: {type(error).__name__}"
            ) from error
        instances.append(instance)
    return instances


def register(instances: Iterable[Plugin[BaseModel]]) -> pluggy.PluginManager:
    """A fresh plugin manager holding exactly these instances, validated against the hook specs."""
    manager = pluggy.PluginManager("authcore")
    manager.add_hookspecs(hookspecs)
    for instance in instances:
        try:
            manager.register(instance, name=instance.name)
        except pluggy.PluginValidationError as error:
            raise ConfigurationError(f"plugin instance {instance.name!r}: {error}") from None
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise ConfigurationError(f"unknown hook: {error}") from None
    for instance in instances:
        for hook, impl in implementations(manager, instance).items():
            if impl.wrapper or impl.hookwrapper:
                raise ConfigurationError(
                    f"plugin instance {instance.name!r}: wrapper hooks are not allowed ({hook}); "
                    "a wrapper could turn a deny into an allow"
                )
            is_async = inspect.iscoroutinefunction(impl.function)
            if hook == "routes":
                if is_async:
                    raise ConfigurationError(f"plugin instance {instance.name!r}: routes() must be a plain function")
            elif (
                hook in _REQUEST_PATH_HOOKS
                and not is_async
                and not (type(instance).cpu_only or type(instance).blocking)
            ):
                # A sync hook that does I/O would stall every request on the event loop.
                raise ConfigurationError(
                    f"plugin instance {instance.name!r}: {hook} is a plain function; make it async, or declare "
                    "the class cpu_only = True (pure computation) or blocking = True (runs in a thread)"
                )
    return manager


def implementations(manager: pluggy.PluginManager, instance: object) -> dict[str, pluggy.HookImpl]:
    """Hook name -> this instance's implementation."""
    found: dict[str, pluggy.HookImpl] = {}
    for caller in manager.get_hookcallers(instance) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is instance:
                found[caller.name] = impl
    return found
