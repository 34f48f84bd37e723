"""Throwaway Postgres databases and Redis key prefixes on shared test servers.

Everything here is synchronous (asyncpg runs on its own loop in a worker
thread), so the fixtures built on it work whatever pytest-asyncio mode, or
none, a project uses.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DATABASE_ENV = "AUTHCORE_TEST_DATABASE_URL"
REDIS_ENV = "AUTHCORE_TEST_REDIS_URL"
REQUIRE_ENV = "AUTHCORE_REQUIRE_SERVICES"
CONNECT_TIMEOUT_S = 3.0

T = TypeVar("T")


class ServiceUnavailable(Exception):
    """A test server could not be reached. The message names the server, never its password."""


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def server_url() -> str:
    return os.environ.get(DATABASE_ENV, DEFAULT_DATABASE_URL)


def redis_url() -> str:
    return os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL)


def random_suffix() -> str:
    return secrets.token_hex(6)


def _safe_location(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}{parts.path}"


def run_in_thread(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a fresh loop in a worker thread; callable from sync or async code."""

    # A fresh loop in a worker thread never disturbs the loop a test may be running.
    async def main() -> T:
        return await factory()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def with_database(url: str, database: str, driver: str = "postgresql+asyncpg") -> str:
    """`url` pointing at `database`, with the SQLAlchemy `driver` scheme."""
    parts = urlsplit(url)
    return urlunsplit((driver, parts.netloc, f"/{database}", parts.query, ""))


async def _connect(url: str) -> Any:
    import asyncpg

    try:
        return await asyncpg.connect(
            with_database(url, urlsplit(url).path.lstrip("/") or "postgres", "postgresql"), timeout=CONNECT_TIMEOUT_S
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise ServiceUnavailable(f"Postgres at {_safe_location(url)} is unreachable ({type(error).__name__})") from None


def create_database(url: str, name: str) -> None:
    """Create the empty database `name` on the server of `url`."""

    async def create() -> None:
        connection = await _connect(url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    run_in_thread(create)


def drop_database(url: str, name: str) -> None:
    """Drop `name`, first ending the connections a test left open."""

    async def drop() -> None:
        connection = await _connect(url)
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await connection.close()

    run_in_thread(drop)


def _redis_client(url: str) -> Any:
    from redis import Redis

    return Redis.from_url(url, socket_timeout=CONNECT_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S)


def ping_redis(url: str) -> None:
    from redis.exceptions import RedisError

    client = _redis_client(url)
    try:
        client.ping()
    except (OSError, RedisError) as error:
        raise ServiceUnavailable(f"Redis at {_safe_location(url)} is unreachable ({type(error).__name__})") from None
    finally:
        client.close()


def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key starting with `prefix` (SCAN, never FLUSHDB: the server is shared). Returns the count."""
    if not prefix or any(char in prefix for char in "*?[]\\"):
        raise ValueError("the prefix must be non-empty and free of glob characters")
    client = _redis_client(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.unlink(*batch)
                batch = []
        if batch:
            deleted += client.unlink(*batch)
    finally:
        client.close()
    return deleted
