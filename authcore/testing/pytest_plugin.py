"""pytest fixtures for authcore plugin authors: throwaway Postgres databases and Redis prefixes.

Loaded in every pytest run of a project that installs authcore, so it imports
nothing heavy until a fixture is used. Without a reachable server the test is
skipped, or fails when `AUTHCORE_REQUIRE_SERVICES=1` (set it in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

import pytest

SERVICES_MARKER = "services: needs the Postgres/Redis servers (skipped without them unless AUTHCORE_REQUIRE_SERVICES=1)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", SERVICES_MARKER)


def _unavailable(reason: str) -> NoReturn:
    from authcore.testing import services

    if services.services_required():
        pytest.fail(f"{reason}; {services.REQUIRE_ENV}=1 makes this an error", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def authcore_postgres_url() -> Iterator[str]:
    """A fresh, empty database `authcore_test_<random>`, as a `postgresql+asyncpg://` URL; dropped afterwards.

    The server comes from `AUTHCORE_TEST_DATABASE_URL`.
    """
    from authcore.testing import services

    server = services.server_url()
    name = f"authcore_test_{services.random_suffix()}"
    try:
        services.create_database(server, name)
    except services.ServiceUnavailable as error:
        _unavailable(str(error))
    try:
        yield services.with_database(server, name)
    finally:
        services.drop_database(server, name)


@pytest.fixture
def authcore_redis_url() -> str:
    """The Redis URL from `AUTHCORE_TEST_REDIS_URL`, checked to answer a PING."""
    from authcore.testing import services

    url = services.redis_url()
    try:
        services.ping_redis(url)
    except services.ServiceUnavailable as error:
        _unavailable(str(error))
    return url


@pytest.fixture
def authcore_redis_prefix(authcore_redis_url: str) -> Iterator[str]:
    """A unique `authcore-test:<random>:` key prefix; every key under it is deleted afterwards."""
    from authcore.testing import services

    prefix = f"authcore-test:{services.random_suffix()}:"
    try:
        yield prefix
    finally:
        services.delete_prefix(authcore_redis_url, prefix)
