"""resolve_identity: abstain passes the credential on, InvalidCredentials stops the chain with a fixed answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.testclient import TestClient

import authcore
from authcore.responses import REQUEST_ID_HEADER
from tests._runner_helpers import KeyHeader, app_with, build_runner, request, started


class Strict(authcore.Plugin[authcore.EmptyConfig]):
    """Owns keys starting with `sk-`: `sk-revoked` is revoked, everything else unknown."""

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity | None:
        key = credentials.reveal()
        if not key.startswith("sk-"):
            return None
        if key == "sk-revoked":
            raise authcore.InvalidCredentials("key sk-revoked was revoked yesterday", reason_id="key_revoked")
        raise authcore.InvalidCredentials("no such key", reason_id="key_unknown")


class Permissive(authcore.Plugin[authcore.EmptyConfig]):
    calls = 0

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity:
        type(self).calls += 1
        return authcore.Identity("api_key", user_id="anyone")


TYPES = {"key": KeyHeader, "strict": Strict, "permissive": Permissive}
PLUGINS = {"k": "key", "strict": "strict", "permissive": "permissive"}
PIPELINE = {"extract_credentials": ["k"], "resolve_identity": ["strict", "permissive"]}


async def test_invalid_credentials_stop_the_chain() -> None:
    Permissive.calls = 0
    runner = await started(build_runner(TYPES, PLUGINS, PIPELINE))
    result = await runner.authenticate(request(headers={"x-key": "sk-unknown"}))
    assert result.status_code == 401
    assert Permissive.calls == 0
    assert result.error is not None
    assert result.error.reason_id == "key_unknown"
    assert [(s.plugin, s.outcome) for s in result.trace.steps if s.stage == "resolve_identity"] == [("strict", "deny")]


async def test_abstaining_resolver_lets_the_next_one_decide() -> None:
    Permissive.calls = 0
    runner = await started(build_runner(TYPES, PLUGINS, PIPELINE))
    result = await runner.authenticate(request(headers={"x-key": "not-a-sk-key"}))
    assert result.allowed
    assert Permissive.calls == 1
    assert result.identity is not None
    assert result.identity.plugin == "permissive"


@pytest.mark.parametrize("key", ["sk-unknown", "sk-revoked"])
def test_invalid_body_is_fixed(key: str) -> None:
    runner = build_runner(TYPES, PLUGINS, PIPELINE)
    with TestClient(app_with(runner)) as client:
        client.portal.call(runner.startup)  # type: ignore[union-attr]
        response = client.get("/ok", headers={"x-key": key})
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "Invalid credentials.",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert "revoked" not in response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_unknown_and_revoked_are_byte_identical_except_request_id() -> None:
    runner = build_runner(TYPES, PLUGINS, PIPELINE)
    with TestClient(app_with(runner)) as client:
        client.portal.call(runner.startup)  # type: ignore[union-attr]
        unknown = client.get("/ok", headers={"x-key": "sk-unknown"})
        revoked = client.get("/ok", headers={"x-key": "sk-revoked"})
    assert unknown.status_code == revoked.status_code == 401
    assert unknown.content == revoked.content

    def headers(response: object) -> list[tuple[str, str]]:
        raw = response.headers.items()  # type: ignore[attr-defined]
        return sorted((k, v) for k, v in raw if k != REQUEST_ID_HEADER)

    assert headers(unknown) == headers(revoked)
    assert unknown.headers[REQUEST_ID_HEADER] != revoked.headers[REQUEST_ID_HEADER]


class Waiting(authcore.Plugin[authcore.EmptyConfig]):
    """Resolves every key after a real wait, as a database read would."""

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity:
        await asyncio.sleep(0.02)
        return authcore.Identity("api_key", user_id="waited")


class Declining(authcore.Plugin[authcore.EmptyConfig]):
    cpu_only = True

    @authcore.hookimpl
    def resolve_identity(self, credentials: authcore.Credentials) -> None:
        return None


async def test_trace_records_each_call_whether_it_returned_at_once_or_waited() -> None:
    types = {"key": KeyHeader, "declining": Declining, "waiting": Waiting}
    plugins = {"k": "key", "declining": "declining", "waiting": "waiting"}
    pipeline = {"extract_credentials": ["k"], "resolve_identity": ["declining", "waiting"]}
    runner = await started(build_runner(types, plugins, pipeline))

    result = await runner.authenticate(request(headers={"x-key": "sk-anything"}))

    assert result.identity is not None
    assert result.identity.user_id == "waited"
    steps = [(s.stage, s.plugin, s.outcome) for s in result.trace.steps]
    assert steps == [
        ("extract_credentials", "k", "credentials"),
        ("resolve_identity", "declining", "abstain"),
        ("resolve_identity", "waiting", "identity"),
        ("route", None, "pass"),
    ]
    waited = result.trace.steps[2]
    # The step that suspended is timed from its call to its answer, across the wait.
    assert waited.duration_us >= 15_000


class CacheFirst(authcore.Plugin[authcore.EmptyConfig]):
    """A sync resolver that answers cached keys at once and returns a coroutine to look the others up."""

    cpu_only = True
    lookup_s = 0.02
    lookups = 0

    def __init__(self, name: str, config: authcore.EmptyConfig) -> None:
        super().__init__(name, config)
        self.cached: dict[str, authcore.Identity] = {}

    @authcore.hookimpl
    def resolve_identity(self, credentials: authcore.Credentials) -> Any:
        key = credentials.reveal()
        found = self.cached.get(key)
        return found if found is not None else self._look_up(key)

    async def _look_up(self, key: str) -> authcore.Identity | None:
        type(self).lookups += 1
        await asyncio.sleep(type(self).lookup_s)
        if key == "sk-broken":
            raise RuntimeError(f"lookup of {key} failed")
        if not key.startswith("sk-"):
            return None
        identity = self.cached[key] = authcore.Identity("api_key", user_id=f"u-{key}")
        return identity


def cache_first_runner(timeout_s: float = 1.0) -> Any:
    return build_runner(
        {"key": KeyHeader, "cache": CacheFirst},
        {"k": "key", "cache": {"use": "cache", "timeout_s": timeout_s}},
        {"extract_credentials": ["k"], "resolve_identity": ["cache"]},
    )


async def test_a_sync_hook_may_return_a_coroutine_for_the_part_that_waits() -> None:
    CacheFirst.lookups, CacheFirst.lookup_s = 0, 0.02
    runner = await started(cache_first_runner())

    first = await runner.authenticate(request(headers={"x-key": "sk-one"}))
    second = await runner.authenticate(request(headers={"x-key": "sk-one"}))
    unknown = await runner.authenticate(request(headers={"x-key": "other"}))
    broken = await runner.authenticate(request(headers={"x-key": "sk-broken"}))

    assert first.identity is not None
    assert first.identity.user_id == "u-sk-one"
    assert second.identity == first.identity
    assert CacheFirst.lookups == 3  # the second request was answered from the cache, without a lookup
    assert unknown.status_code == 401  # the coroutine's `None` abstains like any other
    assert broken.error is not None
    assert broken.error.reason_id == "plugin_error"
    assert first.trace.steps[1].duration_us >= 15_000


async def test_the_coroutine_a_sync_hook_returns_runs_under_its_timeout() -> None:
    CacheFirst.lookups, CacheFirst.lookup_s = 0, 1.0
    runner = await started(cache_first_runner(timeout_s=0.05))

    result = await runner.authenticate(request(headers={"x-key": "sk-slow"}))

    assert result.status_code == 503
    assert result.error is not None
    assert result.error.reason_id == "plugin_timeout"
