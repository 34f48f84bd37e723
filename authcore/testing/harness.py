"""Isolated runners built from plugin classes, never from installed entry points."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from authcore.config import BUILTIN_EXTRACTOR, parse_config
from authcore.credentials import HeaderCredentials
from authcore.loader import mapping_resolver
from authcore.plugin import Plugin
from authcore.resources import Resources
from authcore.runner import Runner

MEMORY_DATABASE = "sqlite+aiosqlite:///:memory:"
SOURCE = "<authcore.testing>"

PluginSpecs = Mapping[str, tuple[type[Plugin[Any]], Mapping[str, Any]]]
"""Instance name -> (plugin class, the instance's `config` block as YAML would give it)."""


def type_name(plugin_class: type[Plugin[Any]]) -> str:
    """The `use:` name a test runner gives a class: unique, and readable in errors."""
    return f"{plugin_class.__module__}:{plugin_class.__qualname__}"


def build_runner(
    plugins: PluginSpecs,
    *,
    pipeline: Mapping[str, list[str]] | None = None,
    routes: Mapping[str, list[str]] | None = None,
    timeout_s: float | None = None,
    **settings: Any,
) -> Runner:
    """A runner made only of `plugins`, its config validated as a real file's would be. Not started.

    `settings` are other top-level config keys (`storage`, `max_body_bytes`, ...).
    As in a file, leaving `pipeline.extract_credentials` unset adds the built-in
    `headers` extractor.
    """
    types: dict[str, type[Plugin[Any]]] = {}
    declared: dict[str, dict[str, Any]] = {}
    for name, (plugin_class, config) in plugins.items():
        use = type_name(plugin_class)
        types[use] = plugin_class
        declared[name] = {"use": use, "config": dict(config)}
        if timeout_s is not None:
            declared[name]["timeout_s"] = timeout_s
    types[BUILTIN_EXTRACTOR] = HeaderCredentials
    data: dict[str, Any] = {"plugins": declared, **settings}
    if pipeline is not None:
        data["pipeline"] = dict(pipeline)
    if routes is not None:
        data["routes"] = dict(routes)
    return Runner.from_config(parse_config(data, SOURCE), mapping_resolver(types))


@contextlib.asynccontextmanager
async def started_runner(
    plugins: PluginSpecs,
    *,
    pipeline: Mapping[str, list[str]] | None = None,
    routes: Mapping[str, list[str]] | None = None,
    timeout_s: float | None = None,
    resources: Resources | None = None,
    **settings: Any,
) -> AsyncIterator[Runner]:
    """`build_runner`, started on `resources` (in-memory SQLite by default) and shut down on exit.

    Shutting down closes `resources`, including ones the caller passed.
    """
    runner = build_runner(plugins, pipeline=pipeline, routes=routes, timeout_s=timeout_s, **settings)
    await runner.startup(resources or Resources(MEMORY_DATABASE))
    try:
        yield runner
    finally:
        await runner.shutdown()
