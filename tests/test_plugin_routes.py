"""Plugin routes: one dict-dispatched route, ahead of any app route that could take their requests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Host, Mount, Route
from starlette.testclient import TestClient

from authcore.lifespan import mount_plugin_routes
from authcore.plugin import PluginRoute
from authcore.plugin_routes import StaticRoutes
from authcore.runner import Runner


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


def mounted(app_routes: list[BaseRoute]) -> Starlette:
    app = Starlette(routes=app_routes)
    plugin = [PluginRoute("/key/info", plugin_info, methods=("GET", "POST")), PluginRoute("/key/list", plugin_info)]
    mount_plugin_routes(app, cast(Runner, SimpleNamespace(plugin_routes=[("keys", route) for route in plugin])))
    return app


def position(app: Starlette) -> int:
    return next(index for index, route in enumerate(app.router.routes) if isinstance(route, StaticRoutes))


def test_plugin_routes_go_behind_app_routes_that_cannot_take_their_requests() -> None:
    app = mounted([Route("/v1/models", app_route), Route("/v1/chat/completions", app_route, methods=["POST"])])
    assert position(app) == 2
    client = TestClient(app)
    assert client.get("/v1/models").text == "app"
    assert client.get("/key/info").text == "plugin GET"
    assert client.post("/key/info").text == "plugin POST"


def test_plugin_routes_go_ahead_of_the_first_app_route_that_could_shadow_them() -> None:
    catch_all = Route("/{path:path}", app_route, methods=["GET", "POST"])
    same_path = Route("/key/list", app_route, methods=["POST"])  # another method: a 405 would hide the plugin's
    sub_app = Mount("/", app=Starlette(routes=[Route("/{path:path}", app_route)]))
    by_host = Host("api.example.com", app=Starlette(routes=[Route("/key/info", app_route)]))
    for shadowing in (catch_all, same_path, sub_app, by_host):
        app = mounted([Route("/v1/models", app_route), shadowing, Route("/v2/models", app_route)])
        assert position(app) == 1, shadowing
        client = TestClient(app, base_url="http://api.example.com")
        assert client.get("/key/info").text == "plugin GET", shadowing
        assert client.get("/key/list").text == "plugin GET", shadowing
        assert client.get("/v1/models").text == "app"
