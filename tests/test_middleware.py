"""AuthcoreMiddleware: what the app sees, route rules, body replay, websockets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

import authcore
from authcore.middleware import AuthcoreMiddleware
from authcore.request import RequestContext
from authcore.runner import Runner
from tests._runner_helpers import KeyHeader, build_runner

CALLS: list[str] = []


class Keys(authcore.Plugin[authcore.EmptyConfig]):
    """`good` a user, `admin` / `viewer` admin roles, `narrow` limited to /ok."""

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity | None:
        CALLS.append("resolve")
        key = credentials.reveal()
        if key == "narrow":
            return authcore.Identity("api_key", user_id="narrow", allowed_routes=("/ok",))
        roles = {"good": None, "admin": "proxy_admin", "viewer": "proxy_admin_viewer"}
        if key not in roles:
            raise authcore.InvalidCredentials(reason_id="key_unknown")
        return authcore.Identity("api_key", user_id=f"u-{key}", role=roles[key], scopes=("chat",))


class BodyModel(authcore.Plugin[authcore.EmptyConfig]):
    """Reads the JSON body and forbids the model `forbidden`."""

    @authcore.hookimpl
    async def post_checks(self, request: RequestContext) -> None:
        data = await request.json()
        if isinstance(data, dict) and data.get("model") == "forbidden":
            raise authcore.Forbidden("model not allowed", reason_id="model_not_allowed")


class RawBody(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def post_checks(self, request: RequestContext) -> None:
        await request.body()


async def ok(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "user": request.user.display_name,
            "authenticated": request.user.is_authenticated,
            "scopes": request.auth.scopes,
        }
    )


@requires("authenticated")
async def protected(request: Request) -> PlainTextResponse:
    return PlainTextResponse("secret stuff")


@requires("proxy_admin")
async def admin_scope(request: Request) -> PlainTextResponse:
    return PlainTextResponse("admin stuff")


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"length": len(body), "json": await request.json()})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"healthy {request.user.is_authenticated}")


async def admin_keys(request: Request) -> PlainTextResponse:
    return PlainTextResponse("keys")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user": websocket.user.display_name})
    await websocket.close()


def make_app(runner: Runner) -> Starlette:
    routes = [
        Route("/ok", ok),
        Route("/protected", protected),
        Route("/admin-scope", admin_scope),
        Route("/echo", echo, methods=["POST"]),
        Route("/health/live", health),
        Route("/key/list", admin_keys, methods=["GET", "POST"]),
        WebSocketRoute("/ws", ws),
    ]
    return Starlette(routes=routes, middleware=[Middleware(AuthcoreMiddleware, runner=runner)])


TYPES: dict[str, Any] = {"key": KeyHeader, "keys": Keys, "body": BodyModel, "raw": RawBody}


def make_runner(checks: str = "body", max_body_bytes: int = 1024) -> Runner:
    return build_runner(
        TYPES,
        {"k": "key", "keys": "keys", "check": checks},
        {"extract_credentials": ["k"]},
        routes={"public": ["/health/*"], "admin": ["/key/*"]},
        max_body_bytes=max_body_bytes,
    )


@pytest.fixture
def client() -> Iterator[TestClient]:
    runner = make_runner()
    with TestClient(make_app(runner)) as test_client:
        test_client.portal.call(runner.startup)  # type: ignore[union-attr]
        yield test_client


def test_request_user_and_auth_are_set(client: TestClient) -> None:
    response = client.get("/ok", headers={"x-key": "good"})
    assert response.status_code == 200
    assert response.json() == {"user": "u-good", "authenticated": True, "scopes": ["authenticated", "chat"]}


def test_requires_authenticated_works(client: TestClient) -> None:
    assert client.get("/protected", headers={"x-key": "good"}).text == "secret stuff"
    assert client.get("/admin-scope", headers={"x-key": "good"}).status_code == 403
    assert client.get("/admin-scope", headers={"x-key": "admin"}).text == "admin stuff"


def test_missing_and_invalid_keys_are_denied_before_the_app(client: TestClient) -> None:
    missing = client.get("/protected")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "authentication_error"
    invalid = client.get("/protected", headers={"x-key": "nope"})
    assert invalid.status_code == 401
    assert "secret stuff" not in invalid.text


def test_public_routes_skip_the_pipeline(client: TestClient) -> None:
    CALLS.clear()
    response = client.get("/health/live", headers={"x-key": "nope"})
    assert response.status_code == 200
    assert response.text == "healthy False"
    assert CALLS == []


@pytest.mark.parametrize(
    ("key", "method", "status"),
    [
        ("admin", "GET", 200),
        ("admin", "POST", 200),
        ("viewer", "GET", 200),
        ("viewer", "POST", 403),
        ("good", "GET", 403),
        ("good", "POST", 403),
    ],
)
def test_admin_routes(client: TestClient, key: str, method: str, status: int) -> None:
    response = client.request(method, "/key/list", headers={"x-key": key})
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["type"] == "permission_error"


async def test_route_denial_is_in_the_trace() -> None:
    runner = make_runner()
    scope = {"type": "http", "method": "POST", "path": "/key/list", "headers": [(b"x-key", b"viewer")]}
    result = await runner.authenticate(RequestContext(scope))
    assert result.status_code == 403
    assert ("route", None, "deny", "admin_only") in [
        (s.stage, s.plugin, s.outcome, s.reason_id) for s in result.trace.steps
    ]


@pytest.mark.parametrize(("path", "status"), [("/ok", 200), ("/protected", 403), ("/okay", 403)])
def test_identity_allowed_routes_narrow_access(client: TestClient, path: str, status: int) -> None:
    assert client.get(path, headers={"x-key": "narrow"}).status_code == status


def test_body_read_by_plugin_is_replayed_to_the_app(client: TestClient) -> None:
    payload = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hé" * 100}]}
    response = client.post("/echo", headers={"x-key": "good"}, json=payload)
    assert response.status_code == 200
    assert response.json()["json"] == payload


def test_body_check_can_deny(client: TestClient) -> None:
    response = client.post("/echo", headers={"x-key": "good"}, json={"model": "forbidden"})
    assert response.status_code == 403


def test_body_over_limit_is_413(client: TestClient) -> None:
    response = client.post("/echo", headers={"x-key": "good"}, content=b"x" * 2048)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_streamed_body_over_limit_is_413_without_content_length(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b"y" * 400

    response = client.post("/echo", headers={"x-key": "good"}, content=chunks())
    assert response.status_code == 413


def test_websocket_allowed_connects(client: TestClient) -> None:
    with client.websocket_connect("/ws", headers={"x-key": "good"}) as socket:
        assert socket.receive_json() == {"user": "u-good"}


@pytest.mark.parametrize("headers", [{}, {"x-key": "nope"}])
def test_websocket_denied_is_closed_with_1008(client: TestClient, headers: dict[str, str]) -> None:
    with pytest.raises(WebSocketDisconnect) as caught, client.websocket_connect("/ws", headers=headers) as socket:
        socket.receive_json()
    assert caught.value.code == 1008


def test_websocket_with_a_body_reading_plugin_still_connects() -> None:
    runner = make_runner(checks="raw")
    with TestClient(make_app(runner)) as client:
        client.portal.call(runner.startup)  # type: ignore[union-attr]
        with client.websocket_connect("/ws", headers={"x-key": "good"}) as socket:
            assert socket.receive_json() == {"user": "u-good"}


def test_runner_not_started_is_503() -> None:
    runner = make_runner()
    with TestClient(make_app(runner)) as client:
        response = client.get("/ok", headers={"x-key": "good"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        with pytest.raises(WebSocketDisconnect) as caught, client.websocket_connect("/ws") as socket:
            socket.receive_json()
        assert caught.value.code == 1008


def lifespan_app() -> Starlette:
    """An app whose runner `authcore_lifespan` starts and stores on `app.state`."""
    from authcore.lifespan import authcore_lifespan
    from authcore.loader import mapping_resolver

    return Starlette(
        routes=[Route("/ok", ok)],
        middleware=[Middleware(AuthcoreMiddleware)],
        lifespan=authcore_lifespan(make_runner().config, resolve=mapping_resolver(TYPES)),
    )


def test_runner_from_app_state_via_lifespan() -> None:
    app = lifespan_app()
    with TestClient(app) as client:
        assert client.get("/ok", headers={"x-key": "good"}).status_code == 200
        assert client.get("/ok").status_code == 401


def test_a_restarted_app_is_served_by_its_new_runner() -> None:
    app = lifespan_app()
    with TestClient(app) as client:
        assert client.get("/ok", headers={"x-key": "good"}).status_code == 200
        first = app.state.authcore_runner
    # Stopped: the remembered runner must not keep serving.
    assert TestClient(app).get("/ok", headers={"x-key": "good"}).status_code == 503
    with TestClient(app) as client:
        assert client.get("/ok", headers={"x-key": "good"}).status_code == 200
        assert app.state.authcore_runner is not first
        assert not first.started


def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    import asyncio

    asyncio.run(AuthcoreMiddleware(inner, make_runner())({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan"]
