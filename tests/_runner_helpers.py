"""Small builders shared by the core tests: a runner from inline plugin classes, a request, a header extractor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import authcore
from authcore.config import parse_config
from authcore.loader import mapping_resolver
from authcore.request import RequestContext
from authcore.resources import Resources
from authcore.runner import Runner


class KeyHeader(authcore.Plugin[authcore.EmptyConfig]):
    """Extracts `x-key` as an api key (stands in for the built-in `headers` extractor)."""

    @authcore.hookimpl
    async def extract_credentials(self, request: RequestContext) -> authcore.Credentials | None:
        value = request.headers.get("x-key")
        return authcore.Credentials.of("api_key", value, "x-key") if value else None


class KeyTable(authcore.Plugin[authcore.EmptyConfig]):
    """Resolves the keys `good` (a user) and `admin` / `viewer` (admin roles); abstains otherwise."""

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity | None:
        roles = {"good": None, "admin": "proxy_admin", "viewer": "proxy_admin_viewer"}
        key = credentials.reveal()
        if key not in roles:
            return None
        return authcore.Identity("api_key", user_id=f"u-{key}", role=roles[key])


def build_runner(
    types: Mapping[str, type[Any]],
    plugins: Mapping[str, Any],
    pipeline: Mapping[str, list[str]] | None = None,
    **extra: Any,
) -> Runner:
    """A runner for `plugins` ({instance: type name or full instance dict}), extraction by `pipeline` only."""
    specs = {name: {"use": spec} if isinstance(spec, str) else spec for name, spec in plugins.items()}
    stages: dict[str, list[str]] = {"extract_credentials": []}
    stages.update(pipeline or {})
    config = parse_config({"plugins": specs, "pipeline": stages, **extra})
    return Runner.from_config(config, mapping_resolver(dict(types)))


async def started(runner: Runner) -> Runner:
    """Start `runner` with in-memory resources (nothing is connected until a plugin asks)."""
    await runner.startup(Resources("sqlite+aiosqlite://"))
    return runner


def request(
    path: str = "/v1/chat/completions",
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> RequestContext:
    """A RequestContext for an HTTP request with the given headers and body."""
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 5000),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return RequestContext(scope, receive)


def app_with(runner: Runner, *routes: Any) -> Any:
    """A Starlette app behind `AuthcoreMiddleware(runner)` with an `/ok` route plus `routes`."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from authcore.middleware import AuthcoreMiddleware

    async def ok(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse({"user": getattr(user, "display_name", None), "scopes": request.auth.scopes})

    return Starlette(
        routes=[Route("/ok", ok, methods=["GET", "POST"]), *routes],
        middleware=[Middleware(AuthcoreMiddleware, runner=runner)],
    )
