"""`authcore_lifespan`: the runner's start and stop, and the start-up heap frozen for the garbage collector."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from authcore.config import parse_config
from authcore.lifespan import GEN0_THRESHOLD, authcore_lifespan
from authcore.middleware import STATE_KEY


def _app(tmp_path: Path, **settings: object) -> Starlette:
    config = parse_config({"storage": {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"}, **settings})
    return Starlette(lifespan=authcore_lifespan(config))


@pytest.fixture(autouse=True)
def _thawed() -> None:
    gc.unfreeze()


def test_collector_is_tuned_while_serving_and_restored_at_shutdown(tmp_path: Path) -> None:
    before = gc.get_threshold()
    app = _app(tmp_path)
    with TestClient(app):
        assert getattr(app.state, STATE_KEY).started
        # The runner, its plugins and everything imported so far are out of the collector's walks.
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (GEN0_THRESHOLD, before[1], before[2])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
    assert getattr(app.state, STATE_KEY) is None


def test_collector_tuning_can_be_turned_off(tmp_path: Path) -> None:
    before = gc.get_threshold()
    app = _app(tmp_path, tune_gc_after_startup=False)
    with TestClient(app):
        assert getattr(app.state, STATE_KEY).started
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == before
