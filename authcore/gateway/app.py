"""The demo OpenAI-compatible gateway served by `authcore serve`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authcore.config import AuthcoreConfig
from authcore.gateway import mock_upstream
from authcore.gateway.chat_request import allowed_models, model_allowed
from authcore.gateway.health import PROBE_PATHS, health_routes
from authcore.gateway.settings import config_from_env, gateway_resolver
from authcore.gateway.upstream_proxy import UpstreamProxy
from authcore.lifespan import authcore_lifespan
from authcore.loader import TypeResolver
from authcore.middleware import AuthcoreMiddleware


def create_app(
    config: AuthcoreConfig,
    *,
    resolve: TypeResolver | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The gateway app. The runner is built and started in the lifespan, so a bad config stops start-up.

    `resolve` defaults to installed entry points; `upstream_transport` replaces
    the network transport of the upstream client (tests, custom TLS).
    """
    config = _with_public_probes(config)
    settings = config.gateway
    auth_lifespan = authcore_lifespan(config, resolve=resolve or gateway_resolver(config))
    # Set by the lifespan; read per request without an `app.state` lookup.
    upstream_proxy: list[UpstreamProxy | None] = [None]
    unrestricted_models = JSONResponse(mock_upstream.list_models(settings.mock_models)).body

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with auth_lifespan(app):
            proxy = None
            if settings.upstream_url:
                proxy = UpstreamProxy(settings, config.max_body_bytes, upstream_transport)
            upstream_proxy[0] = proxy
            try:
                yield
            finally:
                upstream_proxy[0] = None
                if proxy is not None:
                    await proxy.aclose()

    async def models(request: Request) -> Response:
        proxy = upstream_proxy[0]
        if proxy is not None:
            return await proxy.models(request)
        patterns = allowed_models(request)
        if patterns is None:
            return Response(unrestricted_models, media_type="application/json")
        listed = [model for model in settings.mock_models if model_allowed(model, patterns)]
        return JSONResponse(mock_upstream.list_models(listed))

    async def chat_completions(request: Request) -> Response:
        proxy = upstream_proxy[0]
        if proxy is not None:
            return await proxy.chat_completions(request)
        return await mock_upstream.chat_completions(request, settings.mock_models, config.max_body_bytes)

    routes = [
        *health_routes(),
        Route("/v1/models", models, methods=["GET"]),
        Route("/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(AuthcoreMiddleware)],
        lifespan=lifespan,
    )


def _with_public_probes(config: AuthcoreConfig) -> AuthcoreConfig:
    """The configuration with the probe paths public, so probes never need credentials."""
    public = [*config.routes.public, *(path for path in PROBE_PATHS if path not in config.routes.public)]
    routes = config.routes.model_copy(update={"public": public})
    return config.model_copy(update={"routes": routes})


def create_app_from_env() -> Starlette:
    """uvicorn factory: the configuration path comes from `AUTHCORE_CONFIG` (unset = embedded default)."""
    return create_app(config_from_env())
