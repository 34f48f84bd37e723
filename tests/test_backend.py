"""AuthcoreBackend inside Starlette's AuthenticationMiddleware: JSON denies, requires() works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import authcore
from authcore.backend import AuthcoreBackend, on_auth_error
from authcore.runner import Runner
from tests._runner_helpers import KeyHeader, KeyTable, build_runner


class Gate(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def post_checks(self, identity: authcore.Identity) -> None:
        if identity.user_id == "u-viewer":
            raise authcore.Forbidden("viewers may not", reason_id="viewer_blocked")


class Reserve(authcore.Plugin[authcore.EmptyConfig]):
    calls = 0

    @authcore.hookimpl
    async def reserve_budget(self) -> None:
        type(self).calls += 1


@requires("authenticated")
async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.user.display_name)


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"up {request.user.is_authenticated}")


def make_runner() -> Runner:
    return build_runner(
        {"key": KeyHeader, "table": KeyTable, "gate": Gate, "reserve": Reserve},
        {"k": "key", "t": "table", "g": "gate", "r": "reserve"},
        {"extract_credentials": ["k"]},
    )


def make_app(runner: Runner) -> Starlette:
    backend = AuthcoreBackend(runner)
    return Starlette(
        routes=[Route("/whoami", whoami), Route("/health/live", health)],
        middleware=[Middleware(AuthenticationMiddleware, backend=backend, on_error=on_auth_error)],
    )


@pytest.fixture
def client() -> Iterator[TestClient]:
    runner = make_runner()
    with TestClient(make_app(runner)) as test_client:
        test_client.portal.call(runner.startup)  # type: ignore[union-attr]
        yield test_client


def test_allowed_request_reaches_requires(client: TestClient) -> None:
    Reserve.calls = 0
    response = client.get("/whoami", headers={"x-key": "good"})
    assert response.status_code == 200
    assert response.text == "u-good"
    assert Reserve.calls == 0  # the backend cannot settle, so it never reserves


@pytest.mark.parametrize(
    ("headers", "status", "header", "value"),
    [
        ({}, 401, "www-authenticate", "Bearer"),
        ({"x-key": "unknown"}, 401, "www-authenticate", 'Bearer error="invalid_token"'),
        ({"x-key": "viewer"}, 403, None, None),
    ],
)
def test_denies_are_json_with_the_right_status(
    client: TestClient, headers: dict[str, str], status: int, header: str | None, value: str | None
) -> None:
    response = client.get("/whoami", headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    if header:
        assert response.headers[header] == value


def test_public_route_is_anonymous(client: TestClient) -> None:
    assert client.get("/health/live").text == "up False"


def test_runner_not_started_is_503_json() -> None:
    runner = make_runner()
    with TestClient(make_app(runner)) as client:
        response = client.get("/whoami", headers={"x-key": "good"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "service_unavailable_error"


def test_foreign_authentication_error_is_a_generic_401() -> None:
    from starlette.authentication import AuthenticationError

    response = on_auth_error(None, AuthenticationError("detail with sk-canary"))  # type: ignore[arg-type]
    assert response.status_code == 401
    assert b"sk-canary" not in response.body
