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
from authcore.gateway.health import HealthFirst
from authcore.gateway.settings import config_from_env, gateway_resolver
from authcore.gateway.upstream_proxy import UpstreamProxy
from authcore.lifespan import authcore_lifespan
from authcore.loader import TypeResolver
from authcore.middleware import AuthcoreMiddleware

UPSTREAM_STATE_KEY = "authcore_upstream"


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
    settings = config.gateway
    auth_lifespan = authcore_lifespan(config, resolve=resolve or gateway_resolver(config))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with auth_lifespan(app):
            proxy = None
            if settings.upstream_url:
                proxy = UpstreamProxy(settings, config.max_body_bytes, upstream_transport)
            setattr(app.state, UPSTREAM_STATE_KEY, proxy)
            try:
                yield
            finally:
                setattr(app.state, UPSTREAM_STATE_KEY, None)
                if proxy is not None:
                    await proxy.aclose()

    def upstream(request: Request) -> UpstreamProxy | None:
        proxy: UpstreamProxy | None = getattr(request.app.state, UPSTREAM_STATE_KEY, None)
        return proxy

    async def models(request: Request) -> Response:
        proxy = upstream(request)
        if proxy is not None:
            return await proxy.models(request)
        patterns = allowed_models(request)
        listed = [model for model in settings.mock_models if model_allowed(model, patterns)]
        return JSONResponse(mock_upstream.list_models(listed))

    async def chat_completions(request: Request) -> Response:
        proxy = upstream(request)
        if proxy is not None:
            return await proxy.chat_completions(request)
        return await mock_upstream.chat_completions(request, settings.mock_models, config.max_body_bytes)

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(HealthFirst), Middleware(AuthcoreMiddleware)],
        lifespan=lifespan,
    )


def create_app_from_env() -> Starlette:
    """uvicorn factory: the configuration path comes from `AUTHCORE_CONFIG` (unset = embedded default)."""
    return create_app(config_from_env())
