"""Plugin routes mounted as one dictionary lookup instead of one regex per route."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from authcore.plugin import PluginRoute


class StaticRoutes(BaseRoute):
    """Routes with static paths, matched by a dict lookup on the request path.

    Plugins contribute dozens of admin routes; as separate `Route`s they would
    cost every request one regex each.
    """

    def __init__(self, routes: Iterable[PluginRoute]) -> None:
        self._by_path: dict[str, Route] = {
            route.path: Route(route.path, route.endpoint, methods=list(route.methods), name=route.name)
            for route in routes
        }

    @staticmethod
    def _route_path(scope: Scope) -> str:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        return path[len(root) :] if root and path.startswith(root) else path

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Every request passes here first: the usual empty root path is looked up without a call.
        route = self._by_path.get(scope["path"] if not scope.get("root_path") else self._route_path(scope))
        if route is None:
            return Match.NONE, {}
        return route.matches(scope)

    def shadowed_by(self, route: BaseRoute) -> bool:
        """Whether `route`, placed ahead of these, could take a request meant for one of them.

        A `Route` or `Mount` is asked with each path and method of these (a catch-all or the same path
        answers); any other kind of route (a `Host`, a custom one) may match on more than the path, so it could.
        """
        if not isinstance(route, Route | Mount | WebSocketRoute):
            return True
        for path, mine in self._by_path.items():
            for method in mine.methods or ("GET",):
                probe = {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}
                if route.matches(probe)[0] is not Match.NONE:
                    return True
        return False

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._by_path[self._route_path(scope)].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        for route in self._by_path.values():
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)

    def __len__(self) -> int:
        return len(self._by_path)
