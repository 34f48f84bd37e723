"""A Starlette gateway behind AuthcoreMiddleware with a `virtual_keys` instance, on SQLite or Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
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
REVOCATION_BOUND_S = 1.0
POLL_S = 0.01
SETTLE_S = 0.05
"""Longer than a loopback pub/sub round trip: lets the announcement of a new key pass before B caches it."""


async def echo(request: Request) -> JSONResponse:
    """The upstream stand-in: answers with the identity the middleware attached."""
    result = request.scope["authcore"]
    identity = result.identity
    return JSONResponse(
        {
            "identity": identity.summary(),
            "models": identity.models,
            "metadata": dict(identity.metadata),
            "end_user_id": identity.end_user_id,
            "limits": _plain(identity.limits),
            "trace": result.trace.to_dict(),
        }
    )


def _plain(value: Any) -> Any:
    """Read-only mappings (as identities carry them) as plain dicts, for JSON."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


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


def free_port() -> int:
    """A loopback port nothing listens on (for a server to start on, or a Redis that is not there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    url: str = request.getfixturevalue("authcore_postgres_url")
    return url


def plugin_config(**overrides: Any) -> dict[str, Any]:
    return {"master_key": MASTER_KEY, "hash_secret": HASH_SECRET, **overrides}


@contextlib.asynccontextmanager
async def open_gateway(
    database_url: str, *, redis_url: str | None = None, redis_prefix: str = "authcore:", **overrides: Any
) -> AsyncIterator[Gateway]:
    """One gateway (one runner) on `database_url`, sharing Redis under `redis_prefix` when `redis_url` is given."""
    storage: dict[str, Any] = {"database_url": database_url}
    if redis_url is not None:
        storage.update(redis_url=redis_url, redis_prefix=redis_prefix)
    config = parse_config(
        {
            "plugins": {INSTANCE: {"use": "virtual_keys", "timeout_s": 10, "config": plugin_config(**overrides)}},
            "storage": storage,
            "log_decisions": True,
        }
    )
    resources = Resources(database_url, redis_url, redis_prefix)
    resolve = mapping_resolver({"virtual_keys": VirtualKeysPlugin, "headers": HeaderCredentials})
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", echo, methods=["POST"]),
            Route("/v1/models", echo),
            Route("/v1/models/{model}", echo),
        ],
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


@pytest.fixture
def make_gateway(database_url: str) -> GatewayFactory:
    def factory(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Gateway]:
        return open_gateway(database_url, **overrides)

    return factory


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    async with make_gateway() as gateway:
        yield gateway


async def warm(replica: Gateway, key: str, model: str = "gpt-4o") -> None:
    """Make `replica` hold `key` in its cache, after every earlier announcement was applied."""
    await asyncio.sleep(SETTLE_S)
    assert (await replica.chat(key, model)).status_code == 200
    assert replica.plugin.cache.holds(replica.plugin.hasher.token(key))


async def seconds_until(status: int, request: Callable[[], Awaitable[httpx.Response]], bound: float) -> float:
    """Poll until `request` answers `status`; fail after `bound` seconds."""
    start = time.monotonic()
    while True:
        answered = (await request()).status_code
        elapsed = time.monotonic() - start
        if answered == status:
            return elapsed
        assert elapsed < bound, f"still {answered} after {elapsed:.2f}s"
        await asyncio.sleep(POLL_S)


Replica = Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def replica(authcore_postgres_url: str, authcore_redis_url: str, authcore_redis_prefix: str) -> Replica:
    """Start one more replica on the shared Postgres database and Redis prefix; `**overrides` go to the plugin."""

    def start(
        redis_url: str = authcore_redis_url, **overrides: object
    ) -> contextlib.AbstractAsyncContextManager[Gateway]:
        return open_gateway(authcore_postgres_url, redis_url=redis_url, redis_prefix=authcore_redis_prefix, **overrides)

    return start
