"""Plugin routes: one dict-dispatched route ahead of the app's own."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from authcore.plugin import PluginRoute
from authcore.plugin_routes import StaticRoutes


async def plugin_info(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"plugin {request.method}")


async def app_route(request: Request) -> PlainTextResponse:
    return PlainTextResponse("app")


def make_app() -> Starlette:
    app = Starlette(routes=[Route("/key/info", app_route), Route("/v1/models", app_route)])
    plugin = [
        PluginRoute("/key/info", plugin_info, methods=("GET", "POST"), name="key_info"),
        PluginRoute("/key/list", plugin_info, methods=("GET",)),
    ]
    app.router.routes.insert(0, StaticRoutes(plugin))
    return app


def test_plugin_routes_are_served_and_take_precedence() -> None:
    client = TestClient(make_app())
    assert client.get("/key/info").text == "plugin GET"
    assert client.post("/key/info").text == "plugin POST"
    assert client.get("/v1/models").text == "app"
    assert client.get("/nowhere").status_code == 404


def test_wrong_method_on_a_plugin_route_is_405() -> None:
    response = TestClient(make_app()).post("/key/list")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_url_path_for_finds_plugin_routes_by_name() -> None:
    assert make_app().url_path_for("key_info") == "/key/info"
