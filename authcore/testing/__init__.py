"""Testing kit for plugin authors.

Everything here is imported on first use, so that the pytest plugin (which
imports this package in every test run) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from authcore.testing.assertions import assert_allowed, assert_denied
    from authcore.testing.client import app_client
    from authcore.testing.factories import make_identity, make_request
    from authcore.testing.harness import build_runner, started_runner
    from authcore.testing.schema import schema_differences

_HOMES = {
    "assert_allowed": "authcore.testing.assertions",
    "assert_denied": "authcore.testing.assertions",
    "app_client": "authcore.testing.client",
    "make_identity": "authcore.testing.factories",
    "make_request": "authcore.testing.factories",
    "build_runner": "authcore.testing.harness",
    "started_runner": "authcore.testing.harness",
    "schema_differences": "authcore.testing.schema",
}

__all__ = [
    "app_client",
    "assert_allowed",
    "assert_denied",
    "build_runner",
    "make_identity",
    "make_request",
    "schema_differences",
    "started_runner",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'authcore.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
