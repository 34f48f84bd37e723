"""An HTTP client for a tiny Starlette app behind `AuthcoreMiddleware`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from authcore.lifespan import mount_plugin_routes
from authcore.middleware import AuthcoreMiddleware
from authcore.result import AuthResult
from authcore.runner import Runner

BASE_URL = "http://testserver"
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def echo_identity(request: Request) -> JSONResponse:
    """Answer with the identity the middleware attached (`null` on a public route)."""
    result: AuthResult = request.scope["authcore"]
    identity = result.identity
    return JSONResponse({"identity": identity.summary() if identity is not None else None})


def echo_app(runner: Runner) -> Starlette:
    """A Starlette app echoing the identity on every path, with the runner's plugin routes mounted."""
    app = Starlette(routes=[Route("/{path:path}", echo_identity, methods=_METHODS)])
    mount_plugin_routes(app, runner)
    return app


@contextlib.asynccontextmanager
async def app_client(runner: Runner, *, app: ASGIApp | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An `httpx.AsyncClient` calling `app` (default: `echo_app`) wrapped in `AuthcoreMiddleware`.

    The runner must already be started (see `started_runner`); otherwise every
    request gets 503, as in production.
    """
    wrapped = AuthcoreMiddleware(app if app is not None else echo_app(runner), runner=runner)
    transport = httpx.ASGITransport(app=wrapped)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client
