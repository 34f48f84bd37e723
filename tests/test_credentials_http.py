"""The `headers` extractor behind `AuthcoreMiddleware`: malformed credentials are 400 OpenAI errors, never 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import authcore
from authcore.config import parse_config
from authcore.credentials import HeaderCredentials
from authcore.loader import mapping_resolver
from authcore.middleware import AuthcoreMiddleware
from authcore.resources import Resources
from authcore.runner import Runner

SECRET = "sk-CANARY0123456789abcdef"
OTHER = "sk-OTHER9876543210fedcba"


class Keys(authcore.Plugin[authcore.EmptyConfig]):
    """Knows exactly one key."""

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity | None:
        if credentials.reveal() != SECRET:
            raise authcore.InvalidCredentials(reason_id="key_unknown")
        return authcore.Identity("api_key", user_id="u-1")


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.display_name})


async def realtime(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="realtime")
    await websocket.send_json({"user": websocket.user.display_name})
    await websocket.close()


def make_runner() -> Runner:
    # No `pipeline.extract_credentials`: the built-in `headers` instance is added implicitly.
    config = parse_config({"plugins": {"keys": {"use": "keys"}}})
    assert "headers" in config.plugins
    types: dict[str, Any] = {"headers": HeaderCredentials, "keys": Keys}
    return Runner.from_config(config, mapping_resolver(types))


def make_app(runner: Runner) -> AuthcoreMiddleware:
    routes = [Route("/v1/chat/completions", whoami, methods=["POST"]), WebSocketRoute("/v1/realtime", realtime)]
    return AuthcoreMiddleware(Starlette(routes=routes), runner)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    runner = make_runner()
    await runner.startup(Resources("sqlite+aiosqlite:///:memory:"))
    try:
        transport = httpx.ASGITransport(app=make_app(runner))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http
    finally:
        await runner.shutdown()


async def test_bearer_key_reaches_the_app(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 200
    assert response.json() == {"user": "u-1"}


@pytest.mark.parametrize(
    ("headers", "url", "says"),
    [
        pytest.param([("authorization", f"Bearer\t{SECRET}")], "/v1/chat/completions", "one space", id="tab"),
        pytest.param(
            [("authorization", f"Bearer {SECRET}"), ("authorization", f"Bearer {SECRET}")],
            "/v1/chat/completions",
            "more than once",
            id="duplicate-authorization",
        ),
        pytest.param(
            [("authorization", f"Bearer {SECRET}"), ("x-api-key", OTHER)],
            "/v1/chat/completions",
            "different values",
            id="different values",
        ),
        pytest.param(
            [("authorization", f"Bearer {SECRET}ÄÖÜ".encode())], "/v1/chat/completions", "non-ASCII", id="non-ascii"
        ),
        pytest.param(
            [("authorization", f"Token {SECRET}")], "/v1/chat/completions", "not supported", id="unknown-scheme"
        ),
        pytest.param([], f"/v1/chat/completions?api_key={SECRET}", "URL", id="key-in-url"),
    ],
)
async def test_malformed_credentials_get_a_400_openai_error(
    client: httpx.AsyncClient, headers: list[tuple[str, str | bytes]], url: str, says: str
) -> None:
    raw = [(name.encode(), value if isinstance(value, bytes) else value.encode()) for name, value in headers]
    response = await client.post(url, headers=raw)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_request", None)
    assert says in error["message"]
    everything = response.text + str(response.headers)
    assert SECRET[3:] not in everything
    assert OTHER[3:] not in everything


async def test_missing_credentials_get_a_401_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_basic_on_a_bearer_only_route_gets_a_401_bearer_challenge(client: httpx.AsyncClient) -> None:
    # H14: Basic is not accepted here, so it counts as no credential at all.
    response = await client.post("/v1/chat/completions", headers={"Authorization": "Basic dXNlcjpzZWNyZXQ="})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.fixture
def sync_client() -> Iterator[TestClient]:
    runner = make_runner()
    with TestClient(make_app(runner)) as test_client:
        test_client.portal.call(runner.startup, Resources("sqlite+aiosqlite:///:memory:"))  # type: ignore[union-attr]
        yield test_client
        test_client.portal.call(runner.shutdown)  # type: ignore[union-attr]


def test_websocket_key_in_subprotocol_is_accepted(sync_client: TestClient) -> None:
    protocols = ["realtime", f"openai-insecure-api-key.{SECRET}"]
    with sync_client.websocket_connect("/v1/realtime", subprotocols=protocols) as socket:
        assert socket.receive_json() == {"user": "u-1"}
