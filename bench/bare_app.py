"""The ASGI apps `http_throughput` serves, as uvicorn `--factory` callables.

uvicorn --factory bench.bare_app:bare        # Starlette, one JSON route
uvicorn --factory bench.bare_app:authcore    # the same behind AuthcoreMiddleware, 5 no-op plugins
uvicorn --factory bench.bare_app:gateway     # authcore.gateway.app.create_app, 5 no-op plugins
uvicorn --factory bench.bare_app:gateway_vk  # the bare route behind AuthcoreMiddleware, headers + virtual_keys
uvicorn --factory bench.bare_app:hashed_dict  # the bare route behind the least an API-key check can do
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import shutil
import tempfile
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from authcore.lifespan import authcore_lifespan
from authcore.middleware import AuthcoreMiddleware
from bench.noop_plugins import API_KEY, five_plugin_config, one_plugin_config, resolver

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


def gateway_vk() -> ASGIApp:
    """The bare route behind AuthcoreMiddleware with `headers` + `virtual_keys` on a fresh SQLite file.

    At start-up the key `noop_plugins.API_KEY` (the value every variant is sent) is
    created through the admin API, limited to two models; the request path then
    serves it from the plugin's cache (one database read per `cache_ttl_s`).
    """
    # Imported here: the other factories must not need the plugin installed.
    from bench.vk_setup import create_key, vk_config, vk_resolver

    directory = tempfile.mkdtemp(prefix="authcore-bench-vk-")
    auth = authcore_lifespan(vk_config(f"sqlite+aiosqlite:///{directory}/keys.db"), resolve=vk_resolver())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with auth(app):
                await create_key(app, API_KEY)
                yield
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    return Starlette(routes=routes(), middleware=[Middleware(AuthcoreMiddleware)], lifespan=lifespan)


_YARDSTICK_SECRET = b"bench-yardstick-secret"


class _HashedDictAuth:
    """HMAC the bearer key and look it up in a dict; 401 otherwise. No plugins, trace or checks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.keys = {hmac.new(_YARDSTICK_SECRET, API_KEY.encode(), hashlib.sha256).hexdigest(): "bench"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            presented = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
            token = hmac.new(_YARDSTICK_SECRET, presented[7:], hashlib.sha256).hexdigest()
            owner = self.keys.get(token) if presented[:7].lower() == b"bearer " else None
            if owner is None:
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
            scope["user"] = owner
        await self.app(scope, receive, send)


def hashed_dict() -> ASGIApp:
    """A yardstick, not a product: the least an API-key middleware can do per request, for comparison."""
    return Starlette(routes=routes(), middleware=[Middleware(_HashedDictAuth)])
