"""Fixtures: runners with the budgets plugin on the in-process store or on real Redis."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from budget_helpers import ADMIN, RunnerFactory, plugins

from authcore.resources import Resources
from authcore.runner import Runner
from authcore.testing import started_runner


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_resources(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], Resources]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'budgets.db'}"
    if store_kind == "memory":
        return lambda: Resources(database)
    url: str = request.getfixturevalue("authcore_redis_url")
    prefix: str = request.getfixturevalue("authcore_redis_prefix")
    return lambda: Resources(database, url, prefix)


@pytest.fixture
def make_runner(make_resources: Callable[[], Resources]) -> RunnerFactory:
    @contextlib.asynccontextmanager
    async def factory(
        identities: Mapping[str, Mapping[str, Any]], *, extra: Mapping[str, Any] | None = None, **config: Any
    ) -> AsyncIterator[Runner]:
        specs = plugins({"admin": ADMIN, **identities}, **config)
        specs.update(extra or {})
        async with started_runner(specs, timeout_s=5, resources=make_resources()) as runner:
            yield runner

    return factory
