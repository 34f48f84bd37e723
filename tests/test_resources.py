"""`Resources` against real Postgres and Redis, and the fixtures that hand them out."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore.resources import Resources
from authcore.testing import services


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.services
async def test_check_reports_both_stores_ok(authcore_postgres_url: str, authcore_redis_url: str) -> None:
    resources = Resources(authcore_postgres_url, authcore_redis_url)
    try:
        assert resources.database_backend == "postgresql"
        assert await resources.check() == {"database": "ok", "redis": "ok"}
    finally:
        await resources.aclose()


@pytest.mark.services
async def test_engine_runs_queries_in_the_throwaway_database(authcore_postgres_url: str) -> None:
    resources = Resources(authcore_postgres_url)
    try:
        async with resources.engine().begin() as connection:
            name = (await connection.execute(text("SELECT current_database()"))).scalar_one()
            await connection.execute(text("CREATE TABLE probe (id integer primary key)"))
            await connection.execute(text("INSERT INTO probe VALUES (1), (2)"))
            count = (await connection.execute(text("SELECT count(*) FROM probe"))).scalar_one()
    finally:
        await resources.aclose()
    assert name.startswith("authcore_test_")
    assert authcore_postgres_url.endswith(f"/{name}")
    assert count == 2


@pytest.mark.services
async def test_redis_client_is_shared_and_works(authcore_redis_url: str, authcore_redis_prefix: str) -> None:
    resources = Resources("sqlite+aiosqlite:///:memory:", authcore_redis_url, authcore_redis_prefix)
    try:
        client = resources.redis()
        assert client is not None
        assert resources.redis() is client
        await client.set(f"{authcore_redis_prefix}k", "v")
        assert await client.get(f"{authcore_redis_prefix}k") == b"v"
    finally:
        await resources.aclose()


@pytest.mark.services
async def test_unreachable_redis_is_an_error_status_without_hanging(authcore_postgres_url: str) -> None:
    resources = Resources(authcore_postgres_url, f"redis://127.0.0.1:{unused_port()}/0")
    start = time.perf_counter()
    try:
        status = await resources.check(timeout=2.0)
    finally:
        await resources.aclose()
    assert status["database"] == "ok"
    assert status["redis"].startswith("error: ")
    assert time.perf_counter() - start < 2.5


async def test_unreachable_database_is_an_error_status_naming_no_password() -> None:
    resources = Resources(f"postgresql+asyncpg://app:pw-secret-123@127.0.0.1:{unused_port()}/db")
    try:
        status = await resources.check(timeout=2.0)
    finally:
        await resources.aclose()
    assert status["database"].startswith("error: ")
    assert "pw-secret-123" not in repr(status)
    assert "pw-secret-123" not in repr(resources)


@pytest.mark.services
async def test_aclose_is_idempotent(authcore_postgres_url: str, authcore_redis_url: str) -> None:
    resources = Resources(authcore_postgres_url, authcore_redis_url)
    assert await resources.check() == {"database": "ok", "redis": "ok"}
    await resources.aclose()
    await resources.aclose()
    # Closed resources reconnect on next use rather than failing.
    assert await resources.check() == {"database": "ok", "redis": "ok"}
    await resources.aclose()


async def test_sqlite_default_needs_no_server() -> None:
    resources = Resources("sqlite+aiosqlite:///:memory:")
    try:
        assert resources.redis() is None
        assert not resources.has_redis
        assert await resources.check() == {"database": "ok"}
        async with resources.engine().connect() as connection:
            assert (await connection.execute(text("SELECT 40 + 2"))).scalar_one() == 42
    finally:
        await resources.aclose()
    await resources.aclose()


# -- the fixtures' own guarantees ---------------------------------------------------


@pytest.mark.services
def test_throwaway_database_is_dropped_with_its_open_connections(authcore_postgres_url: str) -> None:
    import asyncpg

    server = services.server_url()
    name = f"authcore_test_{services.random_suffix()}"
    services.create_database(server, name)
    assert name in _databases(server)

    async def drop_while_connected() -> None:
        # A connection left open, as a test that forgot aclose() would leave it.
        connection = await asyncpg.connect(services.with_database(server, name, "postgresql"))
        try:
            services.drop_database(server, name)
            with pytest.raises((asyncpg.PostgresError, ConnectionError, asyncpg.InterfaceError)):
                await connection.fetchval("SELECT 1")
        finally:
            connection.terminate()

    services.run_in_thread(drop_while_connected)
    assert name not in _databases(server)


def _databases(server: str) -> set[str]:
    async def names() -> set[str]:
        import asyncpg

        connection = await asyncpg.connect(services.with_database(server, "postgres", "postgresql"))
        try:
            return {row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")}
        finally:
            await connection.close()

    return services.run_in_thread(names)


@pytest.mark.services
def test_delete_prefix_removes_only_its_own_keys(authcore_redis_url: str, authcore_redis_prefix: str) -> None:
    from redis import Redis

    client = Redis.from_url(authcore_redis_url)
    other = f"authcore-test:{services.random_suffix()}:"
    try:
        client.mset({f"{authcore_redis_prefix}{index}": index for index in range(1200)})
        client.set(f"{other}keep", 1)
        assert services.delete_prefix(authcore_redis_url, authcore_redis_prefix) == 1200
        assert list(client.scan_iter(match=f"{authcore_redis_prefix}*")) == []
        assert client.get(f"{other}keep") == b"1"
    finally:
        client.delete(f"{other}keep")
        client.close()


def test_delete_prefix_refuses_patterns() -> None:
    for prefix in ("", "*", "authcore-test:[a]:"):
        with pytest.raises(ValueError, match="glob"):
            services.delete_prefix("redis://127.0.0.1:1/0", prefix)


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        pid: int = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


@pytest.mark.services
async def test_read_engine_is_autocommit_without_pre_ping_and_apart_from_the_write_pool(
    authcore_postgres_url: str,
) -> None:
    resources = Resources(authcore_postgres_url)
    try:
        reads = resources.read_engine()
        assert reads is resources.read_engine()
        assert reads is not resources.engine()
        assert reads.pool is not resources.engine().pool
        async with reads.connect() as connection:
            # AUTOCOMMIT: each statement is its own transaction (inside one, now() would not move),
            # so no BEGIN is sent and nothing has to be rolled back afterwards.
            first = (await connection.execute(text("SELECT now()"))).scalar_one()
            await asyncio.sleep(0.01)
            second = (await connection.execute(text("SELECT now()"))).scalar_one()
            assert second > first
        assert resources.engine().pool._pre_ping  # writes keep their ping
        assert not reads.pool._pre_ping
    finally:
        await resources.aclose()


@pytest.mark.services
async def test_a_read_connection_dropped_by_the_server_is_reported_invalidated_and_replaced(
    authcore_postgres_url: str,
) -> None:
    resources = Resources(authcore_postgres_url)
    try:
        reads = resources.read_engine()
        pid = await _backend_pid(reads)
        async with resources.engine().begin() as connection:
            assert (await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
        # Without pre-ping the pooled connection fails on first use, flagged so callers know one retry is safe.
        with pytest.raises(DBAPIError) as caught:
            await _backend_pid(reads)
        assert caught.value.connection_invalidated
        assert await _backend_pid(reads) != pid
    finally:
        await resources.aclose()


async def test_sqlite_reads_use_the_one_engine(tmp_path: Path) -> None:
    resources = Resources(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        assert resources.read_engine() is resources.engine()
    finally:
        await resources.aclose()
