"""Without Redis a second process (a second `--workers` worker) refuses to start instead of multiplying budgets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from budget_helpers import plugins

from authcore import ConfigurationError
from authcore.resources import Resources
from authcore.testing import started_runner

SECOND_PROCESS = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from budget_helpers import plugins
from authcore.resources import Resources
from authcore.testing import started_runner

async def main():
    async with started_runner(plugins({{}}), resources=Resources({database!r})):
        pass

asyncio.run(main())
"""


async def test_second_owner_of_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    async with started_runner(plugins({}), resources=Resources(database)):
        with pytest.raises(ConfigurationError, match="another process already owns the in-process budget counters"):
            async with started_runner(plugins({}), resources=Resources(database)):
                pass
        code = SECOND_PROCESS.format(tests=str(Path(__file__).parent), database=database)
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)  # noqa: S603
        assert other.returncode != 0
        assert "set storage.redis_url" in other.stderr
    # Once the owner stops, another process may take over.
    async with started_runner(plugins({}), resources=Resources(database)):
        pass


async def test_a_configured_lock_file_is_used(tmp_path: Path) -> None:
    lock = tmp_path / "budgets.lock"
    database = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    async with started_runner(plugins({}, lock_file=str(lock)), resources=Resources(database)):
        assert lock.exists()
        other = started_runner(
            plugins({}, lock_file=str(lock)), resources=Resources(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
        )
        with pytest.raises(ConfigurationError):
            await other.__aenter__()
