"""Shared by the tests and by the race worker processes: a tiny identity plugin, prices, requests."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Mapping
from typing import Any

from authcore_budgets import BudgetsPlugin
from pydantic import BaseModel, ConfigDict

from authcore import Credentials, Identity, InvalidCredentials, Plugin, RequestContext, hookimpl
from authcore.runner import Runner
from authcore.testing import make_request

PRICES: dict[str, dict[str, float]] = {
    # 50 micro-USD per output token: 1000 tokens = $0.05.
    "m5c": {"input_per_1m_tokens": 0, "output_per_1m_tokens": 50},
    "priced-input": {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002},
    "free": {"input_per_1m_tokens": 0, "output_per_1m_tokens": 0},
}
ADMIN = {"key_id": "admin-key", "role": "proxy_admin"}
"""Identity fields of the `admin` token every test runner accepts."""
NICKEL_TOKENS = 1000
"""max_tokens that make a `m5c` request cost exactly $0.05."""


class StaticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    identities: dict[str, dict[str, Any]]


class StaticIdentities(Plugin[StaticConfig]):
    """Bearer token -> the identity fields configured for it."""

    Config = StaticConfig

    @hookimpl
    async def resolve_identity(self, request: RequestContext, credentials: Credentials) -> Identity:
        fields = self.config.identities.get(credentials.reveal())
        if fields is None:
            raise InvalidCredentials(reason_id="unknown_test_token")
        return Identity(auth_method="api_key", **fields)


def budgets_config(**overrides: Any) -> dict[str, Any]:
    return {"prices": PRICES, **overrides}


def chat(token: str, model: str = "m5c", max_tokens: int = NICKEL_TOKENS, **body: Any) -> RequestContext:
    payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
    if max_tokens:
        payload["max_tokens"] = max_tokens
    return make_request("POST", "/v1/chat/completions", headers={"authorization": f"Bearer {token}"}, json=payload)


def plugins(identities: Mapping[str, Mapping[str, Any]], **config: Any) -> dict[str, Any]:
    return {
        "ids": (StaticIdentities, {"identities": {k: dict(v) for k, v in identities.items()}}),
        "budgets": (BudgetsPlugin, budgets_config(**config)),
    }


RunnerFactory = Callable[..., contextlib.AbstractAsyncContextManager[Runner]]


def budgets_of(runner: Runner) -> BudgetsPlugin:
    found = next(instance for instance in runner.instances if instance.name == "budgets")
    assert isinstance(found, BudgetsPlugin)
    return found


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
