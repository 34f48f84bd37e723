"""Shared by the tests and by the race worker processes: a tiny identity plugin, prices, requests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from authcore_budgets import BudgetsPlugin
from pydantic import BaseModel, ConfigDict

from authcore import Credentials, Identity, InvalidCredentials, Plugin, RequestContext, Usage, hookimpl
from authcore.runner import AuthResult, Runner
from authcore.testing import make_request
from authcore.testing.services import ServiceUnavailable, ping_redis

PRICES: dict[str, dict[str, float]] = {
    # 50 micro-USD per output token: 1000 tokens = $0.05.
    "m5c": {"input_per_1m_tokens": 0, "output_per_1m_tokens": 50},
    # Four times dearer: 1000 tokens = $0.20.
    "m20c": {"input_per_1m_tokens": 0, "output_per_1m_tokens": 200},
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


NICKEL = Usage("m5c", 10, NICKEL_TOKENS)
"""What one default `chat` request reports using: $0.05 on `m5c`."""


async def spend(runner: Runner, who: str = "tok", usage: Usage | None = NICKEL, **body: Any) -> int:
    """One request with the token `who`: reserve, then commit `usage` when admitted. Returns the decision's status."""
    result = await runner.authenticate(chat(who, **body))
    if result.error is None:
        result.usage = usage
        await runner.settle(result, completed=True)
    return result.status_code


async def admitted(runner: Runner, who: str = "tok", **body: Any) -> AuthResult:
    """A request with the token `who` that must be admitted; its hold is left to the caller to settle."""
    result = await runner.authenticate(chat(who, **body))
    assert result.error is None, result.error
    return result


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


@contextlib.contextmanager
def own_redis(*args: str, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throwaway redis-server on loopback, on `port` or a free one (the shared one is never reconfigured or
    stopped). Stopped (SIGTERM) when the block ends, unless the test stopped it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = port or unused_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                ping_redis(url)
                break
            except ServiceUnavailable:
                time.sleep(0.05)
        yield url, process
    finally:
        process.terminate()
        process.wait(5)
