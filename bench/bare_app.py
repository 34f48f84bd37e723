"""The ASGI apps `http_throughput` serves, as uvicorn `--factory` callables.

uvicorn --factory bench.bare_app:bare        # Starlette, one JSON route
uvicorn --factory bench.bare_app:authcore    # the same behind AuthcoreMiddleware, 5 no-op plugins
uvicorn --factory bench.bare_app:gateway     # authcore.gateway.app.create_app, 5 no-op plugins
"""

from __future__ import annotations

import importlib

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from authcore.lifespan import authcore_lifespan
from authcore.middleware import AuthcoreMiddleware
from bench.noop_plugins import five_plugin_config, one_plugin_config, resolver

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet"]
_PAYLOAD = {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "bench"} for name in MODELS]}


async def list_models(request: Request) -> JSONResponse:
    return JSONResponse(_PAYLOAD)


def routes() -> list[Route]:
    return [Route("/v1/models", list_models, methods=["GET"])]


def bare() -> ASGIApp:
    """Plain Starlette: the reference every ratio is taken against."""
    return Starlette(routes=routes())


def authcore() -> ASGIApp:
    """The same app; the runner is built and started in the lifespan."""
    return Starlette(
        routes=routes(),
        middleware=[Middleware(AuthcoreMiddleware)],
        lifespan=authcore_lifespan(five_plugin_config(), resolve=resolver()),
    )


def authcore_one() -> ASGIApp:
    """The same app with a single plugin (`custom_auth` returns the identity): the middleware's floor."""
    return Starlette(
        routes=routes(),
        middleware=[Middleware(AuthcoreMiddleware)],
        lifespan=authcore_lifespan(one_plugin_config(), resolve=resolver()),
    )


def gateway_available() -> bool:
    try:
        module = importlib.import_module("authcore.gateway.app")
    except ImportError:
        return False
    return hasattr(module, "create_app")


def gateway() -> ASGIApp:
    """The real gateway app (built-in mock upstream) with the same five no-op plugins."""
    module = importlib.import_module("authcore.gateway.app")
    app: ASGIApp = module.create_app(five_plugin_config(), resolve=resolver())
    return app
