"""Build and start the runner in the app's lifespan, so a bad config stops start-up."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette

from authcore.config import AuthcoreConfig, load_config
from authcore.loader import TypeResolver
from authcore.middleware import STATE_KEY
from authcore.plugin_routes import StaticRoutes
from authcore.resources import Resources
from authcore.runner import Runner

Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]


def authcore_lifespan(
    config: AuthcoreConfig | str | os.PathLike[str],
    *,
    resolve: TypeResolver | None = None,
    resources: Resources | None = None,
) -> Lifespan:
    """A Starlette `lifespan` that builds, starts and stops the runner.

    The started runner is stored on `app.state` for `AuthcoreMiddleware` and
    `AuthcoreBackend`; plugin routes are added to the app's router.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loaded = config if isinstance(config, AuthcoreConfig) else load_config(config)
        runner = Runner.from_config(loaded, resolve)
        await runner.startup(resources)
        mount_plugin_routes(app, runner)
        setattr(app.state, STATE_KEY, runner)
        restore = _tune_collector() if loaded.tune_gc_after_startup else None
        try:
            yield
        finally:
            if restore is not None:
                gc.unfreeze()
                gc.set_threshold(*restore)
            setattr(app.state, STATE_KEY, None)
            await runner.shutdown()

    return lifespan


def mount_plugin_routes(app: Starlette, runner: Runner) -> None:
    """Mount the plugins' routes, as one dict-dispatched route, just ahead of the first of the app's routes
    that could take a request meant for one of them (a catch-all, the same path), else behind them all.

    Plugin routes always win over the app's; placed behind routes that cannot shadow them, they cost the
    app's own requests nothing (ahead of all, they were about 4 % of a cached-key request in process).
    """
    if not runner.plugin_routes:
        return
    mounted = StaticRoutes(route for _, route in runner.plugin_routes)
    routes = app.router.routes
    position = next((index for index, route in enumerate(routes) if mounted.shadowed_by(route)), len(routes))
    routes.insert(position, mounted)


GEN0_THRESHOLD = 10_000
"""Allocations between young collections once serving (CPython's default is 700)."""


def _tune_collector() -> tuple[int, int, int]:
    """Freeze the start-up heap and collect the young generation less often; return the old thresholds.

    Imports, plugins, tables and caches make a heap of 100k+ objects that every
    full collection walked: under load that was a third of a budgets gateway's
    CPU. Frozen, they are still freed by reference counting; only cycles among
    them wait for `gc.unfreeze()` at shutdown. With 700 a young collection came
    every ~15 requests and walked the objects of every request in flight; at
    10,000 a Redis budgets gateway served ~20 % more requests, a bare Starlette
    app none more (`bench/README.md`).
    """
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GEN0_THRESHOLD), before[1], before[2])
    return before
