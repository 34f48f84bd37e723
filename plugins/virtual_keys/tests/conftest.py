"""A Starlette gateway behind AuthcoreMiddleware with a `virtual_keys` instance, on SQLite or Postgres."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from authcore_virtual_keys import VirtualKeysPlugin
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authcore.config import parse_config
from authcore.credentials import HeaderCredentials
from authcore.lifespan import authcore_lifespan
from authcore.loader import mapping_resolver
from authcore.middleware import AuthcoreMiddleware
from authcore.resources import Resources

MASTER_KEY = "sk-master-Zq8vN3xR7tLp2WbK9mYc"
HASH_SECRET = "pepper-4f1c9a7e2b8d6f30a5c1e9b7"
INSTANCE = "keys"


async def echo(request: Request) -> JSONResponse:
    """The upstream stand-in: answers with the identity the middleware attached."""
    result = request.scope["authcore"]
    identity = result.identity
    return JSONResponse({"identity": identity.summary(), "models": identity.models, "trace": result.trace.to_dict()})


@dataclass
class Gateway:
    client: httpx.AsyncClient
    resources: Resources
    plugin: VirtualKeysPlugin

    async def admin(
        self, path: str, body: Any = None, *, method: str = "POST", key: str = MASTER_KEY
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"}
        if method == "GET":
            return await self.client.get(path, params=body, headers=headers)
        return await self.client.request(method, path, json=body, headers=headers)

    async def generate(self, **fields: Any) -> dict[str, Any]:
        response = await self.admin("/key/generate", fields)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def team(self, team_id: str, **fields: Any) -> None:
        response = await self.admin("/team/new", {"team_id": team_id, **fields})
        assert response.status_code == 200, response.text

    async def user(self, user_id: str, **fields: Any) -> None:
        response = await self.admin("/user/new", {"user_id": user_id, **fields})
        assert response.status_code == 200, response.text

    async def chat(self, key: str, model: Any = "gpt-4o", **body: Any) -> httpx.Response:
        payload = {"messages": [{"role": "user", "content": "hi"}], **body}
        if model is not None:
            payload["model"] = model
        return await self.client.post("/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {key}"})


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    url: str = request.getfixturevalue("authcore_postgres_url")
    return url


def plugin_config(**overrides: Any) -> dict[str, Any]:
    return {"master_key": MASTER_KEY, "hash_secret": HASH_SECRET, **overrides}


@pytest.fixture
def make_gateway(database_url: str) -> GatewayFactory:
    @contextlib.asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Gateway]:
        config = parse_config(
            {
                "plugins": {INSTANCE: {"use": "virtual_keys", "timeout_s": 10, "config": plugin_config(**overrides)}},
                "storage": {"database_url": database_url},
                "log_decisions": True,
            }
        )
        resources = Resources(database_url)
        resolve = mapping_resolver({"virtual_keys": VirtualKeysPlugin, "headers": HeaderCredentials})
        app = Starlette(
            routes=[Route("/v1/chat/completions", echo, methods=["POST"]), Route("/v1/models", echo)],
            middleware=[Middleware(AuthcoreMiddleware)],
            lifespan=authcore_lifespan(config, resolve=resolve, resources=resources),
        )
        try:
            async with app.router.lifespan_context(app):
                runner = app.state.authcore_runner
                plugin = next(instance for instance in runner.instances if instance.name == INSTANCE)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                    yield Gateway(client, resources, plugin)
        finally:
            await resources.aclose()

    return factory


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    async with make_gateway() as gateway:
        yield gateway
